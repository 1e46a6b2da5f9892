"""Measurement: the parent-side launcher and the child-side worker, with their helpers."""
