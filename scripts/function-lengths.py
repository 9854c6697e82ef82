#!/usr/bin/env python3
"""Every function in src/ is short enough to see whole: at most 70 lines
(TigerBeetle's rule; ARCHITECTURE.md, invariants). Lists the longer ones
and exits 1 if there are any. Relies on rustfmt's layout (a function ends
at the first `}` line at its own indentation), which CI checks first.
Usage: python3 scripts/function-lengths.py [LIMIT]"""
import glob
import re
import sys

LIMIT = int(sys.argv[1]) if len(sys.argv) > 1 else 70
FN = re.compile(r"^(\s*)(pub(\([a-z]+\))? )?(const )?(async )?(unsafe )?fn (\w+)")

longer = []
for path in sorted(glob.glob("src/**/*.rs", recursive=True)):
    lines = open(path, encoding="utf-8").read().split("\n")
    index = 0
    while index < len(lines):
        match = FN.match(lines[index])
        if match and not lines[index].rstrip().endswith(";"):
            indent = match.group(1)
            end = index + 1
            while end < len(lines) and lines[end].rstrip() != indent + "}":
                end += 1
            length = end - index + 1
            if length > LIMIT:
                longer.append((length, path, index + 1, match.group(7)))
            index = end
        index += 1
for length, path, line, name in sorted(longer, reverse=True):
    print(f"{path}:{line}: {name} is {length} lines (at most {LIMIT})")
sys.exit(1 if longer else 0)
