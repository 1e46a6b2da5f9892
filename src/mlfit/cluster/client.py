"""The client side of ``--cluster``: route each (model, target) measurement to a Dask worker,
gather the results, and turn every way a worker can vanish into an explained error result.

Routing: a target some worker embodies (resource ``mlfit-target-NAME``) is measured there and
labelled measured-on-target when the worker's host facts match the target's hardware; the other
targets of a model are measured together on any worker and evaluated as they would be locally
(host figures, or projections). A worker that dies mid-run costs only the measurements that
needed it: the scheduler re-runs free tasks on the remaining workers, and tasks that only a lost
worker could run are reported, not waited on.

Trust: a worker's answer is JSON text, fetched as msgpack and validated with pydantic; nothing a
worker sends is unpickled in this process (:mod:`mlfit.cluster.guard`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlfit.cluster import ClusterSpec, resource_name
from mlfit.cluster.gather import gather
from mlfit.cluster.jobs import RESUBMITS, EventFn, Job, describe, worker_resources
from mlfit.errors import ConfigError, ExitCode, MlfitError
from mlfit.result import RunResult

if TYPE_CHECKING:
    from mlfit.catalog.loader import Target
    from mlfit.cluster.tasks import ModelPayload
    from mlfit.inputspec import InputSpec
    from mlfit.options import MeasureOptions

__all__ = ["EventFn", "check_address", "check_on_cluster", "worker_resources"]

CONNECT_TIMEOUT_S = 15.0  # reaching the scheduler
HANDSHAKE_GRACE_S = 5.0  # beyond it, for Dask's handshake (which its own timeout does not bound)
WORKER_WAIT_S = 30.0  # for the first worker to be connected
# Dask logs a refused payload with a traceback; mlfit reports it as one line instead.
_QUIET_LOGGERS = ("distributed.protocol.pickle", "distributed.protocol.core", "distributed.core",
                  "distributed.client", "distributed.utils")


def check_address(address: str) -> str:
    """Refuse a scheduler address Dask would spend half a minute failing on."""
    from mlfit.cluster.net import parse_address

    parse_address(address)
    return address


@contextmanager
def _quiet_dask() -> Iterator[None]:
    with contextlib.suppress(ImportError):  # first: importing it sets its own loggers' levels
        import distributed  # noqa: F401
    loggers = [logging.getLogger(name) for name in _QUIET_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _connect(spec: ClusterSpec) -> Any:
    """A Dask client that accepts only msgpack answers; every failure is a ConfigError naming the
    address, within a bounded time."""
    from mlfit.cluster.net import check_scheme, parse_address, probe, warn_if_plain_tcp

    address = parse_address(spec.address)
    check_scheme(address, spec.tls)
    try:
        from distributed import Client
    except ImportError:
        from mlfit.install import install_hint

        raise ConfigError(
            "--cluster needs the 'distributed' package", install_hint("cluster")
        ) from None
    warn_if_plain_tcp(address, "--cluster")
    probe(address, spec.tls)
    security = spec.tls.security("client") if spec.tls is not None else None
    made: dict[str, Any] = {}

    def make() -> None:
        try:
            made["client"] = Client(spec.address, timeout=CONNECT_TIMEOUT_S, set_as_default=False,
                                    security=security, deserializers=["msgpack"], direct_to_workers=False)
        except Exception as exc:  # Dask raises many kinds here (OSError, TimeoutError, ssl, ValueError)
            made["error"] = exc

    # Dask bounds the TCP connect but not the handshake after it: a peer that greets and then
    # stays silent would hold the constructor for minutes. A thread bounds it.
    maker = threading.Thread(target=make, name="mlfit-connect", daemon=True)
    maker.start()
    maker.join(CONNECT_TIMEOUT_S + HANDSHAKE_GRACE_S)
    if maker.is_alive():
        raise ConfigError(
            f"{spec.address} did not complete Dask's handshake within {CONNECT_TIMEOUT_S + HANDSHAKE_GRACE_S:g} s",
            "check that the address is a Dask scheduler (and, for tls://, that it expects this certificate)",
        )
    if "error" in made:
        exc = made["error"]
        raise ConfigError(
            f"cannot connect to the Dask scheduler at {spec.address} ({describe(exc)})",
            "start one with `dask scheduler`, check the address, and for tls:// the --tls-* files",
        )
    return made["client"]


def _multi_threaded(client: Any) -> list[str]:
    """Workers that run more than one task at a time (their measurements would overlap)."""
    info = client.scheduler_info(n_workers=-1)
    return sorted(
        address for address, worker in info.get("workers", {}).items() if worker.get("nthreads", 1) > 1
    )


def check_on_cluster(
    paths: Sequence[Path],
    targets: Sequence[Target],
    inputs: InputSpec,
    options: MeasureOptions,
    cluster: str | ClusterSpec,
    shared_path: bool,
    on_event: EventFn | None = None,
) -> tuple[list[RunResult], list[str]]:
    """Measure every model for every target on the cluster. Returns (results, notes)."""
    from mlfit.cluster.guard import RefusedUnpickling, no_unpickling

    spec = cluster if isinstance(cluster, ClusterSpec) else ClusterSpec(cluster)
    if (inputs.data_file or inputs.data_arrays) and not shared_path:
        raise ConfigError(
            "--data files are not sent to cluster workers",
            "put them on a filesystem every worker mounts and add --shared-path",
        )
    with _quiet_dask(), no_unpickling():
        client = _connect(spec)
        try:
            return _run(client, spec, paths, targets, inputs, options, shared_path, on_event)
        except RefusedUnpickling as exc:
            raise MlfitError(f"the cluster at {spec.address} sent a pickle, refused unread ({exc})",
                             "a worker that is not mlfit's (or not honest) is in the cluster; use mutual TLS "
                             "(docs/scale.md)", ExitCode.MODEL) from None
        finally:
            client.close(timeout=10)


def _run(client: Any, spec: ClusterSpec, paths: Sequence[Path], targets: Sequence[Target], inputs: InputSpec,
         options: MeasureOptions, shared_path: bool, on_event: EventFn | None) -> tuple[list[RunResult], list[str]]:
    from mlfit.cluster.payload import pack
    from mlfit.cluster.tasks import measure_task

    address = spec.address
    try:
        client.wait_for_workers(1, timeout=WORKER_WAIT_S)
    except (TimeoutError, OSError):
        raise ConfigError(
            f"no Dask worker joined the scheduler at {address} within {WORKER_WAIT_S:g} s",
            "start one with `mlfit worker ADDRESS --target NAME` or `dask worker ADDRESS`",
        ) from None
    workers = worker_resources(client)
    crowded = _multi_threaded(client)
    offered = set().union(*workers.values()) if workers else set()
    # Targets no device claims prefer general-purpose workers, so a Raspberry Pi is not
    # kept busy with work that is not its own; any worker may still take them.
    general = [address for address, resources in workers.items() if not resources]
    embodied = [t for t in targets if resource_name(t.name) in offered]
    elsewhere = [t for t in targets if resource_name(t.name) not in offered]
    payloads: dict[Path, Any] = {}
    unsendable: dict[Path, MlfitError] = {}  # refused once: not read again for the model's other targets

    def general_now() -> list[str]:
        """General workers connected now (a resubmission must not name a dead one)."""
        return [a for a, resources in worker_resources(client).items() if not resources]

    def payload(path: Path) -> Any:
        """The model's bytes, scattered once to one worker (a general one when there is one, so
        that data locality does not pull general work onto a target's device; other workers fetch
        the bytes from it); sent again only when the worker holding them is gone."""
        held = payloads.get(path)
        if path in unsendable:
            raise unsendable[path]
        if held is None or held.status != "finished":
            try:
                sent: ModelPayload = pack(path, shared_path, options)
            except MlfitError as exc:
                unsendable[path] = exc
                raise
            held = client.scatter(sent, broadcast=False, hash=False, workers=general_now() or None)
            payloads[path] = held
        return held

    def submitter(path: Path, group: list[Target], resource: str | None) -> Callable[[bool], Any]:
        def submit(restricted: bool) -> Any:
            if resource is not None:
                return client.submit(measure_task, payload(path), group, inputs, options, True, pure=False,
                                     resources={resource: 1}, key=_key(path, group[0].name))
            # Strictly on a general worker while there is one (a loose restriction lets an idle
            # device steal the task); unrestricted once none is left.
            return client.submit(measure_task, payload(path), group, inputs, options, False, pure=False,
                                 key=_key(path, "any"), workers=(general_now() or None) if restricted else None)
        return submit

    jobs: list[Job] = []
    for path in paths:
        groups: list[tuple[list[Target], str | None]] = [([t], resource_name(t.name)) for t in embodied]
        if elsewhere:
            groups.append((list(elsewhere), None))
        for group, resource in groups:
            job = Job(None, path, group, resource, submitter(path, group, resource),
                      general_only=resource is None and bool(general), authenticated=spec.tls is not None)
            job.send(True)
            jobs.append(job)
    results, refused, happened = gather(client, jobs, options, {t.name: t for t in targets}, on_event)
    notes = [
        f"{len(paths)} model(s) measured on the Dask cluster at {address} ({len(workers)} worker(s) at the "
        "start); each model's bytes were sent once, and answers were accepted only as JSON text"
    ]
    if crowded:
        notes.append(
            f"worker(s) {', '.join(crowded)} run several tasks at once, so their measurements disturb each "
            "other; start workers with --nthreads 1 (`mlfit worker` does)"
        )
    else:
        notes.append("each worker measured one model at a time (--nthreads 1)")
    unverified = {name for name, _ in refused}
    verified = [t.name for t in embodied if t.name not in unverified]
    if verified:
        notes.append(
            f"measured on the target's own worker: {', '.join(verified)} "
            "(labelled 'measured (target)': the worker's host facts match the target's hardware)"
        )
    notes.extend(dict.fromkeys(f"claimed, unverified: {why}" for _, why in refused))
    resent = sum(RESUBMITS - job.resubmits for job in jobs)
    if resent:
        notes.append(f"{resent} task(s) were sent again, with the model's bytes, after the worker holding "
                     "them left the cluster")
    if elsewhere:
        notes.append(
            f"no worker embodies {', '.join(t.name for t in elsewhere)}: measured on any worker and "
            "evaluated from host figures, as locally"
        )
    notes.extend(happened)
    return results, notes


def _key(path: Path, where: str) -> str:
    """A readable, unique task key (shown by the scheduler's logs)."""
    return f"mlfit-{path.name}-{where}-{uuid.uuid4().hex[:8]}"


