"""The pip command that adds an extra to *this* mlfit, for error hints.

A bare ``pip install 'mlfit[tensorflow]'`` takes whatever holds the name ``mlfit`` on PyPI, which
is not this project. So a hint names where this mlfit was installed from, as pip recorded it
(PEP 610 ``direct_url.json``): a checkout (``pip install '/path/to/mlfit[tensorflow]'``) or a git
URL (``pip install 'mlfit[tensorflow] @ git+https://...@REV'``); without a record, the checkout form.
"""

from __future__ import annotations

import json
from importlib import metadata
from urllib.parse import unquote, urlparse


def install_source() -> str | None:
    """Where this mlfit was installed from: a local folder, a VCS URL with its revision, or None."""
    try:
        text = metadata.distribution("mlfit").read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None
    if not text:
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return None
    url = record.get("url") if isinstance(record, dict) else None
    if not isinstance(url, str) or not url:
        return None
    if url.startswith("file://") and "dir_info" in record:
        return unquote(urlparse(url).path)
    vcs = record.get("vcs_info")
    if isinstance(vcs, dict) and isinstance(vcs.get("vcs"), str):
        revision = vcs.get("requested_revision") or vcs.get("commit_id")
        return f"{vcs['vcs']}+{url}" + (f"@{revision}" if revision else "")
    return None


def install_hint(extra: str) -> str:
    """``pip install ...`` that adds ``extra`` (e.g. "tensorflow") to this mlfit, never from PyPI."""
    source = install_source()
    if source is None:
        return f"in mlfit's checkout: pip install '.[{extra}]' (or 'mlfit[{extra}] @ git+URL' of its repository)"
    if "://" in source:
        return f"pip install 'mlfit[{extra}] @ {source}'"
    return f"pip install '{source}[{extra}]'"
