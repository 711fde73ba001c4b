"""Files of a git checkout as they were at a revision, for the gate's two sides."""

from __future__ import annotations

import subprocess
from pathlib import Path

from . import GateError

Overrides = tuple[tuple[str, bytes | None], ...]


def _git(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    try:
        run = subprocess.run(["git", "-C", str(root), *args], capture_output=True, check=False)
    except OSError as exc:
        raise GateError(f"cannot run git: {exc.strerror or exc}") from None
    if check and run.returncode != 0:
        message = run.stderr.decode(errors="replace").strip().splitlines()
        raise GateError(f"git {args[0]}: {message[-1] if message else 'failed'}")
    return run


def _paths(output: bytes) -> set[str]:
    return {p.decode("utf-8", "surrogateescape") for p in output.split(b"\0") if p}


def _verify(root: Path, rev: str) -> str:
    run = _git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False)
    if run.returncode != 0:
        raise GateError(f"unknown revision '{rev}' in {root}")
    return run.stdout.decode().strip()


def _at(root: Path, commit: str, path: str) -> bytes | None:
    run = _git(root, "cat-file", "blob", f"{commit}:./{path}", check=False)
    return run.stdout if run.returncode == 0 else None


def revision_sides(root: Path, base: str, head: str | None) -> tuple[Overrides, Overrides]:
    """What to lay over the working tree at `root` to see it at `base`, and at
    `head` (nothing when the working tree itself is the head).  Paths are
    relative to `root`, which may be any directory of the checkout."""
    if _git(root, "rev-parse", "--is-inside-work-tree", check=False).stdout.strip() != b"true":
        raise GateError(f"{root} is not inside a git checkout (on a plain tree, use --patch)")
    base_commit = _verify(root, base)
    changed = _paths(_git(root, "diff", "--name-only", "-z", "--no-renames", "--relative", base_commit).stdout)
    changed |= _paths(_git(root, "ls-files", "-z", "--others", "--exclude-standard").stdout)
    head_side: Overrides = ()
    if head is not None:
        head_commit = _verify(root, head)
        # Files that differ between the working tree and the head count too:
        # the head is read from git, the rest of the tree from disk.
        changed |= _paths(_git(root, "diff", "--name-only", "-z", "--no-renames", "--relative",
                               head_commit).stdout)
        head_side = tuple((path, _at(root, head_commit, path)) for path in sorted(changed))
    base_side = tuple((path, _at(root, base_commit, path)) for path in sorted(changed))
    return base_side, head_side
