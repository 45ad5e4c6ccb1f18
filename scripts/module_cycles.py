#!/usr/bin/env python3
"""Import cycles between lifeboat's top-level modules.

Reads every `crate::<module>` path in src/ (use declarations and inline
paths alike), builds the graph "module A names module B", and prints its
strongly connected components of more than one module: each one is an
import cycle. Exits 1 if there is any. Run from the repository root:

    python3 scripts/module_cycles.py            # cycles, or "no cycle"
    python3 scripts/module_cycles.py --edges    # the whole graph
"""
import os
import re
import sys

SRC = "src"
PATH = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")


def module_of(path):
    rel = os.path.relpath(path, SRC)
    top = rel.split(os.sep)[0]
    return top[:-3] if top.endswith(".rs") else top


def graph():
    edges = {}
    for root, _, files in os.walk(SRC):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(root, f)
            here = module_of(path)
            if here in ("lib", "main"):
                continue
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
            # Test modules may reach anywhere; they are not part of the
            # library's dependency structure.
            text = re.split(r"#\[cfg\(test\)\]", text)[0]
            # Doc links and comments are not dependencies.
            text = "\n".join(
                line.split("//")[0] for line in text.splitlines()
            )
            for m in PATH.findall(text):
                if m != here:
                    edges.setdefault(here, set()).add(m)
            edges.setdefault(here, set())
    return edges


def sccs(edges):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def main():
    edges = graph()
    if "--edges" in sys.argv:
        for a in sorted(edges):
            print(f"{a} -> {', '.join(sorted(edges[a]))}")
    cycles = [c for c in sccs(edges) if len(c) > 1]
    if not cycles:
        print(f"no cycle among {len(edges)} modules")
        return 0
    for c in cycles:
        print(f"cycle of {len(c)} modules: {' '.join(c)}")
        for a in c:
            inside = sorted(edges[a] & set(c))
            print(f"  {a} -> {', '.join(inside)}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
