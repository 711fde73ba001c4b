"""How much a finding's chain is trusted (gfpcheck/checks/evidence.py)."""

from __future__ import annotations

from pathlib import Path

from gfpcheck.checks.evidence import LONGEST_CALLS
from gfpcheck.pipeline import ScanOptions, scan


def _tree(tmp_path: Path, depth: int) -> Path:
    """A handle parameter passed through `depth` calls to a function that takes a
    handle of its own above its allocation (the context is evident there)."""
    lines = ["// SPDX-License-Identifier: GPL-2.0",
             "static void demo_deep(struct demo_info *info)", "{",
             "\tstruct btrfs_trans_handle *own;", "",
             "\tif (info->flags) {",
             "\t\town = btrfs_start_transaction(info->root, 1);",
             "\t\tbtrfs_end_transaction(own);", "\t}",
             "\tinfo->buf = kmalloc(64, GFP_KERNEL);", "}", ""]
    callee = "demo_deep"
    for level in range(depth, 0, -1):
        lines += [f"static void demo_level{level}(struct demo_info *info)", "{", f"\t{callee}(info);", "}", ""]
        callee = f"demo_level{level}"
    lines += ["int demo_commit(struct btrfs_trans_handle *trans, struct demo_info *info)", "{",
              f"\t{callee}(info);", "\treturn 0;", "}", ""]
    path = tmp_path / "fs" / "demo" / "deep.c"
    path.parent.mkdir(parents=True)
    path.write_text("\n".join(lines))
    return tmp_path


def test_a_chain_past_the_longest_is_low_confidence_however_evident_below(tmp_path, rules):
    short = scan(ScanOptions(paths=(_tree(tmp_path / "short", 20),), root=tmp_path / "short", jobs=1,
                             min_confidence="low"), rules=rules).findings
    long = scan(ScanOptions(paths=(_tree(tmp_path / "long", LONGEST_CALLS + 1),), root=tmp_path / "long", jobs=1,
                            min_confidence="low"), rules=rules).findings
    assert [(f.rule, f.function, f.confidence) for f in short] == [("nofs-recursion", "demo_deep", "high")]
    assert [(f.rule, f.function, f.confidence) for f in long] == [("nofs-recursion", "demo_deep", "low")]


def test_each_step_names_what_it_contributes(rules):
    """The seed's chains: the handle taken, the calls, the callback bound and then
    called through its parameter, the allocation; a mask passed down is `mask`."""
    root = Path(__file__).parent.parent / "fixtures" / "seed-2016"
    findings = scan(ScanOptions(paths=(root,), root=root, jobs=1), rules=rules).findings
    kinds = {(f.function, f.line): [step.kind for step in f.chain] for f in findings}
    assert kinds[("btrfs_initxattrs", 29)] == ["held", "call", "bind", "invoke", "allocation"]
    assert kinds[("btrfs_xattr_security_init", 50)] == ["held", "call", "call", "call", "call", "call",
                                                        "allocation"]
