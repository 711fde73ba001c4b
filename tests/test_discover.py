from __future__ import annotations

import os
from pathlib import Path

import pytest

from gfpcheck.discover import DEFAULT_EXCLUDES, DiscoveryError, discover


def make(tree: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = tree / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def test_sources_sorted_excludes_and_size_limit(tmp_path):
    make(tmp_path, {"fs/b.c": b"int b;", "fs/a.h": b"int a;", "fs/notes.txt": b"x",
                    "tools/t.c": b"int t;", "drivers/big.h": b"x" * 2000})
    files, skipped = discover([tmp_path], tmp_path, DEFAULT_EXCLUDES, max_size=1000)
    assert [f.path for f in files] == ["fs/a.h", "fs/b.c"]
    assert [(s.path, s.reason.split(" ")[0]) for s in skipped] == [("drivers/big.h", "larger")]


def test_symlink_loops_and_dangling_links_do_not_stop_the_walk(tmp_path):
    make(tmp_path, {"fs/a.c": b"int a;"})
    os.symlink(tmp_path, tmp_path / "fs" / "loop")
    os.symlink(tmp_path / "missing.c", tmp_path / "fs" / "dangling.c")
    files, skipped = discover([tmp_path], tmp_path)
    assert [f.path for f in files] == ["fs/a.c"]
    assert [s.path for s in skipped] == ["fs/dangling.c"]


def test_special_files_are_skipped_with_reason(tmp_path):
    make(tmp_path, {"a.c": b"int a;"})
    os.mkfifo(tmp_path / "pipe.c")
    files, skipped = discover([tmp_path], tmp_path)
    assert [f.path for f in files] == ["a.c"]
    assert [(s.path, s.reason) for s in skipped] == [("pipe.c", "not a regular file")]


def test_missing_path_is_an_error(tmp_path):
    with pytest.raises(DiscoveryError, match="no such file"):
        discover([tmp_path / "nope"], tmp_path)


def test_single_file_and_paths_relative_to_root(tmp_path):
    make(tmp_path, {"fs/x/a.c": b"int a;"})
    files, _ = discover([tmp_path / "fs" / "x" / "a.c"], tmp_path)
    assert [f.path for f in files] == ["fs/x/a.c"]


def test_only_one_architecture_is_read(tmp_path):
    from gfpcheck.discover import arch_excludes

    make(tmp_path, {"arch/x86/mm/tlb.c": b"void flush(void) {}", "arch/um/kernel/tlb.c": b"void flush(void) {}",
                    "mm/vmalloc.c": b"void v(void) { flush(); }"})
    files, _ = discover([tmp_path], tmp_path, arch_excludes(tmp_path, "x86"))
    assert [f.path for f in files] == ["arch/x86/mm/tlb.c", "mm/vmalloc.c"]
    files, _ = discover([tmp_path], tmp_path, arch_excludes(tmp_path, "all"))
    assert len(files) == 3
