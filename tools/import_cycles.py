"""List the import circles between modules of mlfit (inside packages too).

A circle is a strongly connected set of modules: each reaches the others through imports,
lazy ones (inside functions) included, ``if TYPE_CHECKING:`` ones left out (they never run).
Prints one line per circle and the count; exits 1 when there is any, so ``make lint`` could
run it. Usage: ``PYTHONPATH=src python tools/import_cycles.py``.
"""

from __future__ import annotations

import sys

import grimp


def circles(package: str = "mlfit") -> list[list[str]]:
    graph = grimp.build_graph(package, exclude_type_checking_imports=True)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in sorted(graph.modules)}
    # Tarjan's strongly connected components, iterative (no recursion limit on a deep chain).
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in edges:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            targets = edges.get(node, [])
            if i < len(targets):
                work.append((node, i + 1))
                nxt = targets[i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                group = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    group.append(top)
                    if top == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return sorted(found)


def main() -> int:
    found = circles()
    for group in found:
        print(" <-> ".join(group))
    print(f"{len(found)} import circle(s)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
