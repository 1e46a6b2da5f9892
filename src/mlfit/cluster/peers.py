"""Runs inside the Dask scheduler (sent by value, so the scheduler needs no mlfit): the names in
the TLS certificate each worker authenticated its own connection with.

Kept free of mlfit imports on purpose: :func:`cert_names` is pickled by value and must run in a
plain ``dask scheduler``. It returns JSON text, which the client reads as data.
"""

from __future__ import annotations

import json
from typing import Any


def cert_names(dask_scheduler: Any = None, addresses: tuple[str, ...] = ()) -> str:
    """Worker address -> the subject alternative names (URI, DNS) and organisational units of the
    certificate the worker presented on its connection to the scheduler (verified against the
    cluster's CA by the TLS handshake); an empty list when the connection is not TLS."""
    out: dict[str, list[str]] = {}
    for address in addresses:
        batched = dask_scheduler.stream_comms.get(address) if dask_scheduler is not None else None
        comm = getattr(batched, "comm", None)
        info = getattr(comm, "extra_info", None) or {}
        cert = info.get("peercert") or {}
        names = [str(value) for kind, value in cert.get("subjectAltName", ()) if kind in ("URI", "DNS")]
        for rdn in cert.get("subject", ()):
            names.extend(str(value) for kind, value in rdn if kind == "organizationalUnitName")
        out[str(address)] = names[:64]
    return json.dumps(out)
