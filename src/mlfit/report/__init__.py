"""Reporters: pure functions from a result to text, bytes or a rich renderable."""
