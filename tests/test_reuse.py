"""A stored result carried over to a tree whose changed files only moved
(gfpcheck/reuse.py): every scan of an edited tree gives what a cold scan of it
gives, byte for byte, whether the result was carried over or analysed again."""

from __future__ import annotations

import random
import re
import shutil
from pathlib import Path

import pytest

from gfpcheck.extract import extract_file
from gfpcheck.pipeline import ScanOptions, scan
from gfpcheck.report import json as json_report
from gfpcheck.reuse import moves

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
TREES = ("seed-2016", "inconsistent", "noio", "scopes", "scope-leak", "needless", "root-cause", "flow-paths")


def _report(root: Path, cache: Path | None, rules) -> tuple[str, dict]:
    result = scan(ScanOptions(paths=(root,), root=root, cache_dir=cache, jobs=1, min_confidence="low"), rules=rules)
    return json_report.render(result.findings, result.stats, include_timing=False), result.stats.cache


def _sources(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix in (".c", ".h"))


def _inert(text: str, rng: random.Random) -> str:
    """The text with lines that change no fact: blank lines and line comments
    inserted, trailing blanks added; never inside a macro continued by `\\`."""
    lines = text.split("\n")
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(lines) + 1)
        if at > 0 and lines[at - 1].endswith("\\"):
            continue
        lines.insert(at, rng.choice(["", "// moved by an edit", "\t/* a comment */"]))
    touched = rng.randrange(len(lines))
    if not lines[touched].endswith("\\"):
        lines[touched] += "  "
    return "\n".join(lines)


def _semantic(text: str, rng: random.Random) -> str:
    """The text with a mask changed or a call's line dropped."""
    masks = [m.start() for m in re.finditer(r"GFP_(NOFS|KERNEL|NOIO)", text)]
    if masks and rng.random() < 0.7:
        at = rng.choice(masks)
        old = re.match(r"GFP_\w+", text[at:]).group(0)
        new = rng.choice([m for m in ("GFP_NOFS", "GFP_KERNEL", "GFP_NOIO") if m != old])
        return text[:at] + new + text[at + len(old):]
    lines = text.split("\n")
    calls = [n for n, line in enumerate(lines) if re.search(r"^\t+\w+\(.*\);$", line)]
    if calls:
        del lines[rng.choice(calls)]
    return "\n".join(lines)


@pytest.mark.parametrize("fixture", TREES)
def test_random_edits_give_what_a_cold_scan_gives(tmp_path, rules, fixture):
    rng = random.Random(fixture)
    root = tmp_path / "tree"
    shutil.copytree(FIXTURES / fixture, root)
    cache = tmp_path / "cache"
    _report(root, cache, rules)
    moved = 0
    for round_ in range(6):
        semantic = round_ % 3 == 2
        for path in rng.sample(_sources(root), k=min(2, len(_sources(root)))):
            text = path.read_text()
            path.write_text(_semantic(text, rng) if semantic else _inert(text, rng))
        warm, stats = _report(root, cache, rules)
        cold, _ = _report(root, None, rules)
        assert warm == cold, f"round {round_} of {fixture}"
        moved += stats["files_moved"]
        if semantic:
            assert stats["files_moved"] == 0
    assert moved > 0  # the inert rounds were carried over, not analysed again


SOURCE = """static int demo_put(struct demo *d)
{
\treturn kmalloc(8, GFP_NOFS) != NULL;
}

int demo_get(struct demo *d)
{
\tif (d->flags)
\t\treturn demo_put(d);
\treturn 0;
}
"""


def test_a_file_with_lines_inserted_moves_each_place(rules):
    before = extract_file("fs/demo/a.c", SOURCE.encode(), rules)
    after = extract_file("fs/demo/a.c", ("/* new */\n\n" + SOURCE.replace("\treturn 0;", "\t\n\treturn 0;")).encode(),
                         rules)
    found = moves(before, after)
    assert found is not None
    assert found.place(3, 9) == (5, 9)  # kmalloc, two lines down
    assert found.place(9, 10) == (11, 10)  # the call to demo_put
    assert found.line(11) == 14  # demo_get's closing brace, one more line inserted above it


@pytest.mark.parametrize("edit", [
    lambda s: s.replace("GFP_NOFS", "GFP_KERNEL"),  # a mask
    lambda s: s.replace("\t\treturn demo_put(d);\n", "\t\treturn demo_put(d) + demo_put(d);\n"),  # a call added
    lambda s: s.replace("if (d->flags)", "if (!d->flags)"),  # a condition
    lambda s: s.replace("static int demo_put", "int demo_put"),  # linkage
])
def test_a_file_whose_facts_changed_does_not_move(rules, edit):
    before = extract_file("fs/demo/a.c", SOURCE.encode(), rules)
    assert moves(before, extract_file("fs/demo/a.c", edit(SOURCE).encode(), rules)) is None


def test_a_patched_tree_scanned_in_between_does_not_stop_the_tree_on_disk_moving(tmp_path, rules):
    """The gate scans a patch applied in memory, then the tree on disk is edited:
    the result of the tree on disk is still the one carried over."""
    root = tmp_path / "tree"
    shutil.copytree(FIXTURES / "seed-2016", root)
    cache = tmp_path / "cache"
    _report(root, cache, rules)
    xattr = root / "fs" / "btrfs" / "xattr.c"
    patched = xattr.read_bytes().replace(b"GFP_KERNEL", b"GFP_NOFS", 1)
    result = scan(ScanOptions(paths=(root,), root=root, cache_dir=cache, jobs=1, overrides=(
        ("fs/btrfs/xattr.c", patched),)), rules=rules)
    assert result.stats.cache["result_reused"] == 0
    inode = root / "fs" / "btrfs" / "inode.c"
    inode.write_text("// a comment above everything\n" + inode.read_text())
    warm, stats = _report(root, cache, rules)
    assert stats["files_moved"] == 1
    assert warm == _report(root, None, rules)[0]


def test_the_gate_says_when_the_patched_tree_carried_the_result_over(tmp_path):
    from tests.test_cli import gfpcheck

    root = tmp_path / "tree"
    shutil.copytree(FIXTURES / "seed-2016", root)
    cache = str(tmp_path / "cache")
    assert gfpcheck("scan", "-q", "--cache-dir", cache, str(root)).returncode == 1
    patch = tmp_path / "moved.patch"
    first = (root / "fs" / "btrfs" / "inode.c").read_text().splitlines()[0]
    patch.write_text(f"--- a/fs/btrfs/inode.c\n+++ b/fs/btrfs/inode.c\n@@ -1,1 +1,2 @@\n+// a comment\n {first}\n")
    run = gfpcheck("check", "--patch", str(patch), "--cache-dir", cache, str(root))
    assert run.returncode == 0, run.stderr
    assert "1 changed files (result carried over, 1 moved): 0 new findings" in run.stderr
