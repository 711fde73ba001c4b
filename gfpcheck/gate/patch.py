"""Unified diffs: parse them and apply them to file contents in memory.

Accepts what `git diff`, `git format-patch` and `diff -u` write: an optional
mail header, `diff --git` and its extended header lines, `--- a/x` /
`+++ b/x` with the first path component stripped (like `patch -p1`;
`/dev/null` for added and removed files; names git quotes, `"a/x\303\251.c"`,
read as git writes them), and hunks.  A hunk applies where its context and
removed lines match exactly, at the line it names or, as patch(1) does, at
the nearest offset; otherwise the patch does not apply and PatchError says
which file and hunk.  A rename without hunks moves the file as it is; a mode
change changes nothing the scan reads.  A binary patch of a C source or
header cannot be applied as text and is refused; one of any other file is
skipped.  A patch that changes no source text at all is NothingToCheck.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

_HUNK = re.compile(rb"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
DEV_NULL = "/dev/null"


class PatchError(Exception):
    """A patch that cannot be read or does not apply."""


class NothingToCheck(Exception):
    """A patch whose every change leaves the text of the sources as it was."""


SOURCE_SUFFIXES = (".c", ".h")
_ESCAPES = {ord("a"): 7, ord("b"): 8, ord("t"): 9, ord("n"): 10, ord("v"): 11, ord("f"): 12, ord("r"): 13,
            ord('"'): 34, ord("\\"): 92}


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
    binary: bool = False  # a binary patch: no text to apply

    @property
    def path(self) -> str:
        return self.new_path or self.old_path or ""


def unquote(raw: bytes) -> bytes:
    """A file name as git writes it: plain, or in double quotes with C escapes
    (`\\t`, `\\"`, `\\\\`, and octal bytes such as `\\303\\251`)."""
    if not (raw.startswith(b'"') and raw.endswith(b'"') and len(raw) >= 2):
        return raw
    out = bytearray()
    body = raw[1:-1]
    i = 0
    while i < len(body):
        byte = body[i]
        if byte != 0x5C:  # backslash
            out.append(byte)
            i += 1
            continue
        following = body[i + 1:i + 2]
        if following in (b"0", b"1", b"2", b"3") and len(body[i + 1:i + 4]) == 3 \
                and all(0x30 <= c <= 0x37 for c in body[i + 1:i + 4]):
            out.append(int(body[i + 1:i + 4], 8))
            i += 4
        elif following and following[0] in _ESCAPES:
            out.append(_ESCAPES[following[0]])
            i += 2
        else:
            shown = body[i:i + 2].decode("utf-8", "backslashreplace")
            raise PatchError(f"the quoted name {raw.decode('utf-8', 'backslashreplace')} has an escape "
                             f"git does not write ({shown})")
    return bytes(out)


def _name(raw: bytes) -> bytes:
    """The name in a `---`/`+++` line: up to a tab (a timestamp may follow), unquoted."""
    raw = raw.rstrip(b"\r\n")
    if raw.startswith(b'"'):
        end = _closing_quote(raw)
        return unquote(raw[:end + 1]) if end > 0 else raw.strip()
    return raw.split(b"\t", 1)[0].strip()


def _closing_quote(raw: bytes) -> int:
    """Index of the quote that closes the one at raw[0], or -1."""
    i = 1
    while i < len(raw):
        if raw[i] == 0x5C:
            i += 2
            continue
        if raw[i] == 0x22:
            return i
        i += 1
    return -1


def _strip(raw: bytes, strip: int) -> str | None:
    name = _name(raw).decode("utf-8", "surrogateescape")
    if name == DEV_NULL:
        return None
    return _stripped(name, strip)


def _stripped(name: str, strip: int) -> str:
    parts = name.split("/")
    if len(parts) <= strip:
        raise PatchError(f"cannot strip {strip} leading component(s) from '{name}'")
    kept = parts[strip:]
    if not kept[0] or ".." in kept:
        raise PatchError(f"'{name}' names a file outside the tree")
    return "/".join(kept)


def _git_header_names(line: bytes) -> tuple[bytes, bytes] | None:
    """The two names of `diff --git a/x b/x`, quoted or not; None when they cannot be told apart."""
    rest = line[len(b"diff --git "):].rstrip(b"\r\n")
    if rest.startswith(b'"'):
        end = _closing_quote(rest)
        if end < 0:
            return None
        first, second = unquote(rest[:end + 1]), rest[end + 1:].strip()
        return first, unquote(second)
    if rest.endswith(b'"'):
        start = rest.rfind(b' "')
        if start < 0:
            return None
        return rest[:start], unquote(rest[start + 1:])
    # unquoted: both sides name the same file unless a rename says otherwise
    half = (len(rest) - 1) // 2
    if len(rest) % 2 == 1 and rest[half:half + 1] == b" ":
        first, second = rest[:half], rest[half + 1:]
        if first.split(b"/", 1)[-1] == second.split(b"/", 1)[-1]:
            return first, second
    return None


def parse(text: bytes, strip: int = 1) -> list[FilePatch]:
    """Every file a unified diff changes, in order.  Raises NothingToCheck when it
    only renames files, changes modes or patches binary files that are not sources,
    and PatchError when it holds no change at all, or a binary patch of a source."""
    lines = text.splitlines(keepends=True)
    patches: list[FilePatch] = []
    index = 0
    git: dict[str, object] | None = None  # the extended header of the current `diff --git`

    def close_git() -> None:
        """A `diff --git` block that had no `---`/`+++`: a rename, a mode change or a binary patch."""
        if git is None or git.get("used"):
            return
        names = git.get("names")
        # git writes rename lines without the a/ b/ prefixes; the header's names carry them
        old = git.get("rename from") or (_stripped(names[0], strip) if names else None)
        new = git.get("rename to") or (_stripped(names[1], strip) if names else None)
        old_path = None if git.get("new file") else old
        new_path = None if git.get("deleted file") else new
        if git.get("binary"):
            patches.append(FilePatch(old_path, new_path, binary=True))
        elif "rename from" in git and old_path and new_path:
            patches.append(FilePatch(old_path, new_path))
        else:
            git["nothing"] = True

    seen_git = False
    while index < len(lines):
        line = lines[index]
        if line.startswith(b"diff --git "):
            close_git()
            seen_git = True
            found = _git_header_names(line)
            git = {"names": tuple(n.decode("utf-8", "surrogateescape") for n in found) if found else None}
            index += 1
            continue
        if git is not None and not git.get("used"):
            for prefix, key in ((b"rename from ", "rename from"), (b"rename to ", "rename to"),
                                (b"copy from ", "rename from"), (b"copy to ", "rename to")):
                if line.startswith(prefix):
                    git[key] = _name(line[len(prefix):]).decode("utf-8", "surrogateescape")
            if line.startswith(b"new file mode"):
                git["new file"] = True
            elif line.startswith(b"deleted file mode"):
                git["deleted file"] = True
            elif line.startswith((b"GIT binary patch", b"Binary files ")):
                git["binary"] = True
        if line.startswith(b"Binary files ") and git is None:
            raise PatchError(f"line {index + 1}: a binary change without a `diff --git` header names no file")
        if line.startswith(b"--- ") and index + 1 < len(lines) and lines[index + 1].startswith(b"+++ "):
            if git is not None:
                git["used"] = True
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
    close_git()
    for patch in patches:
        if patch.binary and any(p and p.endswith(SOURCE_SUFFIXES) for p in (patch.old_path, patch.new_path)):
            raise PatchError(f"'{patch.path}': a binary patch of a C source; gfpcheck reads text diffs only "
                             f"(make the patch without --binary)")
    changes = [p for p in patches if p.hunks]
    if not changes:
        if patches or seen_git:
            raise NothingToCheck("the patch changes no source text (only renames, modes or binary files)")
        raise PatchError("no file changes found (expected a unified diff: '--- a/file', '+++ b/file', '@@')")
    return [p for p in patches if not p.binary]


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
