#!/usr/bin/env python3
"""Import cycles between the modules (files) of src/: prints each strongly
connected group of modules that import each other, and exits 1 if any.
An edge is a `crate::`/`super::`/`self::` path in non-test code (a file is read
up to its first `#[cfg(test)]`; `super::` in an inline `mod x { }` is the file itself) naming another module; `mod` declarations
are structure, not imports, but a parent's paths into its children
(`ec2::SPEC` in kinds/mod.rs) are imports.
Usage: python3 build/import-cycles.py [SRC=src]"""
import os, re, sys

src = sys.argv[1] if len(sys.argv) > 1 else "src"
mods = {}  # module path tuple -> file
for dp, _, fs in os.walk(src):
    for f in fs:
        if not f.endswith(".rs"):
            continue
        rel = os.path.relpath(os.path.join(dp, f), src)[:-3].split(os.sep)
        if rel[-1] in ("mod", "lib", "main"):
            rel = rel[:-1]
        if rel and rel[0] == "bin":
            continue
        mods[tuple(rel)] = os.path.join(dp, f)

def resolve(path):
    """The longest module prefix of `path` (a tuple of names)."""
    for n in range(len(path), 0, -1):
        if path[:n] in mods:
            return path[:n]
    return None

path_re = re.compile(r"\b((?:crate|super|self)(?:::\w+)+)")
group_re = re.compile(r"\buse\s+((?:crate|super|self)(?:::\w+)*)::\{([^;]*)\}", re.S)
graph = {m: set() for m in mods}
for m, f in mods.items():
    text = []
    inline = []  # indents of the inline `mod x {` blocks we are in
    for line in open(f, encoding="utf-8"):
        if re.match(r"#\[cfg\((all\()?test\b", line):
            break
        if re.match(r"\s*(pub(\(\w+\))?\s+)?mod\s+\w+\s*;", line):
            continue
        opened = re.match(r"(\s*)(pub(\(\w+\))?\s+)?mod\s+\w+\s*\{", line)
        if opened:
            inline.append(len(opened.group(1)))
            continue
        if inline and re.match(r"\s*\}", line) and len(line) - len(line.lstrip()) == inline[-1]:
            inline.pop()
            continue
        code = line.split("//")[0]
        # In an inline module, `super::` is the file's own module.
        for _ in inline:
            code = re.sub(r"\bsuper::", "self::", code, count=0)
        text.append(code)
    text = "".join(text)
    is_dir = os.path.basename(f) in ("mod.rs", "lib.rs")
    here = m if is_dir else m[:-1]  # the module `self` paths and children hang off
    def absolute(p):
        parts = p.split("::")
        if parts[0] == "crate":
            return tuple(parts[1:])
        base = list(m)
        if parts[0] == "self":
            return tuple(base + parts[1:])
        while parts and parts[0] == "super":
            base = base[:-1]
            parts = parts[1:]
        return tuple(base + parts)
    paths = [absolute(p) for p in path_re.findall(text)]
    for prefix, inner in group_re.findall(text):
        for item in re.split(r",", re.sub(r"\{[^}]*\}", "", inner)):
            name = item.strip().split(" as ")[0].split("::")[0].strip()
            if name and name != "self":
                paths.append(absolute(prefix) + (name,))
    children = {k[len(m)] for k in mods if len(k) == len(m) + 1 and k[: len(m)] == m}
    if children:
        for child, rest in re.findall(r"(?<![\w:])(\w+)((?:::\w+)+)", text):
            if child in children:
                paths.append(m + (child,) + tuple(rest.split("::")[1:]))
    for p in paths:
        target = resolve(p)
        if target is not None and target != m:
            graph[m].add(target)

index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]
sys.setrecursionlimit(10000)
def strong(v):
    index[v] = low[v] = counter[0]; counter[0] += 1
    stack.append(v); on.add(v)
    for w in graph[v]:
        if w not in index:
            strong(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on.discard(w); comp.append(w)
            if w == v:
                break
        if len(comp) > 1:
            sccs.append(comp)
for v in graph:
    if v not in index:
        strong(v)
for comp in sccs:
    print("cycle:", " ".join("::".join(c) or "crate" for c in sorted(comp)))
print(f"{len(mods)} modules, {sum(len(e) for e in graph.values())} imports, {len(sccs)} cycles")
sys.exit(1 if sccs else 0)
