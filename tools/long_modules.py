"""List modules longer than a limit (default 600 lines) under the given paths.

Usage: ``python tools/long_modules.py [--max N] PATH...``; exits 1 when any is found (``make lint``
runs it, so a module that outgrows one job is split when it does, not in a later clean-up).
"""

from __future__ import annotations

import sys
from pathlib import Path


def long_modules(paths: list[str], limit: int) -> list[tuple[str, int]]:
    found = []
    for root in paths:
        for path in [Path(root)] if root.endswith(".py") else sorted(Path(root).rglob("*.py")):
            lines = len(path.read_text().splitlines())
            if lines > limit:
                found.append((str(path), lines))
    return found


def main(argv: list[str]) -> int:
    limit = 600
    if argv[:1] == ["--max"]:
        limit, argv = int(argv[1]), argv[2:]
    found = long_modules(argv or ["src/mlfit"], limit)
    for path, lines in sorted(found, key=lambda f: -f[1]):
        print(f"{lines:5d}  {path}")
    print(f"{len(found)} module(s) over {limit} lines")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
