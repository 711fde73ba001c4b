"""A persistent cache of per-file facts and of whole-scan results.

Entries are keyed by what determines them: a file's facts by its content,
the rules digest, and the gfpcheck and grammar versions; a scan's result by
every file's key and the options that shape the analysis.  Each entry is
written to a temporary file and renamed into place, and carries a checksum:
an entry that is truncated, corrupt or written by another version is
discarded and rebuilt, never trusted.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path

_MAGIC = b"GFPC1\n"
_DIGEST = 16


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/gfpcheck, else ~/.cache/gfpcheck."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gfpcheck"


def salt(*parts: str) -> bytes:
    """What every key of one configuration shares: versions and rules digest."""
    return hashlib.blake2b("\0".join((sys.version, *parts)).encode(), digest_size=_DIGEST).digest()


def content_key(data: bytes, salted: bytes) -> str:
    return hashlib.blake2b(data, digest_size=20, key=salted).hexdigest()


class Cache:
    """Blobs by key under one directory; every failure is a miss, never an error."""

    def __init__(self, directory: Path, kind: str):
        self.directory = directory / kind

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
            try:
                path.unlink()
            except OSError:
                pass
        return payload

    def put(self, key: str, payload: bytes) -> bool:
        """Store atomically; False when the cache cannot be written (the scan goes on)."""
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(_wrap(payload))
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


def _wrap(payload: bytes) -> bytes:
    return _MAGIC + hashlib.blake2b(payload, digest_size=_DIGEST).digest() + payload


def _unwrap(blob: bytes) -> bytes | None:
    head = len(_MAGIC) + _DIGEST
    if len(blob) < head or not blob.startswith(_MAGIC):
        return None
    payload = blob[head:]
    if hashlib.blake2b(payload, digest_size=_DIGEST).digest() != blob[len(_MAGIC):head]:
        return None
    return payload
