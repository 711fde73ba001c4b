"""Unified diffs: parse them and apply them to file contents in memory.

Accepts what `git diff`, `git format-patch` and `diff -u` write: an optional
mail header, `diff --git` and its extended header lines, `--- a/x` /
`+++ b/x` with the first path component stripped (like `patch -p1`;
`/dev/null` for added and removed files), and hunks.  A hunk applies where
its context and removed lines match exactly, at the line it names or, as
patch(1) does, at the nearest offset; otherwise the patch does not apply and
PatchError says which file and hunk.  What has no hunk (a pure rename, a
mode change, a binary patch) changes nothing the scan reads and is skipped.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

_HUNK = re.compile(rb"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
DEV_NULL = "/dev/null"


class PatchError(Exception):
    """A patch that cannot be read or does not apply."""


@dataclass
class Hunk:
    old_start: int
    old: list[bytes] = field(default_factory=list)  # context and removed lines, with their ends
    new: list[bytes] = field(default_factory=list)  # context and added lines


@dataclass
class FilePatch:
    old_path: str | None  # None: the file is created
    new_path: str | None  # None: the file is deleted
    hunks: list[Hunk] = field(default_factory=list)

    @property
    def path(self) -> str:
        return self.new_path or self.old_path or ""


def _strip(raw: bytes, strip: int) -> str | None:
    name = raw.split(b"\t", 1)[0].strip().decode("utf-8", "surrogateescape")
    if name.startswith('"') and name.endswith('"'):
        name = name[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape").encode(
            "latin-1").decode("utf-8", "surrogateescape")
    if name == DEV_NULL:
        return None
    parts = name.split("/")
    if len(parts) <= strip:
        raise PatchError(f"cannot strip {strip} leading component(s) from '{name}'")
    kept = parts[strip:]
    if not kept[0] or ".." in kept:
        raise PatchError(f"'{name}' names a file outside the tree")
    return "/".join(kept)


def parse(text: bytes, strip: int = 1) -> list[FilePatch]:
    """Every file a unified diff changes, in order."""
    lines = text.splitlines(keepends=True)
    patches: list[FilePatch] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith(b"--- ") and index + 1 < len(lines) and lines[index + 1].startswith(b"+++ "):
            current = FilePatch(_strip(line[4:], strip), _strip(lines[index + 1][4:], strip))
            if current.old_path is None and current.new_path is None:
                raise PatchError(f"line {index + 1}: both sides of a file are /dev/null")
            patches.append(current)
            index += 2
            while index < len(lines) and lines[index].startswith(b"@@"):
                index = _hunk(lines, index, current)
            if not current.hunks:
                raise PatchError(f"line {index + 1}: '{current.path}' has no hunk")
            continue
        if line.startswith(b"@@"):
            raise PatchError(f"line {index + 1}: a hunk before any '---'/'+++' file header")
        index += 1
    if not patches:
        raise PatchError("no file changes found (expected a unified diff: '--- a/file', '+++ b/file', '@@')")
    return patches


def _hunk(lines: list[bytes], index: int, patch: FilePatch) -> int:
    match = _HUNK.match(lines[index])
    if match is None:
        raise PatchError(f"line {index + 1}: malformed hunk header {lines[index].strip()[:60]!r}")
    old_count = int(match.group(2)) if match.group(2) is not None else 1
    new_count = int(match.group(4)) if match.group(4) is not None else 1
    hunk = Hunk(int(match.group(1)))
    index += 1
    old_seen = new_seen = 0
    while old_seen < old_count or new_seen < new_count:
        if index >= len(lines):
            raise PatchError(f"'{patch.path}': hunk at line {hunk.old_start} is cut short")
        line = lines[index]
        tag, body = line[:1], line[1:]
        if line in (b"\n", b"\r\n"):  # an empty context line whose space was stripped by a mailer
            tag, body = b" ", line
        if tag == b" ":
            hunk.old.append(body)
            hunk.new.append(body)
            old_seen += 1
            new_seen += 1
        elif tag == b"-":
            hunk.old.append(body)
            old_seen += 1
        elif tag == b"+":
            hunk.new.append(body)
            new_seen += 1
        elif tag == b"\\":  # "\ No newline at end of file" after the line it concerns
            _drop_newline(hunk, lines[index - 1][:1])
        else:
            raise PatchError(f"line {index + 1}: unexpected line in a hunk of '{patch.path}': "
                             f"{line.strip()[:60]!r}")
        index += 1
        if old_seen > old_count or new_seen > new_count:
            raise PatchError(f"line {index}: hunk of '{patch.path}' longer than its header says")
    while index < len(lines) and lines[index].startswith(b"\\"):  # "\ No newline at end of file"
        _drop_newline(hunk, lines[index - 1][:1])
        index += 1
    patch.hunks.append(hunk)
    return index


def _drop_newline(hunk: Hunk, tag: bytes) -> None:
    """The line before a '\\ No newline' marker has no line end."""
    sides = {b"-": (hunk.old,), b"+": (hunk.new,), b" ": (hunk.old, hunk.new)}.get(tag, ())
    for side in sides:
        if side:
            side[-1] = side[-1].rstrip(b"\r\n")


def apply(patches: list[FilePatch], read: Callable[[str], bytes | None]) -> dict[str, bytes | None]:
    """New content of every file the patches touch (None: deleted); `read` gives
    a file's current content, None when it does not exist."""
    out: dict[str, bytes | None] = {}
    for patch in patches:
        source = patch.old_path
        current = (out[source] if source in out else read(source)) if source is not None else None
        if source is not None and current is None:
            raise PatchError(f"'{source}': no such file to patch")
        if source is None and patch.new_path is not None and read(patch.new_path) is not None \
                and patch.new_path not in out:
            raise PatchError(f"'{patch.new_path}': the patch creates it, but it already exists")
        lines = (current or b"").splitlines(keepends=True)
        shift = 0
        for number, hunk in enumerate(patch.hunks, 1):
            # A hunk that only adds lines names the line they follow.
            expected = (hunk.old_start - 1 if hunk.old else hunk.old_start) + shift
            at = _find(lines, hunk, expected)
            if at is None:
                raise PatchError(f"'{patch.path}': hunk #{number} (line {hunk.old_start}) does not apply")
            lines[at:at + len(hunk.old)] = hunk.new
            shift += (at - expected) + len(hunk.new) - len(hunk.old)
        if patch.new_path is None:
            if lines:
                raise PatchError(f"'{patch.path}': the patch deletes it but leaves lines in it")
            out[patch.old_path or ""] = None
            continue
        if source is not None and source != patch.new_path:
            out[source] = None  # renamed
        out[patch.new_path] = b"".join(lines)
    return out


def _find(lines: list[bytes], hunk: Hunk, expected: int) -> int | None:
    """Where the hunk's old lines stand, nearest to `expected`."""
    if not hunk.old:
        return expected if 0 <= expected <= len(lines) else None
    size = len(hunk.old)
    for distance in range(len(lines) + 1):
        for at in (expected - distance, expected + distance) if distance else (expected,):
            if 0 <= at <= len(lines) - size and lines[at:at + size] == hunk.old:
                return at
    return None
