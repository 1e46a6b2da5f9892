"""What the client asks the scheduler while it waits: every call bounded, none trusting a
worker's word beyond what the scheduler itself recorded.

Decisions (issue 18 item 13, issue 19 item 5):
- **Erred tasks** are read from the scheduler's own task state (``get_task_status``), not only
  from the client's future: an error Dask cannot rebuild on the client (a traceback it cannot
  unpickle) leaves the future pending forever, while the scheduler says ``erred`` at once.
- **Answers are sized before they are fetched**: the scheduler's ``nbytes`` for the key (what the
  worker reported) must be under :data:`MAX_ANSWER_BYTES`, and the fetch itself is bounded by
  :data:`GATHER_TIMEOUT_S`, so a worker that under-reports cannot hold the client either.
- **A lost scheduler** is the client's own connection state (Dask cancels every future when the
  scheduler's comm closes): the run stops waiting, names the scheduler, keeps what was measured.
- **A stalled worker** (stopped, hung, its event loop blocked) stops heartbeating: the scheduler's
  ``last_seen`` for it stops moving. A worker processing one of our tasks whose ``last_seen`` has
  not moved for :func:`stall_bound` seconds (``MLFIT_CLUSTER_STALL_S``, default 45) is named and
  removed from the scheduler, which sends its tasks to the other workers. Measurements run in a
  subprocess of the worker, so a long inference never stops the heartbeat: silence is a stall.
  ``last_seen`` is compared with itself only, so clocks need not agree across machines.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

RPC_TIMEOUT_S = 10.0  # one question to the scheduler
GATHER_TIMEOUT_S = 60.0  # fetching one answer of at most MAX_ANSWER_BYTES through the scheduler
MAX_ANSWER_BYTES = 8 * 2**20  # a result with raw samples is ~1 MB
STALL_DEFAULT_S = 45.0
STALL_RANGE_S = (5.0, 3600.0)


def stall_bound() -> float:
    """Seconds of heartbeat silence after which a worker is taken as stalled (the
    ``MLFIT_CLUSTER_STALL_S`` environment variable, clamped to 5 s .. 1 h)."""
    raw = os.environ.get("MLFIT_CLUSTER_STALL_S", "")
    try:
        value = float(raw) if raw else STALL_DEFAULT_S
    except ValueError:
        value = STALL_DEFAULT_S
    if value != value:  # NaN
        value = STALL_DEFAULT_S
    low, high = STALL_RANGE_S
    return min(max(value, low), high)


def scheduler_lost(client: Any) -> bool:
    """The client's connection to the scheduler is gone (Dask is reconnecting, or gave up)."""
    return str(getattr(client, "status", "closed")) != "running"


def _ask(client: Any, handler: str, **kwargs: Any) -> Any:
    return client.sync(getattr(client.scheduler, handler), callback_timeout=RPC_TIMEOUT_S, **kwargs)


def task_states(client: Any, keys: list[str]) -> dict[str, str | None]:
    """The scheduler's state of each key ('processing', 'memory', 'erred', None: unknown)."""
    return dict(_ask(client, "get_task_status", keys=keys))


def answer_bytes(client: Any, key: str) -> int:
    """The size the scheduler recorded for a finished key (as its worker reported it)."""
    return int(_ask(client, "nbytes", keys=[key], summary=False).get(key, -1))


def fetch(client: Any, future: Any) -> Any:
    """One answer through the scheduler (never directly from the worker), within GATHER_TIMEOUT_S."""
    (value,) = client.sync(client._gather, [future], direct=False, callback_timeout=GATHER_TIMEOUT_S)
    return value


def workers(client: Any) -> dict[str, dict[str, Any]]:
    """The scheduler's record of every connected worker, within RPC_TIMEOUT_S."""
    info = _ask(client, "identity", n_workers=-1)
    return dict(info.get("workers", {}))


def processing(client: Any) -> dict[str, list[str]]:
    """Worker address -> the keys the scheduler has sent it."""
    return {address: list(keys) for address, keys in _ask(client, "processing").items()}


def remove(client: Any, address: str) -> None:
    """Ask the scheduler to drop a worker: its tasks go to the other workers."""
    _ask(client, "unregister", address=address, stimulus_id=f"mlfit-stalled-{uuid.uuid4().hex[:8]}")


@dataclass
class Heartbeats:
    """When each worker's ``last_seen`` (scheduler time) last moved, in this process's clock."""

    seen: dict[str, tuple[float, float]] = field(default_factory=dict)  # address -> (last_seen, moved at)

    def silent(self, info: dict[str, dict[str, Any]], now: float | None = None) -> dict[str, float]:
        """Worker address -> seconds its heartbeat has not moved (0 for a fresh one)."""
        now = time.monotonic() if now is None else now
        out: dict[str, float] = {}
        for address, worker in info.items():
            last = float(worker.get("last_seen") or 0.0)
            before = self.seen.get(address)
            if before is None or before[0] != last:
                self.seen[address] = (last, now)
                out[address] = 0.0
            else:
                out[address] = now - before[1]
        for gone in set(self.seen) - set(info):
            del self.seen[gone]
        return out


def holder(client: Any, key: str) -> str | None:
    """The worker the scheduler records as holding a finished key (its own record, not the
    worker's word)."""
    holders = _ask(client, "who_has", keys=[key]).get(key) or []
    return str(holders[0]) if len(holders) == 1 else None


def certificate_names(client: Any, address: str) -> list[str]:
    """The names in the certificate ``address`` authenticated its scheduler connection with (read
    on the scheduler by :func:`mlfit.cluster.peers.cert_names`, sent by value); MlfitError-free:
    an empty list when the scheduler cannot or will not say."""
    import json

    import cloudpickle

    from mlfit.cluster import peers

    cloudpickle.register_pickle_by_value(peers)
    try:
        text = client.run_on_scheduler(peers.cert_names, addresses=(address,))
        found = json.loads(text) if isinstance(text, str) and len(text) < 2**20 else {}
    except Exception:  # the scheduler refuses pickled functions, or the answer was not JSON text
        return []
    names = found.get(address) if isinstance(found, dict) else None
    return [str(n) for n in names] if isinstance(names, list) else []
