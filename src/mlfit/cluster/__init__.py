"""Measurements on a Dask distributed cluster (the optional ``mlfit[cluster]`` extra).

A worker started on a real device advertises each target it embodies as the Dask worker
resource ``mlfit-target-NAME``; a (model, target) measurement that needs it is sent only
there and comes back labelled measured-on-target once the client has checked the worker's host
facts against the target's hardware. Nothing here imports ``distributed`` at module level:
only ``--cluster`` pays for it.

Security decisions (docs/scale.md, "Security"): workers bind only the interface that reaches
the scheduler and serve no web page; mutual TLS through ``--tls-*``; the client never unpickles
a worker's answer (:mod:`mlfit.cluster.guard`); claims are authenticated by the worker's TLS
certificate and checked against its host facts (:mod:`mlfit.cluster.answers`, :mod:`mlfit.cluster.claims`);
every connect is bounded (:mod:`mlfit.cluster.net`); model bytes are scattered once and never
outlive a worker (:mod:`mlfit.cluster.scratch`).
"""

from __future__ import annotations

from dataclasses import dataclass

from mlfit.cluster.net import ClusterTLS

RESOURCE_PREFIX = "mlfit-target-"


def resource_name(target: str) -> str:
    """The Dask worker resource that says "this worker IS target's hardware"."""
    return f"{RESOURCE_PREFIX}{target}"


@dataclass(frozen=True)
class ClusterSpec:
    """Where the scheduler is and how to talk to it: ``tcp://`` or ``tls://`` (mutual TLS)."""

    address: str
    tls: ClusterTLS | None = None
