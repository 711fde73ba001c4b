"""Which files a scan reads: every .c and .h under the given paths.

Directories are walked without following symlinked directories (no loops);
excluded globs, oversized files and files that cannot be read are counted
with the reason, never fatal.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SOURCE_SUFFIXES = (".c", ".h")
DEFAULT_EXCLUDES = ("tools/*", "scripts/*", "Documentation/*", "samples/*")
DEFAULT_MAX_SIZE = 1 << 20  # generated register headers are larger; they define no functions worth reading
DEFAULT_ARCH = "x86"
ALL_ARCHES = "all"


class DiscoveryError(Exception):
    """A path given on the command line cannot be scanned at all."""


@dataclass(frozen=True)
class SourceFile:
    path: str  # relative to the root, "/" separators
    location: str  # where to read it
    stamp: tuple[int, int, int, int]  # size, mtime and ctime (ns), inode: any change of content changes it


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


def discover(paths: list[Path], root: Path, excludes: tuple[str, ...] = DEFAULT_EXCLUDES,
             max_size: int = DEFAULT_MAX_SIZE) -> tuple[list[SourceFile], list[Skipped]]:
    """Source files under `paths`, sorted by relative path, and what was skipped and why."""
    root = Path(os.path.abspath(root))
    pruned, patterns = _split_excludes(excludes)
    found: dict[str, SourceFile] = {}
    skipped: list[Skipped] = []
    for given in paths:
        if not given.exists() and not given.is_symlink():
            raise DiscoveryError(f"{given}: no such file or directory")
        if given.is_dir():
            candidates = _walk(Path(os.path.abspath(given)), root, pruned, skipped)
        else:
            candidates = iter([(_relative(given, root), str(given))])
        for rel, location in candidates:
            if rel in found or _matches(rel, pruned, patterns):
                continue
            try:
                info = os.stat(location)
            except OSError as exc:
                skipped.append(Skipped(rel, f"unreadable: {exc.strerror or exc}"))
                continue
            if not stat.S_ISREG(info.st_mode):
                skipped.append(Skipped(rel, "not a regular file"))
                continue
            if info.st_size > max_size:
                skipped.append(Skipped(rel, f"larger than {max_size} bytes"))
                continue
            found[rel] = SourceFile(rel, location, (info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino))
    return [found[k] for k in sorted(found)], sorted(skipped, key=lambda s: s.path)


def excluded(rel: str, excludes: tuple[str, ...]) -> bool:
    """Whether a root-relative path is one `excludes` leaves out."""
    return _matches(rel, *_split_excludes(excludes))


def _matches(rel: str, pruned: tuple[str, ...], patterns: tuple[str, ...]) -> bool:
    return rel.startswith(pruned) or _globs(patterns)(rel) is not None


@functools.cache
def _globs(patterns: tuple[str, ...]) -> Callable[[str], re.Match | None]:
    """One matcher for every glob, as fnmatch.fnmatchcase matches each: a whole
    tree's files are tested against them."""
    if not patterns:
        return lambda rel: None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns)).match


def _split_excludes(excludes: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Globs that name a whole directory (`tools/*`) become prefixes the walk never
    enters; the rest are matched against each file's root-relative path."""
    prefixes, patterns = [], []
    for pattern in excludes:
        head = pattern[:-1]
        if pattern.endswith("/*") and not any(ch in head for ch in "*?["):
            prefixes.append(head)
        else:
            patterns.append(pattern)
    return tuple(prefixes), tuple(patterns)


def arch_excludes(root: Path, arch: str) -> tuple[str, ...]:
    """Globs that leave out every arch/ directory but `arch`'s: a kernel is built for
    one architecture, and generic code calling flush_tlb_kernel_range() reaches
    only that architecture's definition."""
    if arch == ALL_ARCHES:
        return ()
    arches = root / "arch"
    try:
        names = sorted(p.name for p in arches.iterdir() if p.is_dir())
    except OSError:
        return ()
    return tuple(f"arch/{name}/*" for name in names if name != arch)


def _walk(directory: Path, root: Path, pruned: tuple[str, ...], skipped: list[Skipped]):
    """(root-relative path, location) of every .c/.h file under `directory`, in a
    stable order, never entering a pruned directory or following a symlinked one."""
    base = _relative(directory, root)
    stack = [(str(directory), "" if base == "." else base + "/")]
    while stack:
        location, rel = stack.pop()
        try:
            with os.scandir(location) as scan:
                entries = sorted(scan, key=lambda e: e.name, reverse=True)
        except OSError as exc:
            skipped.append(Skipped(rel.rstrip("/") or ".", f"unreadable directory: {exc.strerror or exc}"))
            continue
        files = []
        for entry in entries:
            name = entry.name
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir:
                sub = rel + name + "/"
                if not sub.startswith(pruned):
                    stack.append((entry.path, sub))
            elif name.endswith(SOURCE_SUFFIXES):
                files.append((rel + name, entry.path))
        yield from reversed(files)


def _relative(path: Path, root: Path) -> str:
    absolute = Path(os.path.abspath(path))
    try:
        return absolute.relative_to(root).as_posix() or "."
    except ValueError:
        return absolute.as_posix()
