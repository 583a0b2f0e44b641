#!/usr/bin/env python3
"""Lists the circles among a crate's modules, from cargo-modules' DOT graph on stdin.

`cargo modules dependencies --acyclic` judges items, and a type whose method names the
type is a circle to it; the layers are about modules, so this reads the graph of modules
alone (`--no-fns --no-traits --no-types`) and looks for modules that use each other, in any
ring, through its "uses" edges. Exits 1 when there is a circle. See `make module-circles`.
"""

import re
import sys

USES = re.compile(r'"([^"]+)" -> "([^"]+)" \[label="uses"')


def circles(edges):
    """The strongly connected sets of more than one module (Tarjan's algorithm)."""
    graph = {}
    for source, target in edges:
        graph.setdefault(source, []).append(target)
        graph.setdefault(target, [])
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            ring = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                ring.append(member)
                if member == node:
                    break
            if len(ring) > 1:
                found.append(sorted(ring))

    sys.setrecursionlimit(10_000)
    for node in graph:
        if node not in index:
            visit(node)
    return found


def main():
    crate = sys.argv[1] if len(sys.argv) > 1 else None
    # The crate root re-exports (`pub use`) what it maps: those edges are no layer's.
    edges = {
        match.groups()
        for match in map(USES.search, sys.stdin)
        if match and match.group(1) != crate
    }
    found = circles(edges)
    print(f"{len(edges)} uses between modules, {len(found)} circles")
    for ring in found:
        print("circle:", " <-> ".join(ring))
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
