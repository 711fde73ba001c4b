"""Stored results, and a stored result carried over to a tree whose changed files only moved.

A whole-scan result is stored under a key of every file's content key (and
whatever else it depends on); a tree seen before gets it back as it was.

Most edits between two scans leave a file's facts as they were but for where
things are: a comment written, a line inserted above a function, a message
reworded, code reformatted.  The analysis never reads a position to decide
anything (byte offsets only order a function's statements), so such a tree
has the findings of an earlier scan with their positions moved.  A changed
file qualifies when its facts, positions taken out and byte offsets replaced
by their order, equal the facts it had; each position the old facts held is
then paired with the new one, and every position in the stored findings is
moved through those pairs.  The last few layouts of a tree (each file's
content key when a result was stored) are kept, so a gate that looks at a
patched tree and then the tree on disk carries either over.  Anything else (a
call added, a mask changed, a file added or removed, a position the pairs do
not know, an order the move would change) is no carry-over, and the pipeline
analyses the tree again.
"""

from __future__ import annotations

import json
import marshal
from collections.abc import Callable
from dataclasses import replace
from typing import NamedTuple

from .cache import Cache, combined_key, salt
from .discover import Skipped
from .facts import EV_RETURN, FileFacts, call_sites, flow_events
from .findings import ChainStep, Covered, Finding, Stats

Place = tuple[int, int]  # (line, column)
# At most this many changed files are compared with their facts of an earlier
# scan; past it, a tree has likely changed in ways that call for a new analysis.
MOVED_AT_MOST = 256
RECENT_LAYOUTS = 4  # layouts kept per tree


class Stored(NamedTuple):
    """A whole-scan result: every finding, the tree's figures, the files degraded."""

    findings: list[Finding]
    stats: Stats
    degraded: tuple[Skipped, ...]


class Layout(NamedTuple):
    """What a stored result was computed from: its key and each file's content key."""

    result_key: str
    files: dict[str, str]


class Results:
    """Stored results, and the recent layouts of each tree (by `tree`, a key of its
    root, its files' paths and its configuration).  Without a cache, nothing."""

    def __init__(self, cache: Cache | None):
        self.cache = cache

    def get(self, key: str) -> Stored | None:
        blob = self.cache.get(key) if self.cache is not None else None
        if blob is None:
            return None
        try:
            document = json.loads(blob)
            findings = [Finding.from_dict(f) for f in document["findings"]]
            return Stored(findings, Stats(**document["stats"]),
                          tuple(Skipped(p, r) for p, r in document["degraded"]))
        except Exception:  # not what this version writes: analyse again, never trust it
            self.cache.discard(key)
            return None

    def put(self, key: str, stored: Stored) -> None:
        if self.cache is None:
            return
        document = {
            "findings": [f.to_dict() for f in stored.findings],
            "stats": {k: v for k, v in stored.stats.to_dict().items() if k not in ("seconds", "cache")},
            "degraded": [[d.path, d.reason] for d in stored.degraded],
        }
        self.cache.put(key, json.dumps(document, sort_keys=True).encode())

    def remember(self, tree: str, layout: Layout) -> None:
        """Keep `layout` as the tree's most recent one."""
        if self.cache is None:
            return
        recent = self._recent(tree)
        if recent[:1] == [layout.result_key]:
            return
        if layout.result_key not in recent:
            self.cache.put(_files_key(layout.result_key), marshal.dumps(layout.files))
        recent = [layout.result_key, *(key for key in recent if key != layout.result_key)][:RECENT_LAYOUTS]
        self.cache.put(tree, marshal.dumps(recent))

    def carry_over(self, tree: str, layout: Layout,
                   facts: Callable[[str, str], tuple[FileFacts | None, FileFacts | None]]) -> tuple[Stored | None, int]:
        """A stored result of this tree carried over to `layout`, and how many files
        moved; (None, 0) when none can be.  `facts(path, old key)` gives a changed
        file's facts then and now.  The layouts with the fewest changed files are
        tried first."""
        tries = []
        for order, key in enumerate(self._recent(tree)):
            files = self._files(key)
            changed = _changed(files, layout.files) if files is not None else None
            if changed and len(changed) <= MOVED_AT_MOST:
                tries.append((len(changed), order, key, files, changed))
        for _, _, key, files, changed in sorted(tries):
            stored = self.get(key)
            if stored is None:
                continue
            by_file = {}
            for path in changed:
                old, new = facts(path, files[path])
                found = moves(old, new) if old is not None and new is not None else None
                if found is None:
                    break
                by_file[path] = found
            else:
                findings = moved_findings(stored.findings, by_file)
                if findings is not None:
                    return stored._replace(findings=findings), len(changed)
        return None, 0

    def _recent(self, tree: str) -> list[str]:
        blob = self.cache.get(tree) if self.cache is not None else None
        try:
            recent = marshal.loads(blob) if blob is not None else []
        except (ValueError, EOFError, TypeError):
            recent = []
        return [key for key in recent if type(key) is str] if type(recent) is list else []

    def _files(self, result_key: str) -> dict[str, str] | None:
        blob = self.cache.get(_files_key(result_key))
        try:
            files = marshal.loads(blob) if blob is not None else None
        except (ValueError, EOFError, TypeError):
            return None
        return files if type(files) is dict else None


def _files_key(result_key: str) -> str:
    return combined_key([result_key], salt("layout files"))


def _changed(then: dict[str, str], now: dict[str, str]) -> list[str] | None:
    """The files whose content changed, or None when files were added or removed
    (or one cannot be read: it has no key)."""
    if then.keys() != now.keys() or not all(now.values()):
        return None
    return sorted(path for path, key in now.items() if then[path] != key)


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
    """The findings with every position in a moved file moved; None when one of them
    cannot be, or when the move would change their order (which numbers the
    fingerprints of identical findings)."""
    try:
        out = [_moved(finding, by_file) for finding in findings]
    except _Unmovable:
        return None
    keys = [finding.sort_key() for finding in out]
    if any(a > b for a, b in zip(keys, keys[1:])):
        return None
    return out


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
