"""`gfpcheck check`: what a patch or a git revision range introduces."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from gfpcheck.gate import run_gate
from gfpcheck.pipeline import ScanOptions

from .test_cli import SEED, gfpcheck

# A filesystem with a journal: xfs_fill() allocates while the caller holds a
# handle.  Lines are numbered in comments where the tests name them.
INODE = """\
#include <linux/slab.h>

static int demo_fill(handle_t *handle, int len)
{
	char *buf;

	buf = kmalloc(len, GFP_NOFS);
	if (!buf)
		return -ENOMEM;
	kfree(buf);
	return 0;
}

int demo_mkdir(struct inode *dir, int len)
{
	handle_t *handle;
	int err;

	handle = ext4_journal_start(dir, 1, 2);
	err = demo_fill(handle, len);
	ext4_journal_stop(handle);
	return err;
}
"""
ALLOC_LINE = 7  # buf = kmalloc(len, GFP_NOFS);


def make_tree(root: Path, inode: str = INODE) -> Path:
    (root / "fs" / "demo").mkdir(parents=True)
    (root / "fs" / "demo" / "inode.c").write_text(inode)
    (root / "fs" / "demo" / "super.c").write_text("int demo_init(void)\n{\n\treturn 0;\n}\n")
    return root


def diff(root: Path, path: str, new_text: str) -> str:
    """A unified diff of one file of the tree, as `git diff` writes it."""
    old = root / path
    run = subprocess.run(["diff", "-u", "--label", f"a/{path}", "--label", f"b/{path}", str(old), "-"],
                         input=new_text, capture_output=True, text=True, check=False)
    assert run.returncode == 1, run.stderr
    return run.stdout


def check(root: Path, *args: str, patch: str | None = None, cwd: Path | None = None):
    extra = ["--patch", "-"] if patch is not None else []
    return subprocess.run(
        [*gfpcheck_command(), "check", *extra, *args, str(root)], input=patch, capture_output=True, text=True,
        cwd=cwd, check=False)


def gfpcheck_command() -> list[str]:
    import sys

    return [sys.executable, "-m", "gfpcheck"]


BUGGY = INODE.replace("kmalloc(len, GFP_NOFS)", "kmalloc(len, GFP_KERNEL)")


def test_patch_adding_gfp_kernel_under_a_handle_fails_with_that_finding(tmp_path):
    root = make_tree(tmp_path / "tree")
    run = check(root, patch=diff(root, "fs/demo/inode.c", BUGGY))
    assert run.returncode == 1, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("ERROR:NOFS_RECURSION: kmalloc() with GFP_KERNEL")
    assert lines[1] == f"#{ALLOC_LINE}: FILE: fs/demo/inode.c:{ALLOC_LINE}:"
    assert lines[2] == "+\tbuf = kmalloc(len, GFP_KERNEL);"
    assert any("demo_mkdir: ext4_journal_start() takes" in line for line in lines)
    assert lines[-1] == "total: 1 errors, 0 warnings, 0 notes"
    assert sum(line.startswith(("ERROR", "WARNING", "NOTE")) for line in lines) == 1
    assert "GFP_NOFS" in (root / "fs/demo/inode.c").read_text()  # the tree is untouched


def test_patch_that_fixes_the_bug_passes(tmp_path):
    root = make_tree(tmp_path / "tree", BUGGY)
    assert gfpcheck("scan", str(root)).returncode == 1
    run = check(root, patch=diff(root, "fs/demo/inode.c", INODE))
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout == "total: 0 errors, 0 warnings, 0 notes\n"


def test_patch_that_only_moves_code_reports_nothing_new(tmp_path):
    root = make_tree(tmp_path / "tree", BUGGY)
    moved = "/* SPDX-License-Identifier: GPL-2.0 */\n\n\n" + BUGGY.replace("\tchar *buf;\n\n", "\tchar *buf;\n")
    run = check(root, patch=diff(root, "fs/demo/inode.c", moved))
    assert run.returncode == 0, run.stdout
    assert run.stdout == "total: 0 errors, 0 warnings, 0 notes\n"


def test_pre_existing_finding_through_a_changed_line_is_marked_but_passes(tmp_path):
    root = make_tree(tmp_path / "tree", BUGGY)
    touched = BUGGY.replace("\terr = demo_fill(handle, len);", "\terr = demo_fill(handle, len + 1);")
    run = check(root, "--terse", patch=diff(root, "fs/demo/inode.c", touched))
    assert run.returncode == 0
    first = run.stdout.splitlines()[0]
    assert first.startswith(f"fs/demo/inode.c:{ALLOC_LINE}: ERROR:NOFS_RECURSION: ")
    assert first.endswith("[pre-existing: its chain runs through a changed line]")


@pytest.mark.parametrize("patch", [
    "this is not a diff\n",
    "--- a/fs/demo/inode.c\n+++ b/fs/demo/inode.c\n@@ -3,1 +3,1 @@\n-no such line\n+x\n",
    "--- a/fs/demo/inode.c\n+++ b/fs/demo/inode.c\n@@ nonsense\n",
])
def test_malformed_or_stale_patch_exits_two_with_one_line(tmp_path, patch):
    root = make_tree(tmp_path / "tree")
    run = check(root, patch=patch)
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and run.stderr.startswith("gfpcheck: error: -: ")
    assert "Traceback" not in run.stderr and run.stdout == ""


def test_terse_types_ignore_and_show_types(tmp_path):
    root = make_tree(tmp_path / "tree")
    patch = diff(root, "fs/demo/inode.c", BUGGY)
    terse = check(root, "--terse", patch=patch)
    assert terse.stdout.splitlines()[0].startswith(f"fs/demo/inode.c:{ALLOC_LINE}: ERROR:NOFS_RECURSION: kmalloc()")
    plain = check(root, "--terse", "--no-show-types", patch=patch)
    assert plain.stdout.splitlines()[0].startswith(f"fs/demo/inode.c:{ALLOC_LINE}: ERROR: kmalloc()")
    ignored = check(root, "--ignore", "NOFS_RECURSION", patch=patch)
    assert ignored.returncode == 0 and ignored.stdout == "total: 0 errors, 0 warnings, 0 notes\n"
    only = check(root, "--types", "nofs-redundant,nofs-needless", patch=patch)
    assert only.returncode == 0 and "NOFS_RECURSION" not in only.stdout
    unknown = check(root, "--types", "NO_SUCH_TYPE", patch=patch)
    assert unknown.returncode == 2 and "unknown rule" in unknown.stderr
    lenient = check(root, "--fail-on", "error", "--ignore", "nofs-recursion", patch=patch)
    assert lenient.returncode == 0


def test_gate_formats_json_and_sarif_mark_new(tmp_path):
    root = make_tree(tmp_path / "tree")
    patch = diff(root, "fs/demo/inode.c", BUGGY)
    document = json.loads(check(root, "--format", "json", patch=patch).stdout)
    assert [f["rule"] for f in document["new"]] == ["nofs-recursion"] and document["pre_existing"] == []
    assert document["changed_files"] == ["fs/demo/inode.c"]
    sarif = json.loads(check(root, "--format", "sarif", patch=patch).stdout)
    results = sarif["runs"][0]["results"]
    assert [(r["ruleId"], r["baselineState"]) for r in results] == [("nofs-recursion", "new")]


def test_one_file_patch_reextracts_only_that_file(tmp_path, rules):
    root = make_tree(tmp_path / "tree")
    shutil.copytree(SEED, root / "seed")
    options = ScanOptions(paths=(root,), root=root, cache_dir=tmp_path / "cache", jobs=1)
    cold = run_gate(options, (), (), rules=rules)
    assert cold.base.stats.cache["files_extracted"] == cold.base.stats.files > 2
    assert cold.head.stats.cache["result_reused"] == 1 and cold.new == ()
    warm = run_gate(options, (), (("fs/demo/inode.c", BUGGY.encode()),), rules=rules)
    assert warm.base.stats.cache["result_reused"] == 1
    assert warm.head.stats.cache["files_extracted"] == 1
    assert [(f.rule, f.file, f.line) for f in warm.new] == [("nofs-recursion", "fs/demo/inode.c", ALLOC_LINE)]
    assert warm.changed_files == ("fs/demo/inode.c",)


def git(repo: Path, *args: str) -> str:
    run = subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
                         capture_output=True, text=True, check=True)
    return run.stdout


def test_git_base_and_head_revisions(tmp_path):
    repo = make_tree(tmp_path / "repo")
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    inode = repo / "fs/demo/inode.c"
    inode.write_text(BUGGY)
    work = check(repo, "--base", "HEAD", "--terse")
    assert work.returncode == 1
    assert [line.split(" ")[1] for line in work.stdout.splitlines() if line.startswith("fs/")] == [
        "ERROR:NOFS_RECURSION:"]
    git(repo, "commit", "-qam", "bug")
    inode.write_text(INODE)  # the working tree fixed; the commits still hold the bug
    assert check(repo, "--base", "HEAD~1", "--head", "HEAD").returncode == 1
    assert check(repo, "--base", "HEAD").returncode == 0
    git(repo, "commit", "-qam", "fix")
    inode.write_text("\n\n" + INODE)
    git(repo, "commit", "-qam", "shift")
    shifted = check(repo, "--base", "HEAD~1", "--head", "HEAD")
    assert shifted.returncode == 0 and shifted.stdout.endswith("total: 0 errors, 0 warnings, 0 notes\n")
    untracked = repo / "fs/demo/extra.c"
    untracked.write_text("int demo_extra(handle_t *handle)\n{\n\treturn kmalloc(8, GFP_KERNEL) != 0;\n}\n")
    assert check(repo, "--base", "HEAD", "--terse").stdout.startswith("fs/demo/extra.c:3: ERROR:NOFS_RECURSION:")
    bad = check(repo, "--base", "no-such-rev")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "unknown revision" in bad.stderr


def test_base_outside_a_git_checkout_is_an_error(tmp_path):
    root = make_tree(tmp_path / "tree")
    run = check(root, "--base", "HEAD", cwd=tmp_path)
    assert run.returncode == 2 and "not inside a git checkout" in run.stderr


def test_exactly_one_of_base_and_patch(tmp_path):
    root = make_tree(tmp_path / "tree")
    run = check(root)
    assert run.returncode == 2 and "exactly one of --base" in run.stderr


def test_a_renamed_file_keeps_its_findings_old(tmp_path):
    """`git mv` moves a finding, it does not make one: fingerprints name no file."""
    repo = make_tree(tmp_path / "repo", BUGGY)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    git(repo, "mv", "fs/demo/inode.c", "fs/demo/namei.c")
    git(repo, "commit", "-qm", "rename")
    renamed = check(repo, "--base", "HEAD~1", "--head", "HEAD", "--format", "json")
    assert renamed.returncode == 0, renamed.stdout
    assert json.loads(renamed.stdout)["new"] == []
    moved = subprocess.run(["git", "-C", str(repo), "format-patch", "-M", "-1", "--stdout"],
                           capture_output=True, text=True, check=True).stdout
    git(repo, "reset", "-q", "--hard", "HEAD~1")
    as_patch = check(repo, patch=moved)
    assert as_patch.returncode == 0 and "nothing to check" in as_patch.stderr


def test_a_series_as_several_patches_or_one_mbox(tmp_path):
    """`git format-patch` output: each patch applies on the one before it, given as
    several --patch files in order or as one mbox."""
    repo = make_tree(tmp_path / "repo")
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    inode = repo / "fs/demo/inode.c"
    renamed = INODE.replace("buf", "scratch")
    inode.write_text(renamed)  # 1/2: a rename, harmless
    git(repo, "commit", "-qam", "rename")
    inode.write_text(renamed.replace("kmalloc(len, GFP_NOFS)", "kmalloc(len, GFP_KERNEL)"))  # 2/2: the bug
    git(repo, "commit", "-qam", "bug")
    out = tmp_path / "series"
    git(repo, "format-patch", "-q", "-o", str(out), "HEAD~2")
    first, second = sorted(out.glob("*.patch"))
    git(repo, "checkout", "-q", "HEAD~2")
    (tmp_path / "series.mbox").write_bytes(first.read_bytes() + second.read_bytes())
    several = check(repo, "--terse", "--patch", str(first), "--patch", str(second))
    mbox = check(repo, "--terse", "--patch", str(tmp_path / "series.mbox"))
    for run in (several, mbox):
        assert run.returncode == 1, run.stderr
        assert [line.split(" ")[:2] for line in run.stdout.splitlines() if line.startswith("fs/")] == [
            [f"fs/demo/inode.c:{ALLOC_LINE}:", "ERROR:NOFS_RECURSION:"]]
    # the second alone does not apply on the tree: one line, exit 2
    alone = check(repo, "--patch", str(second))
    assert alone.returncode == 2 and alone.stderr.count("\n") == 1 and "does not apply" in alone.stderr
    assert check(repo, "--patch", str(first)).returncode == 0
    assert inode.read_text() == INODE  # the checkout is untouched
