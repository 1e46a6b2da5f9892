"""List functions longer than a limit (default 100 lines) under the given paths.

A typer command declaration is excepted: the parameters of a function decorated with
``@app.command()`` (one typed option a line, their help included) do not count, and such a
command nested in a registering function counts as its own function, not as part of the
registering one. Usage: ``python tools/long_functions.py [--max N] PATH...``; exits 1 when any
is found (``make lint`` runs it).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

Function = ast.FunctionDef | ast.AsyncFunctionDef


def _is_command(node: Function) -> bool:
    """Decorated with ``something.command(...)`` (typer)."""
    return any(isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute) and d.func.attr == "command"
               for d in node.decorator_list)


def _span(node: ast.stmt) -> int:
    return (node.end_lineno or node.lineno) - node.lineno + 1


def length(node: Function) -> int:
    """Lines of ``node``, less a command's parameter list and the nested commands it declares."""
    total = _span(node)
    if _is_command(node) and node.body:
        total -= node.body[0].lineno - node.lineno  # the signature: typer's option declarations
    nested = [n for n in ast.walk(node) if n is not node and isinstance(n, Function) and _is_command(n)]
    return total - sum(_span(n) + len(n.decorator_list) for n in nested)


def long_functions(paths: list[str], limit: int) -> list[tuple[str, str, int]]:
    found = []
    for root in paths:
        files = [Path(root)] if root.endswith(".py") else sorted(Path(root).rglob("*.py"))
        for path in files:
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, Function) and length(node) > limit:
                    found.append((str(path), node.name, length(node)))
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
