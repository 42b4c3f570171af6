#!/usr/bin/env python3
"""The module graph of runledger/src: which module (one per file) names which, and the cycles.

Usage: python3 scripts/module-graph.py [runledger/src] [--edges]

A module names another when it writes a path into it (`use crate::a::b`, `crate::a::f()`,
`super::x`, a re-export of a child, a call through a child's name). Test modules are left out.
The cycles are the strongly connected components with more than one module.
"""
import os, re, sys
args = [a for a in sys.argv[1:] if not a.startswith('--')]
root = args[0] if args else 'runledger/src'
files = {}
for d, _, fs in os.walk(root):
    for f in fs:
        if f.endswith('.rs'):
            p = os.path.join(d, f)
            rel = os.path.relpath(p, root)[:-3]
            mod = rel.replace('/mod', '').replace('/', '::')
            if mod == 'lib': mod = 'crate'
            files[mod] = open(p).read()
mods = set(files)
def strip_tests(src):
    i = src.find('#[cfg(test)]\nmod tests')
    return src if i < 0 else src[:i]
def resolve(path, here):
    parts = path.split('::')
    best = None
    for i in range(len(parts), 0, -1):
        cand = '::'.join(parts[:i])
        if cand in mods:
            best = cand; break
    return best
edges = {}
for m, src in files.items():
    src = strip_tests(src)
    # drop comments
    src = re.sub(r'//[^\n]*', '', src)
    out = set()
    # expand `use crate::{a, b::c}` groups roughly
    for use in re.findall(r'use\s+crate::([^;]+);', src, re.S):
        use = re.sub(r'\s+', '', use)
        def expand(prefix, s):
            res = []
            if '{' not in s:
                return [prefix + s]
            i = s.index('{')
            pre = s[:i]
            body = s[i+1:s.rindex('}')]
            depth = 0; cur = ''; items = []
            for ch in body:
                if ch == ',' and depth == 0:
                    items.append(cur); cur = ''
                else:
                    depth += ch == '{'; depth -= ch == '}'; cur += ch
            if cur: items.append(cur)
            for it in items:
                res += expand(prefix + pre, it)
            return res
        for p in expand('', use):
            r = resolve(p.rstrip(':'), m)
            if r: out.add(r)
    for p in re.findall(r'crate::((?:[a-z_0-9]+::)*[a-z_0-9]+)', src):
        r = resolve(p, m)
        if r: out.add(r)
    # super:: references
    for p in re.findall(r'super::((?:[a-z_0-9]+::)*[A-Za-z_0-9]+)', src):
        parent = m.rsplit('::', 1)[0] if '::' in m else 'crate'
        if m in files and os.path.exists(os.path.join(root, m.replace('::','/'), 'mod.rs')):
            parent = m.rsplit('::', 1)[0] if '::' in m else 'crate'
        r = resolve((parent + '::' + p) if parent != 'crate' else p, m)
        if r: out.add(r)
    parent = m.rsplit('::', 1)[0] if '::' in m else None
    if parent and re.search(r'\bsuper::', src):
        # `super::{A, b::C}` and `super::X`: the parent, or the sibling named
        for p in re.findall(r'super::([a-z_0-9]+)::', src):
            r = resolve(parent + '::' + p, m)
            if r: out.add(r)
        if re.search(r'super::[A-Z]', src):
            out.add(parent)
        for group in re.findall(r'super::\{([^}]*)\}', src):
            for item in re.split(r'\s*,\s*', group.strip()):
                if not item:
                    continue
                head = item.split('::')[0]
                if head[:1].isupper() or head == 'self':
                    out.add(parent)
                else:
                    r = resolve(parent + '::' + head, m)
                    out.add(r if r else parent)
    # children re-exported (`pub use self::context::JobContext`, `pub(crate) use cron::ON_TIME`)
    for child in re.findall(r'^\s*(?:pub(?:\([a-z]+\))?\s+)?use\s+(?:self::)?([a-z_0-9]+)::', src, re.M):
        full = (m + '::' + child) if m != 'crate' else child
        if full in mods and child not in ('crate', 'super', 'std'):
            out.add(full)
    # children named by a relative path (`lease::run`)
    for child in re.findall(r'^\s*(?:pub(?:\([a-z]+\))?\s+)?mod\s+([a-z_0-9]+)\s*;', src, re.M):
        full = (m + '::' + child) if m != 'crate' else child
        body = re.sub(r'^\s*(?:pub(?:\([a-z]+\))?\s+)?(?:mod|use)\s+[^;]*;', '', src, flags=re.M)
        if full in mods and re.search(r'(?<![:\w])' + child + r'::', body):
            out.add(full)
    out.discard(m)
    # a module naming its own submodule is not an arrow back
    edges[m] = sorted(x for x in out if x != 'crate')
# Tarjan SCC
index = {}; low = {}; stack = []; on = set(); sccs = []; n = [0]
sys.setrecursionlimit(10000)
def sc(v):
    index[v] = low[v] = n[0]; n[0] += 1; stack.append(v); on.add(v)
    for w in edges.get(v, []):
        if w not in index:
            sc(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on.discard(w); comp.append(w)
            if w == v: break
        if len(comp) > 1: sccs.append(sorted(comp))
for v in sorted(edges):
    if v not in index: sc(v)
if '--edges' in sys.argv:
    for m in sorted(edges):
        if m == 'crate': continue
        print(f"{m} -> {', '.join(edges[m]) or '-'}")
print(f"cycles: {len(sccs)}")
for c in sccs:
    print('  ' + ', '.join(c))
