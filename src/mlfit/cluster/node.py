"""The Dask worker class ``mlfit worker`` runs (``dask worker --worker-class``).

A plain Dask worker always starts an HTTP server (health, metrics, and the dashboard when it
is on), and ``dask worker`` binds it to every interface. A measuring worker serves no web page
unless ``mlfit worker --dashboard`` asks for one, and then only on the worker's own interface.
It also makes its private scratch folder at start (sweeping the folders of dead workers), so
model bytes and temporary files never outlive it (see :mod:`mlfit.cluster.scratch`).
"""

from __future__ import annotations

from typing import Any

from distributed import Worker

from mlfit.cluster.scratch import own_folder


class MeasuringWorker(Worker):
    """A Dask worker without an HTTP server unless ``dashboard=True``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        own_folder()
        super().__init__(*args, **kwargs)

    def start_http_server(self, routes: Any, dashboard_address: Any, default_port: int = 0,
                          ssl_options: Any = None) -> None:
        if self._dashboard:
            super().start_http_server(routes, dashboard_address, default_port, ssl_options)
