"""``mlfit worker``: join a Dask cluster as a measuring worker, advertising the targets this
machine embodies (a thin wrapper over ``dask worker``; no mlfit-specific server)."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer


def worker_argv(
    scheduler: str, targets: list[str], host: str | None, name: str | None, nanny: bool, death_timeout: float
) -> list[str]:
    """The ``dask worker`` command line: one thread (measurements never share a machine),
    no dashboard, and one ``mlfit-target-NAME=1`` resource per embodied target."""
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
        "--no-dashboard",
        "--death-timeout",
        f"{death_timeout:g}",
        "--nanny" if nanny else "--no-nanny",
    ]
    if targets:
        argv += ["--resources", ",".join(f"{resource_name(t)}=1" for t in targets)]
    if host:
        argv += ["--host", host]
    if name:
        argv += ["--name", name]
    return argv


def register(app: typer.Typer) -> None:
    @app.command()
    def worker(
        scheduler: Annotated[
            str, typer.Argument(help="The Dask scheduler, e.g. tcp://10.0.0.5:8786.", show_default=False)
        ],
        target: Annotated[
            list[str] | None,
            typer.Option(
                "--target",
                "-t",
                help="A target this machine IS (repeatable): measurements for it are sent here and "
                "labelled measured-on-target. Omit for a general-purpose worker.",
            ),
        ] = None,
        host: Annotated[
            str | None, typer.Option("--host", help="Address to listen on, e.g. 127.0.0.1.")
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
    ) -> None:
        """Join a Dask cluster as a worker that measures models (runs `dask worker` with one thread).

        Example on a Raspberry Pi in the lab: mlfit worker tcp://ci-host:8786 --target edge
        """
        import importlib.util

        from mlfit.api import resolve_targets
        from mlfit.errors import ConfigError

        if importlib.util.find_spec("distributed") is None:
            raise ConfigError(
                "`mlfit worker` needs the 'distributed' package", "pip install 'mlfit[cluster]'"
            )
        names = [t.name for t in resolve_targets(target or [])]
        argv = worker_argv(scheduler, names, host, name, nanny, death_timeout)
        what = f"embodying {', '.join(names)}" if names else "for any target (host figures)"
        sys.stderr.write(f"mlfit worker: joining {scheduler} {what}\n")
        sys.stderr.flush()
        os.execv(argv[0], argv)  # the Dask worker takes over this process: signals reach it directly
