"""mlfit: will this model run THERE, within budget?

The public Python API lives in :mod:`mlfit.api`; its entry points are re-exported
here lazily so that ``import mlfit`` stays cheap (no runtime is imported).
"""

from __future__ import annotations

from typing import Any

from mlfit._version import __version__

__all__ = ["__version__", "check", "inspect", "profile"]


def __getattr__(name: str) -> Any:
    if name in ("check", "profile", "inspect"):
        from mlfit import api

        return getattr(api, name)
    raise AttributeError(name)
