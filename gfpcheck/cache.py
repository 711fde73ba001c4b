"""A persistent cache of per-file facts and of whole-scan results.

Entries are keyed by what determines them: a file's facts by its content,
the rules digest, and the gfpcheck and grammar versions; a scan's result by
every file's key and the options that shape the analysis.  A few large
entries (results, stamp indexes) are a file each (`Cache`); the tens of
thousands of per-file facts of a tree go many to a file (`PackCache`),
because creating a file costs the filesystem far more than writing its bytes.
Every file is written under a temporary name and renamed into place, and
every entry carries a checksum: an entry that is truncated, corrupt or
written by another version is discarded and rebuilt, never trusted.
"""

from __future__ import annotations

import ast
import hashlib
import marshal
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .files import open_regular, read_regular, write_atomically

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
        blob = read_regular(path)
        if blob is None:
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
            write_atomically(path, _MAGIC + _checksum(payload) + payload, tmp)
        except OSError:
            return False
        return True


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


# A pack: _PACK_MAGIC, the payloads back to back, the index (marshal: a tuple
# of (key, offset, length, checksum)), then the trailer: the index's offset
# and length, its checksum, and _PACK_END.
_PACK_MAGIC = b"GFPP1\n"
_PACK_END = b"GFPPEND1"
_TRAILER = 8 + 8 + _DIGEST + len(_PACK_END)
# Packs under SMALL_PACK bytes (those of scans that extracted a few files) are
# merged into one when there are more than MAX_SMALL_PACKS of them; larger ones
# are never rewritten.
SMALL_PACK = 16 << 20
MAX_SMALL_PACKS = 16


class PackCache:
    """Blobs by key, written a batch at a time into one pack file.

    A pack is never changed once renamed into place, so a reader sees a whole
    pack or none; one scan (or another at the same time) adds packs beside
    it.  A pack whose trailer or index does not check out is removed; an
    entry whose checksum fails is a miss.  An entry is only ever stored
    under the key of its content, so when two packs hold a key, either will
    do.  When small packs pile up (many scans after small edits), they are
    merged."""

    def __init__(self, directory: Path, kind: str):
        self.directory = directory / kind
        self._index: dict[str, tuple[int, int, int, bytes]] | None = None  # key -> (pack, offset, length, checksum)
        self._packs: list[str] = []  # pack paths, by number
        self._fds: dict[int, int] = {}

    # -- reading ---------------------------------------------------------------
    @property
    def index(self) -> dict[str, tuple[int, int, int, bytes]]:
        """Every entry of the packs in the directory, read once."""
        return self._loaded()

    def _loaded(self) -> dict[str, tuple[int, int, int, bytes]]:
        if self._index is None:
            self._index = {}
            for name in self._pack_names():
                self._add_pack(str(self.directory / name))
        return self._index

    def _pack_names(self) -> list[str]:
        try:
            # not the temporary files of packs being written: ".tmp-..."
            return sorted(name for name in os.listdir(self.directory)
                          if name.endswith(".pack") and not name.startswith("."))
        except OSError:
            return []

    def _add_pack(self, path: str) -> None:
        entries = _read_pack_index(path)
        if entries is None:
            try:
                os.unlink(path)
            except OSError:
                pass
            return
        number = len(self._packs)
        self._packs.append(path)
        index = self._index
        assert index is not None
        for key, offset, length, checksum in entries:
            index[key] = (number, offset, length, checksum)

    def get(self, key: str) -> bytes | None:
        entry = self.index.get(key)
        if entry is None:
            return None
        number, offset, length, checksum = entry
        try:
            fd = self._fds.get(number)
            if fd is None:
                fd = self._fds[number] = os.open(self._packs[number], os.O_RDONLY | os.O_NONBLOCK)
            payload = os.pread(fd, length, offset)
        except OSError:
            payload = b""
        if len(payload) != length or _checksum(payload) != checksum:
            self.discard(key)
            return None
        return payload

    def discard(self, key: str) -> None:
        """Never hand this entry out again; a later put of the key stores it anew."""
        self.index.pop(key, None)

    def close(self) -> None:
        """Let go of the open packs; the next use reads the directory again."""
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        self._index, self._packs = None, []

    # -- writing ---------------------------------------------------------------
    def put_many(self, items: Sequence[tuple[str, bytes]]) -> bool:
        """Store the entries in one new pack; False when the cache cannot be
        written (the scan goes on)."""
        if not items:
            return True
        self._loaded()  # the packs already there, before this one joins them
        path = self._write_pack(items)
        if path is None:
            return False
        self._add_pack(path)
        small = set()
        for number, pack in enumerate(self._packs):
            try:
                if os.path.getsize(pack) < SMALL_PACK:
                    small.add(number)
            except OSError:
                continue
        if len(small) > MAX_SMALL_PACKS:
            self._merge(small)
        return True

    def _write_pack(self, items: Sequence[tuple[str, bytes]]) -> str | None:
        entries = []
        offset = len(_PACK_MAGIC)
        for key, payload in items:
            entries.append((key, offset, len(payload), _checksum(payload)))
            offset += len(payload)
        index = marshal.dumps(tuple(entries))
        trailer = offset.to_bytes(8, "little") + len(index).to_bytes(8, "little") + _checksum(index) + _PACK_END
        name = f"{time.time_ns():020d}-{os.getpid()}-{os.urandom(4).hex()}.pack"
        path = str(self.directory / name)
        tmp = f"{self.directory}/.tmp-{name}.part"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            write_atomically(path, b"".join([_PACK_MAGIC, *(payload for _key, payload in items), index, trailer]), tmp)
        except OSError:
            return None
        return path

    def _merge(self, small: set[int]) -> None:
        """Write the entries of these packs into one, and remove them."""
        items = []
        for key, (number, _offset, _length, _checksum) in sorted(self.index.items()):
            if number in small:
                payload = self.get(key)
                if payload is not None:
                    items.append((key, payload))
        if self._write_pack(items) is None:
            return
        merged = [self._packs[number] for number in small]
        self.close()  # read again: the merged pack instead of the small ones
        for path in merged:
            try:
                os.unlink(path)
            except OSError:
                pass


def _read_pack_index(path: str) -> list[tuple[str, int, int, bytes]] | None:
    """A pack's entries, or None when its trailer or index does not check out."""
    fd = open_regular(path)
    if fd is None:
        return None
    try:
        size = os.fstat(fd).st_size
        if size < len(_PACK_MAGIC) + _TRAILER:
            return None
        trailer = os.pread(fd, _TRAILER, size - _TRAILER)
        start, length = int.from_bytes(trailer[:8], "little"), int.from_bytes(trailer[8:16], "little")
        if trailer[-len(_PACK_END):] != _PACK_END or start + length != size - _TRAILER \
                or os.pread(fd, len(_PACK_MAGIC), 0) != _PACK_MAGIC:
            return None
        index = os.pread(fd, length, start)
        if _checksum(index) != trailer[16:16 + _DIGEST]:
            return None
        entries = marshal.loads(index)
    except (OSError, ValueError, EOFError, TypeError):
        return None
    finally:
        os.close(fd)
    if type(entries) is not tuple or not all(
            type(e) is tuple and len(e) == 4 and type(e[0]) is str and type(e[1]) is int and type(e[2]) is int
            and type(e[3]) is bytes and len(_PACK_MAGIC) <= e[1] and e[1] + e[2] <= start for e in entries):
        return None
    return list(entries)
