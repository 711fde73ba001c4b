"""A persistent cache of per-file facts and of whole-scan results.

Entries are keyed by what determines them: a file's facts by its content,
the rules digest, and the gfpcheck and grammar versions; a scan's result by
every file's key and the options that shape the analysis.  Each entry is
written to a temporary file and renamed into place, and carries a checksum:
an entry that is truncated, corrupt or written by another version is
discarded and rebuilt, never trusted.
"""

from __future__ import annotations

import ast
import hashlib
import os
import sys
from pathlib import Path

_MAGIC = b"GFPC1\n"
_DIGEST = 16


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/gfpcheck, else ~/.cache/gfpcheck."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gfpcheck"


_PACKAGE = Path(__file__).resolve().parent


def code_digest(module: str | None = None) -> str:
    """Digest of gfpcheck's own code: of `module` ("extract") and every package
    module it imports, with their data files, or of the whole package.  A change
    invalidates the entries that code determines, even between two builds that
    carry the same version number."""
    files = _closure(module) if module else {
        p for p in _PACKAGE.rglob("*") if p.suffix in (".py", ".scm", ".json") and "__pycache__" not in p.parts}
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.relative_to(_PACKAGE).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _closure(module: str) -> set[Path]:
    """The package's files `module` depends on: its own, those of the package
    modules it imports (followed), and the data files beside them."""
    todo = [_module_file(module.split("."))]
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path is None or path in seen:
            continue
        seen.add(path)
        seen.update(p for p in path.parent.rglob("*") if p.suffix in (".scm", ".json"))
        for node in ast.walk(ast.parse(path.read_bytes())):
            if isinstance(node, ast.ImportFrom) and node.level:
                here = list(path.relative_to(_PACKAGE).parent.parts)
                base = here[: len(here) - (node.level - 1)] if node.level > 1 else here
                parts = base + (node.module.split(".") if node.module else [])
                todo.append(_module_file(parts))
                todo.extend(_module_file(parts + [alias.name]) for alias in node.names)
    return seen


def _module_file(parts: list[str]) -> Path | None:
    base = _PACKAGE.joinpath(*parts)
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def salt(*parts: str) -> bytes:
    """What every key of one configuration shares: versions, code and rules digests."""
    return hashlib.sha256("\0".join((sys.version, *parts)).encode()).digest()[:_DIGEST]


def content_key(path: str, data: bytes, salted: bytes) -> str:
    """The key of one file's facts: its path (facts name it) and its content."""
    digest = hashlib.sha256(salted)
    digest.update(path.encode("utf-8", "surrogateescape") + b"\0")
    digest.update(data)
    return digest.hexdigest()[:40]


def combined_key(parts: list[str], salted: bytes) -> str:
    """The key of something determined by many keys, in order."""
    digest = hashlib.sha256(salted)
    for part in parts:
        digest.update(part.encode("utf-8", "surrogateescape") + b"\n")
    return digest.hexdigest()[:40]


class Cache:
    """Blobs by key under one directory; every failure is a miss, never an error."""

    def __init__(self, directory: Path, kind: str):
        self.directory = directory / kind
        self._made: set[Path] = set()

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / key

    def get(self, key: str) -> bytes | None:
        path = self._path(key)
        try:
            blob = path.read_bytes()
        except OSError:
            return None
        payload = _unwrap(blob)
        if payload is None:
            self.discard(key)
        return payload

    def discard(self, key: str) -> None:
        try:
            self._path(key).unlink()
        except OSError:
            pass

    def put(self, key: str, payload: bytes) -> bool:
        """Store atomically; False when the cache cannot be written (the scan goes on).

        Written to a temporary file named after this process and renamed into
        place: a reader sees the whole entry or none.  A whole tree puts tens
        of thousands of entries, so directories made are remembered and the
        file is written with plain system calls."""
        path = self._path(key)
        tmp = f"{path.parent}/.tmp-{os.getpid()}-{key}"
        try:
            if path.parent not in self._made:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._made.add(path.parent)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                try:
                    _write_all(fd, _MAGIC + _checksum(payload) + payload)
                finally:
                    os.close(fd)
                os.replace(tmp, path)
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
        except OSError:
            return False
        return True


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _checksum(payload: bytes) -> bytes:
    return hashlib.sha256(payload).digest()[:_DIGEST]


def _unwrap(blob: bytes) -> bytes | None:
    head = len(_MAGIC) + _DIGEST
    if len(blob) < head or not blob.startswith(_MAGIC):
        return None
    payload = blob[head:]
    if _checksum(payload) != blob[len(_MAGIC):head]:
        return None
    return payload
