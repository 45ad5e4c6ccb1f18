#!/usr/bin/env python3
"""Import cycles between the top-level modules of each of lifeboat's crates.

For each crate below, reads every `crate::<module>` path in its modules
(use declarations and inline paths alike), builds the graph "module A names
module B", and prints its strongly connected components of more than one
module: each one is an import cycle. Exits 1 if there is any. Run from the
repository root:

    python3 scripts/module_cycles.py            # cycles, or "no cycle"
    python3 scripts/module_cycles.py --edges    # the whole graph
"""
import os
import re
import sys

# (crate, its source directory, its root file). A crate's modules are the
# ones its root declares (`mod x;`): the binary's (`main.rs`) share `src/`
# with the library's, and `crate::` in them names the binary's own.
CRATES = [
    ("lifeboat", "src", "lib.rs"),
    ("lifeboat (binary)", "src", "main.rs"),
    ("lifeboat-sim", "sim/src", "lib.rs"),
]
PATH = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")
MOD = re.compile(r"^\s*(?:pub(?:\([a-z]+\))?\s+)?mod\s+([a-z_][a-z0-9_]*)\s*;", re.M)


def declared(src, root):
    with open(os.path.join(src, root), encoding="utf-8") as fh:
        return set(MOD.findall(fh.read()))


def module_of(path, src):
    rel = os.path.relpath(path, src)
    top = rel.split(os.sep)[0]
    return top[:-3] if top.endswith(".rs") else top


def graph(src, root):
    modules = declared(src, root)
    edges = {m: set() for m in modules}
    for walked, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(walked, f)
            here = module_of(path, src)
            if here not in modules:
                continue
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
            # Test modules may reach anywhere; they are not part of the
            # crate's dependency structure.
            text = re.split(r"#\[cfg\(test\)\]", text)[0]
            # Doc links and comments are not dependencies.
            text = "\n".join(
                line.split("//")[0] for line in text.splitlines()
            )
            for m in PATH.findall(text):
                if m != here:
                    edges[here].add(m)
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
    found, counts = False, []
    for name, src, root in CRATES:
        edges = graph(src, root)
        if not edges:
            continue
        counts.append(f"{name} {len(edges)}")
        if "--edges" in sys.argv:
            for a in sorted(edges):
                print(f"{name}: {a} -> {', '.join(sorted(edges[a]))}")
        for c in (c for c in sccs(edges) if len(c) > 1):
            found = True
            print(f"{name}: cycle of {len(c)} modules: {' '.join(c)}")
            for a in c:
                inside = sorted(edges[a] & set(c))
                print(f"  {a} -> {', '.join(inside)}")
    if found:
        return 1
    print(f"no cycle among the modules of each crate ({', '.join(counts)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
