"""The fact and result caches: reuse, invalidation, and entries never trusted blindly."""

from __future__ import annotations

import hashlib
import marshal
import os
import shutil
from pathlib import Path

import pytest

from gfpcheck.cache import MAX_SMALL_PACKS, Cache, PackCache, content_key, salt
from gfpcheck.extract.runner import FACTS, Source, extract_all, fact_cache, key_sources
from gfpcheck.pipeline import RESULTS, ScanOptions, scan

SALT = salt("test")
SEED = Path(__file__).resolve().parent.parent / "fixtures" / "seed-2016"


def entries(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and not p.name.startswith(".tmp-"))


def test_roundtrip_and_atomic_layout(tmp_path):
    cache = Cache(tmp_path, "facts")
    assert cache.get("ab" * 20) is None
    assert cache.put("ab" * 20, b"payload")
    assert cache.get("ab" * 20) == b"payload"
    assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()] == [
        "facts/ab/" + "ab" * 20]


@pytest.mark.parametrize("damage", [
    lambda blob: blob[: len(blob) // 2],  # truncated
    lambda blob: blob[:-1] + bytes([blob[-1] ^ 1]),  # one bit flipped
    lambda blob: b"not a cache entry at all",  # foreign
    lambda blob: b"",  # empty
])
def test_damaged_entry_is_a_miss_and_is_removed(tmp_path, damage):
    cache = Cache(tmp_path, "facts")
    cache.put("cd" * 20, b"x" * 100)
    path = entries(tmp_path)[0]
    path.write_bytes(damage(path.read_bytes()))
    assert cache.get("cd" * 20) is None
    assert not path.exists()


def test_unwritable_cache_is_not_an_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory should be")
    cache = Cache(blocker, "facts")
    assert cache.put("ef" * 20, b"x") is False
    assert cache.get("ef" * 20) is None


KEYS = [f"{i:02x}" * 20 for i in range(3)]


def test_pack_holds_many_entries_in_one_file(tmp_path):
    cache = PackCache(tmp_path, "facts")
    assert cache.get(KEYS[0]) is None
    assert cache.put_many([(key, key.encode() * 3) for key in KEYS])
    assert [p.relative_to(tmp_path).parent.as_posix() for p in tmp_path.rglob("*") if p.is_file()] == ["facts"]
    assert entries(tmp_path)[0].suffix == ".pack"
    again = PackCache(tmp_path, "facts")  # another scan, reading what this one wrote
    assert [again.get(key) for key in KEYS] == [key.encode() * 3 for key in KEYS]
    assert again.get("ff" * 20) is None


@pytest.mark.parametrize("damage", [
    lambda blob: blob[: len(blob) // 2],  # truncated
    lambda blob: blob[:-20] + bytes([blob[-20] ^ 1]) + blob[-19:],  # the trailer's checksum of the index
    lambda blob: blob[:-60] + bytes([blob[-60] ^ 1]) + blob[-59:],  # the index
    lambda blob: b"not a pack at all",  # foreign
    lambda blob: b"",  # empty
])
def test_damaged_pack_is_a_miss_and_is_removed(tmp_path, damage):
    PackCache(tmp_path, "facts").put_many([(key, b"x" * 100) for key in KEYS])
    [path] = entries(tmp_path)
    path.write_bytes(damage(path.read_bytes()))
    cache = PackCache(tmp_path, "facts")
    assert [cache.get(key) for key in KEYS] == [None] * 3
    assert not path.exists()


def test_damaged_entry_in_a_pack_is_a_miss_and_the_others_are_kept(tmp_path):
    PackCache(tmp_path, "facts").put_many([(key, key.encode()) for key in KEYS])
    [path] = entries(tmp_path)
    blob = bytearray(path.read_bytes())
    at = blob.index(KEYS[1].encode())
    blob[at] ^= 1
    path.write_bytes(bytes(blob))
    cache = PackCache(tmp_path, "facts")
    assert [cache.get(key) for key in KEYS] == [KEYS[0].encode(), None, KEYS[2].encode()]
    assert cache.put_many([(KEYS[1], KEYS[1].encode())])  # rebuilt: a later pack holds it
    assert PackCache(tmp_path, "facts").get(KEYS[1]) == KEYS[1].encode()


def test_pack_being_written_is_not_read(tmp_path):
    PackCache(tmp_path, "facts").put_many([(KEYS[0], b"whole")])
    [path] = entries(tmp_path)
    (path.parent / f".tmp-{path.name}").write_bytes(path.read_bytes()[:10])
    cache = PackCache(tmp_path, "facts")
    assert cache.get(KEYS[0]) == b"whole"
    assert len(list(path.parent.iterdir())) == 2  # the other writer's file is left alone


def test_unwritable_pack_cache_is_not_an_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory should be")
    cache = PackCache(blocker, "facts")
    assert cache.put_many([(KEYS[0], b"x")]) is False
    assert cache.get(KEYS[0]) is None


def test_small_packs_are_merged_large_ones_kept_and_nothing_is_lost(tmp_path, monkeypatch):
    from gfpcheck import cache as cache_module

    monkeypatch.setattr(cache_module, "SMALL_PACK", 1000)
    cache = PackCache(tmp_path, "facts")
    assert cache.put_many([("ab" * 20, b"x" * 2000)])  # a large pack: a whole tree's, say
    [large] = entries(tmp_path)
    keys = [f"{i:04x}" * 10 for i in range(MAX_SMALL_PACKS + 1)]
    for key in keys:
        assert cache.put_many([(key, key.encode())])
    assert len(entries(tmp_path)) == 2 and large.exists()  # the small ones became one
    again = PackCache(tmp_path, "facts")
    assert [again.get(key) for key in keys] == [key.encode() for key in keys]
    assert again.get("ab" * 20) == b"x" * 2000


def test_key_depends_on_path_content_and_salt():
    base = content_key("a.c", b"int x;", SALT)
    assert base == content_key("a.c", b"int x;", SALT)
    assert len({base, content_key("b.c", b"int x;", SALT), content_key("a.c", b"int y;", SALT),
                content_key("a.c", b"int x;", salt("other rules"))}) == 4


def write_tree(root: Path, files: dict[str, str]) -> list[Source]:
    for name, text in files.items():
        (root / name).write_text(text)
    return [Source(name, str(root / name)) for name in sorted(files)]


TREE = {
    "a.c": "int a(void) { return b(); }\n",
    "b.c": "int b(void) { return kmalloc(8, GFP_NOFS) != 0; }\n",
    "c.c": "static int c(void) { return 0; }\n",
}


@pytest.fixture
def cached_tree(tmp_path, rules):
    """A small tree on disk and a function that extracts it through one cache."""
    tree = tmp_path / "tree"
    tree.mkdir()
    sources = write_tree(tree, TREE)
    cache = fact_cache(tmp_path / "cache")

    def extract(jobs: int = 1):
        return extract_all(key_sources(sources, SALT), rules, jobs, cache, SALT)

    return tree, extract


def test_second_run_reuses_every_file_and_an_edit_reextracts_only_that_file(cached_tree):
    tree, extract = cached_tree
    cold, cold_stats = extract()
    assert (cold_stats.reused, cold_stats.extracted) == (0, 3)
    assert len(entries(tree.parent / "cache" / FACTS)) == 1  # one pack for the three files
    warm, warm_stats = extract(jobs=2)
    assert (warm_stats.reused, warm_stats.extracted) == (3, 0)
    assert warm == cold
    (tree / "c.c").write_text("static int c(void) { return 1; }\nint d(void) { return c(); }\n")
    edited, edit_stats = extract()
    assert (edit_stats.reused, edit_stats.extracted) == (2, 1)
    assert [f.name for f in edited[2].functions] == ["c", "d"]


def test_interrupted_extraction_keeps_the_files_already_extracted(tmp_path, rules):
    tree = tmp_path / "tree"
    tree.mkdir()
    sources = write_tree(tree, TREE)
    cache = fact_cache(tmp_path / "cache")
    done = []

    def interrupt_after_two(n: int) -> None:
        done.append(n)
        if len(done) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        extract_all(key_sources(sources, SALT), rules, 1, cache, SALT, interrupt_after_two)
    _, stats = extract_all(key_sources(sources, SALT), rules, 1, cache, SALT)
    assert (stats.reused, stats.extracted) == (2, 1)


def test_corrupt_fact_entry_is_rebuilt_with_the_same_facts(tmp_path, cached_tree):
    _, extract = cached_tree
    cold, _ = extract()
    for path in entries(tmp_path / "cache" / FACTS):
        path.write_bytes(path.read_bytes()[:-3])
    rebuilt, stats = extract()
    assert (stats.reused, stats.extracted) == (0, 3)
    assert rebuilt == cold


def test_unreadable_file_becomes_a_degraded_result(tmp_path, rules):
    tree = tmp_path / "tree"
    tree.mkdir()
    sources = write_tree(tree, {"a.c": "int f(void) { return 0; }\n"})
    (tree / "gone.c").mkdir()  # reading a directory fails like an unreadable file
    sources.append(Source("gone.c", str(tree / "gone.c")))
    facts, _ = extract_all(key_sources(sources, SALT), rules, 1, fact_cache(tmp_path / "cache"), SALT)
    assert [f.path for f in facts] == ["a.c", "gone.c"]
    assert facts[0].problem == "" and [fn.name for fn in facts[0].functions] == ["f"]
    assert facts[1].problem.startswith("unreadable")


def options(root: Path, cache: Path | None, **extra) -> ScanOptions:
    return ScanOptions(paths=(root,), root=root, cache_dir=cache, **extra)


def test_unchanged_tree_reuses_the_stored_result(tmp_path, rules):
    cache = tmp_path / "cache"
    cold = scan(options(SEED, cache), rules=rules)
    warm = scan(options(SEED, cache), rules=rules)
    assert cold.stats.cache["result_reused"] == 0 and cold.stats.cache["files_extracted"] == cold.stats.files
    assert warm.stats.cache == {"result_reused": 1, "facts_reused": cold.stats.files, "files_extracted": 0,
                                "files_moved": 0}
    assert warm.findings == cold.findings
    for path in entries(cache / RESULTS):
        path.write_bytes(b"GFPC1\n" + b"\0" * 16 + b"{}")  # right magic, wrong checksum
    again = scan(options(SEED, cache), rules=rules)
    assert again.stats.cache["result_reused"] == 0 and again.stats.cache["files_extracted"] == 0
    assert again.findings == cold.findings


def test_overrides_change_the_scan_without_touching_the_tree(tmp_path, rules):
    root = tmp_path / "tree"
    root.mkdir()
    write_tree(root, {"fs.c": "int g(handle_t *handle)\n{\n\treturn kmalloc(8, GFP_NOFS) != 0;\n}\n"})
    cache = tmp_path / "cache"
    before = scan(options(root, cache), rules=rules)
    assert not [f for f in before.findings if f.rule == "nofs-recursion"]
    patched = b"int g(handle_t *handle)\n{\n\treturn kmalloc(8, GFP_KERNEL) != 0;\n}\n"
    after = scan(options(root, cache, overrides=(("fs.c", patched),)), rules=rules)
    assert [(f.rule, f.line) for f in after.findings] == [("nofs-recursion", 3)]
    assert after.stats.cache["files_extracted"] == 1
    assert b"GFP_NOFS" in (root / "fs.c").read_bytes()
    removed = scan(options(root, cache, overrides=(("fs.c", None),)), rules=rules)
    assert removed.stats.files == 0


def test_scan_with_unwritable_cache_still_reports(tmp_path, rules):
    blocker = tmp_path / "cache"
    blocker.write_text("")
    result = scan(options(SEED, blocker), rules=rules)
    assert any(f.rule == "nofs-recursion" for f in result.findings)


def test_file_without_read_permission_is_degraded_not_fatal(tmp_path, rules, monkeypatch):
    root = tmp_path / "tree"
    root.mkdir()
    write_tree(root, {"a.c": "int f(void) { return 0; }\n", "secret.c": "int s(void) { return 0; }\n"})
    real_open = open

    def guarded(path, *args, **kwargs):  # what a file mode 000 does for anyone but root
        if str(path).endswith("secret.c"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", guarded)
    result = scan(options(root, None), rules=rules)
    assert [(d.path, d.reason) for d in result.degraded] == [("secret.c", "unreadable: Permission denied")]
    assert result.stats.files_degraded == {"unreadable": 1}


def test_fact_keys_depend_on_the_extractor_code_only():
    from gfpcheck.cache import _PACKAGE, _closure, code_digest

    files = {p.relative_to(_PACKAGE).as_posix() for p in _closure("extract")}
    assert {"extract/__init__.py", "extract/frontend.py", "extract/queries/facts.scm", "facts.py",
            "ruleset.py"} <= files
    assert not files & {"pipeline.py", "checks/nofs.py", "link/__init__.py", "report/text.py", "cli.py"}
    assert code_digest("extract") != code_digest()


def counting_reads(monkeypatch) -> list[str]:
    """The sources the scan reads (serially) to key or extract them."""
    from gfpcheck.extract import runner

    read, real = [], runner.read_source

    def counted(location: str):
        read.append(location)
        return real(location)

    monkeypatch.setattr(runner, "read_source", counted)
    return read


def test_stamp_index_keys_an_unchanged_tree_without_reading_it(tmp_path, rules, monkeypatch):
    from gfpcheck.extract import runner

    monkeypatch.setattr(runner, "SETTLED_NS", 0)  # the files were written just now
    root = tmp_path / "tree"
    shutil.copytree(SEED, root)
    cache = tmp_path / "cache"
    cold = scan(options(root, cache, jobs=1), rules=rules)
    read = counting_reads(monkeypatch)
    warm = scan(options(root, cache, jobs=1), rules=rules)
    assert read == [] and warm.stats.cache["result_reused"] == 1
    assert warm.findings == cold.findings

    # Same length, and the modification time put back: the change of ctime still tells.
    target = root / "security" / "integrity" / "evm" / "evm_crypto.c"
    before = target.stat()
    target.write_bytes(target.read_bytes().replace(b"\t\t\tGFP_KERNEL);", b"\t\t\tGFP_NOFS);  "))
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert target.stat().st_size == before.st_size
    edited = scan(options(root, cache, jobs=1), rules=rules)
    assert read == [str(target)] * 2  # keyed, then extracted
    # the allocation is one of those btrfs's call into the LSM covers
    assert ("security/integrity/evm/evm_crypto.c", 55) in {(c.file, c.line) for f in cold.findings for c in f.covers}
    assert ("security/integrity/evm/evm_crypto.c", 55) not in {(c.file, c.line) for f in edited.findings
                                                               for c in f.covers}


def test_stamp_index_does_not_trust_a_file_written_within_the_settling_time(tmp_path, rules, monkeypatch):
    root = tmp_path / "tree"
    shutil.copytree(SEED, root)
    cache = tmp_path / "cache"
    scan(options(root, cache, jobs=1), rules=rules)
    read = counting_reads(monkeypatch)
    again = scan(options(root, cache, jobs=1), rules=rules)
    assert len(read) == again.stats.files  # every file hashed again: its stamp may be racy


def test_damaged_stamp_index_is_an_empty_one(tmp_path, rules, monkeypatch):
    from gfpcheck.extract import runner

    monkeypatch.setattr(runner, "SETTLED_NS", 0)
    root = tmp_path / "tree"
    shutil.copytree(SEED, root)
    cache = tmp_path / "cache"
    cold = scan(options(root, cache, jobs=1), rules=rules)
    [index] = entries(cache / runner.STAMPS)
    payload = marshal.dumps({"fs/btrfs/xattr.c": "not a stamp", "fs/btrfs/inode.c": (1, 2)})
    index.write_bytes(b"GFPC1\n" + hashlib.sha256(payload).digest()[:16] + payload)
    read = counting_reads(monkeypatch)
    again = scan(options(root, cache, jobs=1), rules=rules)
    assert len(read) == again.stats.files and again.findings == cold.findings
    index.write_bytes(b"GFPC1\n" + b"\0" * 16)  # truncated: discarded
    assert scan(options(root, cache, jobs=1), rules=rules).findings == cold.findings


def test_scanning_part_of_a_tree_keeps_the_rest_of_its_stamp_index(tmp_path, rules, monkeypatch):
    from gfpcheck.extract import runner

    monkeypatch.setattr(runner, "SETTLED_NS", 0)
    root = tmp_path / "tree"
    shutil.copytree(SEED, root)
    cache = tmp_path / "cache"
    scan(options(root, cache, jobs=1), rules=rules)
    part = scan(ScanOptions(paths=(root / "fs",), root=root, cache_dir=cache, jobs=1), rules=rules)
    assert 0 < part.stats.files < 11
    read = counting_reads(monkeypatch)
    whole = scan(options(root, cache, jobs=1), rules=rules)
    assert read == [] and whole.stats.files == 11


def test_many_unkeyed_files_are_keyed_by_the_workers_that_read_them(tmp_path, rules, monkeypatch):
    from gfpcheck import pipeline
    from gfpcheck.extract import runner

    monkeypatch.setattr(runner, "SETTLED_NS", 0)
    root = tmp_path / "tree"
    shutil.copytree(SEED, root)
    reference = scan(options(root, None, jobs=1), rules=rules)
    monkeypatch.setattr(pipeline, "DEFER_KEYS_AT", 1)  # as for a whole tree never scanned
    cache = tmp_path / "cache"
    read = counting_reads(monkeypatch)
    cold = scan(options(root, cache, jobs=1), rules=rules)
    assert sorted(read) == sorted(set(read)) and len(read) == cold.stats.files  # each file read once
    assert cold.findings == reference.findings and cold.stats.cache["files_extracted"] == cold.stats.files
    assert scan(options(root, cache, jobs=2), rules=rules).stats.cache["result_reused"] == 1

    # Every file's stamp changes, no content does (a tree checked out anew): keyed
    # again in the workers, nothing extracted, and the stored result is reused.
    for path in root.rglob("*.[ch]"):
        os.utime(path)
    read.clear()
    again = scan(options(root, cache, jobs=2), rules=rules)
    assert again.stats.cache == {"result_reused": 1, "facts_reused": again.stats.files, "files_extracted": 0,
                                 "files_moved": 0}
    assert again.findings == reference.findings


def test_unreadable_file_keyed_in_a_worker_is_degraded(tmp_path, rules, monkeypatch):
    from gfpcheck import pipeline

    monkeypatch.setattr(pipeline, "DEFER_KEYS_AT", 1)
    root = tmp_path / "tree"
    root.mkdir()
    write_tree(root, {"a.c": "int f(void) { return 0; }\n", "secret.c": "int s(void) { return 0; }\n"})
    real_open = open

    def guarded(path, *args, **kwargs):
        if str(path).endswith("secret.c"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", guarded)
    result = scan(options(root, tmp_path / "cache", jobs=1), rules=rules)
    assert [(d.path, d.reason) for d in result.degraded] == [("secret.c", "unreadable: Permission denied")]
    assert result.stats.cache["files_extracted"] == 1
