"""Measurements on a Dask distributed cluster (the optional ``mlfit[cluster]`` extra).

A worker started on a real device advertises each target it embodies as the Dask worker
resource ``mlfit-target-NAME``; a (model, target) measurement that needs it is sent only
there and comes back labelled measured-on-target. Nothing here imports ``distributed`` at
module level: only ``--cluster`` pays for it.
"""

from __future__ import annotations

RESOURCE_PREFIX = "mlfit-target-"


def resource_name(target: str) -> str:
    """The Dask worker resource that says "this worker IS target's hardware"."""
    return f"{RESOURCE_PREFIX}{target}"
