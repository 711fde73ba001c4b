"""The gate: what a change introduces.

Two scans of one tree — the base and the head, each the tree on disk with
some files laid over it in memory — and a comparison: a head finding whose
fingerprint the base lacks is new; one the base has too is reported only
when its chain, or an allocation it covers, runs through a changed line.
The fact cache makes the second scan cheap: only the files the change
touches are extracted again.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, replace
from pathlib import Path

from ..findings import Finding
from ..pipeline import Progress, ScanOptions, ScanResult, scan
from ..ruleset import Ruleset, load_rules

Overrides = tuple[tuple[str, bytes | None], ...]


class GateError(Exception):
    """A change that cannot be evaluated: a patch that does not apply, an unknown revision."""


@dataclass(frozen=True)
class GateResult:
    new: tuple[Finding, ...]  # absent from the base
    through_change: tuple[Finding, ...]  # in the base too, but the chain runs through a changed line
    head: ScanResult
    base: ScanResult
    changed_lines: dict[str, frozenset[int]]  # per changed file, its changed lines on the head side

    @property
    def changed_files(self) -> tuple[str, ...]:
        return tuple(sorted(self.changed_lines))


def changed_lines(before: bytes | None, after: bytes | None) -> frozenset[int]:
    """Lines of `after` (1-based) that the change added or altered; where lines
    with content were only removed, the line that now stands in their place."""
    old = (before or b"").splitlines()
    new = (after or b"").splitlines()
    lines: set[int] = set()
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        if tag in ("replace", "insert"):
            lines.update(range(j1 + 1, j2 + 1))
        elif tag == "delete" and any(line.strip() for line in old[i1:i2]):  # blank lines say nothing
            lines.add(j1 + 1)
    return frozenset(lines)


def compare(base: tuple[Finding, ...], head: tuple[Finding, ...],
            changed: dict[str, frozenset[int]]) -> tuple[tuple[Finding, ...], tuple[Finding, ...]]:
    """(new findings, pre-existing findings whose evidence runs through a changed line)."""
    known = {f.fingerprint for f in base}
    new = tuple(f for f in head if f.fingerprint not in known)

    def touches(finding: Finding) -> bool:
        places = [(finding.file, finding.line)] + [(s.file, s.line) for s in finding.chain] \
            + [(c.file, c.line) for c in finding.covers]
        return any(line in changed.get(path, ()) for path, line in places)

    through = tuple(f for f in head if f.fingerprint in known and touches(f))
    return new, through


def _content(root: Path, overrides: dict[str, bytes | None], path: str) -> bytes | None:
    if path in overrides:
        return overrides[path]
    try:
        return (root / path).read_bytes()
    except OSError:
        return None


def run_gate(options: ScanOptions, base: Overrides, head: Overrides, progress: Progress | None = None,
             rules: Ruleset | None = None) -> GateResult:
    """Scan the tree as the base and as the head and compare the two.  Only the
    head scan keeps its analysis (options.keep_analysis): the base's is freed first."""
    rules = rules or load_rules(options.rules_dirs)
    base_result = scan(replace(options, overrides=base, keep_analysis=False), progress, rules)
    head_result = scan(replace(options, overrides=head), progress, rules)
    base_files, head_files = dict(base), dict(head)
    paths = sorted(set(base_files) | set(head_files))
    changed = {path: changed_lines(_content(options.root, base_files, path),
                                   _content(options.root, head_files, path)) for path in paths}
    changed = {path: lines for path, lines in changed.items() if lines}
    new, through = compare(base_result.findings, head_result.findings, changed)
    return GateResult(new, through, head_result, base_result, changed)
