"""A stored result carried over to a tree whose changed files only moved.

Most edits between two scans leave a file's facts as they were but for where
things are: a comment written, a line inserted above a function, a message
reworded, code reformatted.  The analysis never reads a position to decide
anything (byte offsets only order a function's statements), so such a tree
has the findings of the last scan with their positions moved.  A changed
file qualifies when its facts, positions taken out and byte offsets replaced
by their order, equal the facts it had; each position the old facts held is
then paired with the new one, and every position in the stored findings is
moved through those pairs.  Anything else (a call added, a mask changed, a
file added or removed, a position the pairs do not know, an order the move
would change) returns None, and the pipeline analyses the tree again.
"""

from __future__ import annotations

import marshal
from dataclasses import replace
from typing import NamedTuple

from .facts import EV_RETURN, FileFacts, call_sites, flow_events
from .findings import ChainStep, Covered, Finding

Place = tuple[int, int]  # (line, column)


class Layout(NamedTuple):
    """What a stored result was computed from: its key and each file's content key."""

    result_key: str
    files: dict[str, str]


def dump_layout(layout: Layout) -> bytes:
    return marshal.dumps((layout.result_key, layout.files))


def load_layout(blob: bytes | None) -> Layout | None:
    """The layout stored, or None when there is none or it is not what this version writes."""
    if blob is None:
        return None
    try:
        result_key, files = marshal.loads(blob)
    except (ValueError, EOFError, TypeError):
        return None
    if type(result_key) is not str or type(files) is not dict:
        return None
    return Layout(result_key, files)


def changed_files(layout: Layout, files: dict[str, str]) -> list[str] | None:
    """The files whose content changed since the layout, or None when files were
    added or removed (or a key is missing: a file that cannot be read)."""
    if layout.files.keys() != files.keys() or not all(files.values()):
        return None
    return sorted(path for path, key in files.items() if layout.files[path] != key)


class Moves:
    """Where each position of one file's old facts is in its new facts."""

    def __init__(self, pairs: list[tuple[Place, Place]]):
        self.places: dict[Place, Place] = {}
        self.lines: dict[int, int | None] = {}  # None: the old line went to two lines
        for old, new in pairs:
            if self.places.setdefault(old, new) != new:
                raise _Unmovable
            if self.lines.setdefault(old[0], new[0]) != new[0]:
                self.lines[old[0]] = None
        ordered = sorted(self.places)
        if any(self.places[a] >= self.places[b] for a, b in zip(ordered, ordered[1:])):
            raise _Unmovable  # the move would reorder places: not a move

    def place(self, line: int, column: int) -> Place:
        moved = self.places.get((line, column))
        if moved is None:
            raise _Unmovable
        return moved

    def line(self, line: int) -> int:
        moved = self.lines.get(line)
        if moved is None:
            raise _Unmovable
        return moved


class _Unmovable(Exception):
    """A position that cannot be moved: the stored result does not carry over."""


def moves(old: FileFacts, new: FileFacts) -> Moves | None:
    """How the positions of a file moved between two versions of its facts, or None
    when the facts differ in anything but positions."""
    old_shape, old_places = _shape(old)
    new_shape, new_places = _shape(new)
    if old_shape != new_shape or len(old_places) != len(new_places):
        return None
    try:
        return Moves(list(zip(old_places, new_places)))
    except _Unmovable:
        return None


def moved_findings(findings: list[Finding], by_file: dict[str, Moves]) -> list[Finding] | None:
    """The findings with every position in a moved file moved, in report order; None
    when one of them cannot be."""
    try:
        out = [_moved(finding, by_file) for finding in findings]
    except _Unmovable:
        return None
    return sorted(out, key=Finding.sort_key)


def _moved(finding: Finding, by_file: dict[str, Moves]) -> Finding:
    changes: dict = {}
    if finding.file in by_file:
        changes["line"], changes["column"] = by_file[finding.file].place(finding.line, finding.column)
    if any(step.file in by_file for step in finding.chain):
        changes["chain"] = tuple(_moved_step(step, by_file) for step in finding.chain)
    if any(covered.file in by_file for covered in finding.covers):
        changes["covers"] = tuple(sorted(_moved_covered(covered, by_file) for covered in finding.covers))
    return replace(finding, **changes) if changes else finding


def _moved_step(step: ChainStep, by_file: dict[str, Moves]) -> ChainStep:
    if step.file not in by_file:
        return step
    line, column = by_file[step.file].place(step.line, step.column)
    return replace(step, line=line, column=column)


def _moved_covered(covered: Covered, by_file: dict[str, Moves]) -> Covered:
    if covered.file not in by_file:
        return covered
    return replace(covered, line=by_file[covered.file].line(covered.line))


def _shape(facts: FileFacts) -> tuple[tuple, list[Place]]:
    """The facts with positions taken out, and those positions in order: each
    function's definition and closing line, its parameters' lines, its calls, its
    returns, and every binding's line.  A function's byte offsets become their
    rank among its offsets: only their order means anything."""
    places: list[Place] = []
    functions = []
    for function in facts.functions:
        places.append((function.line, function.column))
        places.append((function.end_line, 1))
        params = []
        for param in function.params:
            places.append((param[3], 0))
            params.append(param[:3])
        calls = []
        for call in call_sites(function):
            places.append((call[2], call[3]))
            calls.append((call[:2], call[4:]))
        functions.append((function[:1], function[4:10], tuple(params), function[11:14], tuple(calls),
                          _flow_shape(flow_events(function), places), function[16:18],
                          _bindings_shape(function.bindings, places)))
    return ((tuple(functions), _bindings_shape(facts.bindings, places), facts[3:]), places)


def _flow_shape(events: tuple, places: list[Place]) -> tuple:
    offsets = sorted({value for event in events for value in (event[0], *event[2:5]) if type(value) is int})
    rank = {offset: number for number, offset in enumerate(offsets)}
    out = []
    for key, kind, a, b, c, payload in events:
        if kind == EV_RETURN:
            places.append((payload[1], payload[2]))  # (what it returns, line, column)
            payload = payload[0]
        out.append((rank[key], kind, rank.get(a, a), rank.get(b, b), rank.get(c, c), payload))
    return tuple(out)


def _bindings_shape(bindings: tuple, places: list[Place]) -> tuple:
    out = []
    for binding in bindings:
        places.append((binding.line, 0))
        out.append(binding._replace(line=0))
    return tuple(out)
