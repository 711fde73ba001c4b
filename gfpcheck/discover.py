"""Which files a scan reads: every .c and .h under the given paths.

Directories are walked without following symlinked directories (no loops);
excluded globs, oversized files and files that cannot be read are counted
with the reason, never fatal.
"""

from __future__ import annotations

import fnmatch
import os
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
    size: int


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


def discover(paths: list[Path], root: Path, excludes: tuple[str, ...] = DEFAULT_EXCLUDES,
             max_size: int = DEFAULT_MAX_SIZE) -> tuple[list[SourceFile], list[Skipped]]:
    """Source files under `paths`, sorted by relative path, and what was skipped and why."""
    root = root.resolve()
    found: dict[str, SourceFile] = {}
    skipped: list[Skipped] = []
    for given in paths:
        if not given.exists() and not given.is_symlink():
            raise DiscoveryError(f"{given}: no such file or directory")
        if given.is_dir():
            walk = _walk(given, skipped)
        else:
            walk = iter([given])
        for path in walk:
            rel = _relative(path, root)
            if rel in found:
                continue
            if any(fnmatch.fnmatchcase(rel, pattern) for pattern in excludes):
                continue
            try:
                info = path.stat()
            except OSError as exc:
                skipped.append(Skipped(rel, f"unreadable: {exc.strerror or exc}"))
                continue
            if not path.is_file():
                skipped.append(Skipped(rel, "not a regular file"))
                continue
            if info.st_size > max_size:
                skipped.append(Skipped(rel, f"larger than {max_size} bytes"))
                continue
            found[rel] = SourceFile(rel, str(path), info.st_size)
    return [found[k] for k in sorted(found)], sorted(skipped, key=lambda s: s.path)


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


def _walk(directory: Path, skipped: list[Skipped]):
    def on_error(exc: OSError) -> None:
        skipped.append(Skipped(str(exc.filename), f"unreadable directory: {exc.strerror or exc}"))

    for dirpath, dirnames, filenames in os.walk(directory, onerror=on_error, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith(SOURCE_SUFFIXES):
                yield Path(dirpath, name)


def _relative(path: Path, root: Path) -> str:
    absolute = Path(os.path.abspath(path))
    try:
        return absolute.relative_to(root).as_posix()
    except ValueError:
        return absolute.as_posix()
