"""Reading and writing gfpcheck's own files safely: whole or not at all.

Every file gfpcheck writes (cache entries, packs, baselines) goes to a
temporary name beside its destination and is renamed into place, so a full
disk or an interrupted write never leaves a truncated file where a good one
stood.  Files gfpcheck reads back from its cache are opened without
blocking and only read when they are regular files: a FIFO or a device
planted under a cache name is skipped, never waited on.
"""

from __future__ import annotations

import os
import stat


def write_atomically(path: str | os.PathLike, data: bytes, tmp: str | None = None) -> None:
    """Write `data` to `path` through a temporary file in the same directory
    (`tmp`, by default `.<name>.tmp-<pid>`) and a rename; raises OSError and
    leaves no temporary file behind whatever goes wrong (Ctrl-C too)."""
    path = os.fspath(path)
    if tmp is None:
        head, name = os.path.split(path)
        tmp = os.path.join(head, f".{name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def open_regular(path: str | os.PathLike) -> int | None:
    """A descriptor open for reading on `path` when it is a regular file, else
    None (missing, unreadable, a FIFO, a device, a directory).  The open never
    blocks: O_NONBLOCK is set for the open and has no effect on a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            return fd
    except OSError:
        pass
    os.close(fd)
    return None


def read_regular(path: str | os.PathLike) -> bytes | None:
    """The bytes of `path` when it is a regular file that can be read, else None."""
    fd = open_regular(path)
    if fd is None:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)
