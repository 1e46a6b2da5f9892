"""``mlfit worker``: join a Dask cluster as a measuring worker, advertising the targets this
machine embodies (a thin wrapper over ``dask worker``; no mlfit-specific server).

Safe by default (docs/scale.md, Security): it listens only on the interface that reaches the
scheduler, serves no web page unless ``--dashboard``, speaks mutual TLS with ``--tls-*``, and
refuses to claim a target whose hardware this machine does not match (``--force-claim`` to
advertise it anyway: the client then labels its figures "claimed, unverified").
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from mlfit.catalog.loader import Target
    from mlfit.cluster.net import ClusterTLS

WORKER_CLASS = "mlfit.cluster.node.MeasuringWorker"


def worker_argv(
    scheduler: str, targets: list[str], host: str | None, name: str | None, nanny: bool, death_timeout: float,
    tls: ClusterTLS | None = None, dashboard: bool = False,
) -> list[str]:
    """The ``dask worker`` command line: one thread (measurements never share a machine), mlfit's
    worker class (no HTTP server unless ``dashboard``), one ``mlfit-target-NAME=1`` resource per
    embodied target, and the listen address and TLS files when given."""
    from mlfit.cluster import resource_name

    argv = [
        sys.executable,
        "-m",
        "distributed.cli.dask_worker",
        scheduler,
        "--nthreads",
        "1",
        "--nworkers",
        "1",
        "--worker-class",
        WORKER_CLASS,
        "--death-timeout",
        f"{death_timeout:g}",
        "--nanny" if nanny else "--no-nanny",
    ]
    if dashboard:
        bind = f"[{host}]" if host and ":" in host else (host or "")
        argv += ["--dashboard", "--dashboard-address", f"{bind}:0"]
    else:
        argv += ["--no-dashboard"]
    if targets:
        argv += ["--resources", ",".join(f"{resource_name(t)}=1" for t in targets)]
    if host:
        argv += ["--host", host]
    if name:
        argv += ["--name", name]
    if tls is not None:
        argv += ["--tls-ca-file", str(tls.ca_file), "--tls-cert", str(tls.cert), "--tls-key", str(tls.key)]
    return argv


def verify_claims(targets: list[Target], force: bool) -> list[str]:
    """Refuse (exit 2) to advertise a target whose hardware this machine does not match, unless
    ``force``; returns the warnings to print when forced."""
    from mlfit.cluster.claims import describe, mismatches
    from mlfit.errors import ConfigError
    from mlfit.measure.host import host_info

    host = host_info()
    warnings: list[str] = []
    for target in targets:
        found = mismatches(host, target.hardware)
        if not found:
            continue
        what = (f"this machine ({describe(host)}) is not {target.name}'s hardware {target.hardware.id}: "
                f"{'; '.join(found)}")
        if not force:
            raise ConfigError(
                what,
                f"drop --target {target.name} (a general worker), use a profile whose hardware file describes this "
                "machine, or add --force-claim (the client then labels its figures 'claimed, unverified')",
            )
        warnings.append(f"mlfit worker: warning: {what}; advertised anyway (--force-claim): clients label "
                        "its figures 'claimed, unverified', never measured on the target")
    return warnings


def register(app: typer.Typer) -> None:
    @app.command()
    def worker(
        scheduler: Annotated[
            str, typer.Argument(help="The Dask scheduler, e.g. tls://10.0.0.5:8786.", show_default=False)
        ],
        target: Annotated[
            list[str] | None,
            typer.Option(
                "--target",
                "-t",
                help="A target this machine IS (repeatable): measurements for it are sent here and "
                "labelled measured-on-target. Checked against this machine's architecture, cores and memory. "
                "Omit for a general-purpose worker.",
            ),
        ] = None,
        host: Annotated[
            str | None,
            typer.Option("--host", help="Address to listen on (default: the interface that reaches the "
                         "scheduler; loopback for a loopback scheduler)."),
        ] = None,
        name: Annotated[
            str | None, typer.Option("--name", help="Worker name shown by the scheduler.")
        ] = None,
        nanny: Annotated[
            bool,
            typer.Option("--nanny/--no-nanny", help="Run under a nanny that restarts the worker if it dies."),
        ] = True,
        death_timeout: Annotated[
            float,
            typer.Option(
                "--death-timeout", min=1.0, help="Seconds to wait for the scheduler before giving up."
            ),
        ] = 60.0,
        tls_ca_file: Annotated[Path | None, typer.Option(
            "--tls-ca-file", help="CA certificate (PEM) that signs every cluster member (mutual TLS).")] = None,
        tls_cert: Annotated[Path | None, typer.Option(
            "--tls-cert", help="This worker's certificate (PEM), signed by the CA.")] = None,
        tls_key: Annotated[Path | None, typer.Option(
            "--tls-key", help="This worker's private key (PEM).")] = None,
        dashboard: Annotated[bool, typer.Option(
            "--dashboard", help="Serve Dask's worker web pages (off by default), on the listen address only.")] = False,
        force_claim: Annotated[bool, typer.Option(
            "--force-claim", help="Advertise each --target even when this machine does not match its hardware "
            "(clients label the figures 'claimed, unverified').")] = False,
    ) -> None:
        """Join a Dask cluster as a worker that measures models (runs `dask worker` with one thread).

        Example on a Raspberry Pi in the lab: mlfit worker tls://ci-host:8786 --target edge
        --tls-ca-file ca.pem --tls-cert pi.pem --tls-key pi-key.pem
        """
        import importlib.util

        from mlfit.api import resolve_targets
        from mlfit.cluster.net import bind_host, check_scheme, parse_address, tls_from_flags, warn_if_plain_tcp
        from mlfit.cluster.scratch import sweep
        from mlfit.errors import ConfigError

        if importlib.util.find_spec("distributed") is None:
            from mlfit.install import install_hint

            raise ConfigError(
                "`mlfit worker` needs the 'distributed' package", install_hint("cluster")
            )
        address = parse_address(scheduler, "mlfit worker")
        tls = tls_from_flags(tls_ca_file, tls_cert, tls_key)
        check_scheme(address, tls, "mlfit worker")
        warn_if_plain_tcp(address, "mlfit worker")
        resolved = resolve_targets(target or [])
        for line in verify_claims(resolved, force_claim):
            sys.stderr.write(line + "\n")
        listen = host or bind_host(address)
        if listen in ("0.0.0.0", "::", "[::]"):
            sys.stderr.write("mlfit worker: warning: --host " + listen + " listens on every interface; the default "
                             "listens only on the one that reaches the scheduler\n")
        sweep()  # model bytes left behind by workers that died on this machine
        names = [t.name for t in resolved]
        argv = worker_argv(scheduler, names, listen, name, nanny, death_timeout, tls, dashboard)
        what = f"embodying {', '.join(names)}" if names else "for any target (host figures)"
        sys.stderr.write(f"mlfit worker: joining {scheduler} {what}, listening on {listen}\n")
        sys.stderr.flush()
        env = dict(os.environ)
        if tls is not None:
            env["DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION"] = "True"
        os.execve(argv[0], argv, env)  # the Dask worker takes over this process: signals reach it directly
