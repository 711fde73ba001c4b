"""Expectations written on fixture lines: `/* expect: rule[, rule] */` and `/* ok */`."""

from __future__ import annotations

import re
from pathlib import Path

EXPECT = re.compile(r"/\*\s*expect:\s*([a-z][a-z-]*(?:\s*,\s*[a-z][a-z-]*)*)\s*\*/")
OK = re.compile(r"/\*\s*ok\b[^*]*\*/")


def source_files(tree: Path) -> list[Path]:
    return sorted(p for p in tree.rglob("*") if p.suffix in (".c", ".h"))


def read(tree: Path) -> tuple[set[tuple[str, int, str]], set[tuple[str, int]]]:
    """(expected findings as (file, line, rule), lines that must have none)."""
    expected: set[tuple[str, int, str]] = set()
    clean: set[tuple[str, int]] = set()
    for path in source_files(tree):
        rel = path.relative_to(tree).as_posix()
        for number, line in enumerate(path.read_text().splitlines(), 1):
            m = EXPECT.search(line)
            if m:
                for rule in m.group(1).split(","):
                    expected.add((rel, number, rule.strip()))
            if OK.search(line):
                clean.add((rel, number))
    return expected, clean


def rewrite(tree: Path, actual: set[tuple[str, int, str]]) -> None:
    """Make the expect annotations say exactly `actual` (used after a deliberate change)."""
    by_line: dict[tuple[str, int], list[str]] = {}
    for rel, line, rule in actual:
        by_line.setdefault((rel, line), []).append(rule)
    for path in source_files(tree):
        rel = path.relative_to(tree).as_posix()
        lines = path.read_text().splitlines(keepends=True)
        changed = False
        for index, text in enumerate(lines):
            rules = sorted(by_line.get((rel, index + 1), []))
            body = text.rstrip("\n")
            new = EXPECT.sub("", body).rstrip()
            if rules:
                new = OK.sub("", new).rstrip() + f"\t/* expect: {', '.join(rules)} */"
            elif EXPECT.search(body):
                new = new.rstrip()
            else:
                new = body
            if new != body:
                lines[index] = new + ("\n" if text.endswith("\n") else "")
                changed = True
        if changed:
            path.write_text("".join(lines))
