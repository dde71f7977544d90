#!/usr/bin/python3
"""Fails when the C files of a folder call each other in a circle.

usage: callcircles.py DIR...
File A depends on file B when A names (calls, or passes as a callback) a function that B defines without
`static`. Files that depend on each other, directly or through others, form a circle; every circle is
printed with the names that tie it, and the exit status is 1. `make check` runs this on lbd/ and vrrpd/
so their one direction of calls (docs/ARCHITECTURE.md) stays.
"""
import os
import re
import sys

COMMENTS_STRINGS = re.compile(r'/\*.*?\*/|//[^\n]*|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])\'', re.S)
# A definition at file level: starts in column 0, not static, `name(params) {` (params may span lines).
DEFINITION = re.compile(r'^(?!static\b|typedef\b|struct\b[^(]*;)[A-Za-z_][^;{}()]*?\b([A-Za-z_]\w*)\s*\([^;{}]*\)\s*\{',
                        re.M)
IDENT = re.compile(r'\b[A-Za-z_]\w*\b')


def graph(folder):
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".c"))
    text = {f: COMMENTS_STRINGS.sub(" ", open(f, errors="replace").read()) for f in files}
    owner = {}
    for f in files:
        for m in DEFINITION.finditer(text[f]):
            owner.setdefault(m.group(1), f)
    edges = {f: {} for f in files}
    for f in files:
        for ident in set(IDENT.findall(text[f])):
            o = owner.get(ident)
            if o is not None and o != f:
                edges[f].setdefault(o, []).append(ident)
    return files, edges


def reach(edges, start):
    seen, todo = set(), [start]
    while todo:
        for nxt in edges[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def circles(files, edges):
    reachable = {f: reach(edges, f) for f in files}
    out, done = [], set()
    for f in files:
        if f in done or f not in reachable[f]:
            continue
        group = sorted(g for g in files if g in reachable[f] and f in reachable[g])
        done.update(group)
        out.append(group)
    return out


def main(folders):
    found = 0
    for folder in folders:
        files, edges = graph(folder)
        here = circles(files, edges)
        found += len(here)
        for group in here:
            print(f"circle of {len(group)} files: {', '.join(group)}")
            for a in group:
                for b in sorted(edges[a]):
                    if b in group:
                        print(f"  {a} -> {b}: {', '.join(sorted(edges[a][b]))}")
        print(f"{folder}: {len(files)} files, " + (f"{len(here)} circle(s)" if here else "no circle of calls"))
    return 1 if found else 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1:]))
