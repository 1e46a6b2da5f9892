"""List functions longer than a limit (default 100 lines) under the given paths.

Usage: ``python tools/long_functions.py [--max N] PATH...``; exits 1 when any is found.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path


def long_functions(paths: list[str], limit: int) -> list[tuple[str, str, int]]:
    found = []
    for root in paths:
        files = [Path(root)] if root.endswith(".py") else sorted(Path(root).rglob("*.py"))
        for path in files:
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    length = (node.end_lineno or node.lineno) - node.lineno + 1
                    if length > limit:
                        found.append((str(path), node.name, length))
    return found


def main(argv: list[str]) -> int:
    limit = 100
    if argv[:1] == ["--max"]:
        limit, argv = int(argv[1]), argv[2:]
    found = long_functions(argv or ["src/mlfit"], limit)
    for path, name, length in sorted(found, key=lambda f: -f[2]):
        print(f"{length:4d}  {path}: {name}")
    print(f"{len(found)} function(s) over {limit} lines")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
