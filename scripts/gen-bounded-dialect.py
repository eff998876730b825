#!/usr/bin/env python3
"""Prints the forwarding methods of libs/posbon-sql/src/parse/dialect.rs.

Usage: scripts/gen-bounded-dialect.py ~/.cargo/registry/src/*/sqlparser-X.Y.Z/src/dialect/mod.rs

Reads sqlparser's `pub trait Dialect` and writes, for each of its methods, a
method of `impl Dialect for Bounded` that counts a step and calls the
wrapped dialect's. Paste the output
over the methods of that impl block when sqlparser is upgraded, then run
`cargo fmt` and `cargo test -p posbon-sql parse`.
"""
import re
import sys

source = open(sys.argv[1]).read()
start = source.index("\npub trait Dialect")
end = source.index("\n}\n", start)
body = source[source.index("{", start) + 1 : end]

count = 0
for m in re.finditer(
    r"\n    fn (\w+)(<[^>]*>)?\((.*?)\)(\s*->\s*[^{;]+?)?\s*(where[^{;]*)?[{;]", body, re.S
):
    name, generics, args, ret, _where = m.groups()
    args = " ".join(args.split())
    ret = " ".join(ret.split()) if ret else ""
    parts = [a.strip() for a in re.split(r",(?![^<]*>)", args) if a.strip()]
    assert parts[0] == "&self", (name, parts)
    params, names = [], []
    for part in parts[1:]:
        param, ty = part.split(":", 1)
        param = param.strip().replace("mut ", "").lstrip("_") or "x"
        # The workspace denies elided lifetimes in paths (`Parser<'_>`).
        ty = re.sub(r"\bParser\b(?!<)", "Parser<'_>", ty.strip())
        params.append(f"{param}: {ty}")
        names.append(param)
    signature = f"    fn {name}{generics or ''}(&self{''.join(', ' + p for p in params)}){(' ' + ret) if ret else ''}"
    call = f"self.inner.{name}({', '.join(names)})"
    print(f"{signature} {{\n        self.step();\n        {call}\n    }}\n")
    count += 1
print(f"{count} methods", file=sys.stderr)
