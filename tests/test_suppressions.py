"""Inline suppressions: `/* gfpcheck: ignore RULE: reason */` (gfpcheck/suppressions.py)."""

from __future__ import annotations

import json
from pathlib import Path

from .test_cli import gfpcheck
from .test_gate import check, diff, make_tree

SOURCE = """\
int demo_fill(struct btrfs_trans_handle *trans)
{
\t/* gfpcheck: ignore nofs-recursion: runs only at mount, before the fs is live */
\tvoid *p = kmalloc(8, GFP_KERNEL);
\tvoid *q = kmalloc(8, GFP_KERNEL);\t/* gfpcheck: ignore nofs-recursion */
\tvoid *r = kmalloc(8, GFP_KERNEL);\t/* gfpcheck: ignore nofs-recursoin: a typo */
\tvoid *s = kmalloc(8, GFP_KERNEL);\t/* gfpcheck: ignore nofs-redundant: another rule */

\treturn 0;
}
"""


def _tree(tmp_path: Path) -> Path:
    (tmp_path / "fs" / "demo").mkdir(parents=True)
    (tmp_path / "fs" / "demo" / "fill.c").write_text(SOURCE)
    return tmp_path


def test_a_comment_naming_the_rule_with_a_reason_suppresses_and_is_counted(tmp_path):
    root = _tree(tmp_path)
    run = gfpcheck("scan", str(root))
    heads = [line for line in run.stdout.splitlines() if line.endswith("[nofs-recursion]")]
    # the line above with a reason suppresses line 4; no reason, a misspelt rule or another rule does not
    assert [line.split(":")[1] for line in heads] == ["5", "6", "7"]
    assert run.returncode == 1
    assert "1 suppressed inline" in run.stderr
    assert "fs/demo/fill.c:5: gfpcheck: ignore nofs-recursion gives no reason" in run.stderr
    assert "fs/demo/fill.c:6: gfpcheck: ignore names no rule ('nofs-recursoin'" in run.stderr
    stats = json.loads(gfpcheck("scan", "--format", "json", str(root)).stdout)["stats"]
    assert stats["findings_suppressed"] == 1


def test_no_inline_ignores_shows_them_and_sarif_marks_them_suppressed(tmp_path):
    root = _tree(tmp_path)
    shown = gfpcheck("scan", "--no-inline-ignores", str(root))
    assert sum(line.endswith("[nofs-recursion]") for line in shown.stdout.splitlines()) == 4
    results = json.loads(gfpcheck("scan", "--format", "sarif", str(root)).stdout)["runs"][0]["results"]
    suppressed = [r for r in results if "suppressions" in r]
    assert [r["locations"][0]["physicalLocation"]["region"]["startLine"] for r in suppressed] == [4]
    assert suppressed[0]["suppressions"] == [
        {"kind": "inSource", "justification": "runs only at mount, before the fs is live"}]
    assert len(results) == 4


def test_the_gate_passes_a_patch_whose_new_finding_is_suppressed(tmp_path):
    root = make_tree(tmp_path / "tree")
    text = (root / "fs/demo/inode.c").read_text()
    suppressed = text.replace("\tbuf = kmalloc(len, GFP_NOFS);",
                              "\t/* gfpcheck: ignore nofs-recursion: the handle is a dummy here */\n"
                              "\tbuf = kmalloc(len, GFP_KERNEL);")
    run = check(root, patch=diff(root, "fs/demo/inode.c", suppressed))
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout == "total: 0 errors, 0 warnings, 0 notes\n"
    shown = check(root, "--no-inline-ignores", patch=diff(root, "fs/demo/inode.c", suppressed))
    assert shown.returncode == 1 and "ERROR:NOFS_RECURSION" in shown.stdout
