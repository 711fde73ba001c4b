"""`.gfpcheck.toml` settings and baselines."""

from __future__ import annotations

import json
import shutil

import pytest

from .test_cli import SEED, gfpcheck


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "seed"
    shutil.copytree(SEED, root)
    return root


def findings(root, *args):
    run = gfpcheck("scan", "--format", "json", *args, str(root))
    assert run.returncode in (0, 1), run.stderr
    return json.loads(run.stdout)["findings"], run


def test_baseline_hides_recorded_findings_and_counts_them(tmp_path, tree):
    baseline = tmp_path / "baseline.json"
    every, _ = findings(tree, "--write-baseline", str(baseline))
    assert every
    recorded = json.loads(baseline.read_text())
    assert recorded["format"] == "gfpcheck-baseline/3"
    assert sorted(e["fingerprint"] for e in recorded["findings"]) == sorted(f["fingerprint"] for f in every)
    hidden, run = findings(tree, "--baseline", str(baseline))
    assert hidden == [] and run.returncode == 0
    assert f"{len(every)} in the baseline not shown" in run.stderr
    # A new finding is still reported over the baseline.
    (tree / "fs/btrfs/extra.c").write_text(
        "int btrfs_extra(struct btrfs_trans_handle *trans)\n{\n\treturn kmalloc(8, GFP_KERNEL) != 0;\n}\n")
    new, run = findings(tree, "--baseline", str(baseline))
    assert [(f["file"], f["rule"]) for f in new] == [("fs/btrfs/extra.c", "nofs-recursion")]


def test_config_file_disables_overrides_severity_excludes_and_names_the_baseline(tmp_path, tree):
    every, _ = findings(tree)
    assert {f["rule"] for f in every} == {"nofs-recursion"}
    (tree / ".gfpcheck.toml").write_text('[severity]\nnofs-recursion = "warning"\n')
    assert {f["severity"] for f in findings(tree)[0]} == {"warning"}
    (tree / ".gfpcheck.toml").write_text('disable = ["nofs-recursion"]\n')
    assert findings(tree)[0] == []
    (tree / ".gfpcheck.toml").write_text('exclude = ["fs/btrfs/xattr.c"]\n')
    assert all(f["file"] != "fs/btrfs/xattr.c" for f in findings(tree)[0])
    (tree / ".gfpcheck.toml").unlink()
    findings(tree, "--write-baseline", str(tree / "known.json"))
    (tree / ".gfpcheck.toml").write_text('baseline = "known.json"\n')
    assert findings(tree)[0] == []


def test_config_rules_directory_adds_knowledge(tmp_path, tree):
    (tree / "fs/myfs.c").write_text(
        "int myfs_op(void)\n{\n\tstruct myfs_trans *t = myfs_trans_begin();\n\tvoid *p = kmalloc(8, GFP_KERNEL);\n"
        "\tmyfs_trans_end(t);\n\treturn p != 0;\n}\n")
    assert all(f["file"] != "fs/myfs.c" for f in findings(tree)[0])
    (tree / "gfprules").mkdir()
    (tree / "gfprules" / "myfs.yaml").write_text(
        "handle_types:\n  - {type: struct myfs_trans, name: myfs transaction}\n"
        "begin:\n  - {name: myfs_trans_begin, handle_type: struct myfs_trans, result: handle}\n"
        "end:\n  - {name: myfs_trans_end, handle_arg: 0}\n")
    (tree / ".gfpcheck.toml").write_text('rules = ["gfprules"]\n')
    assert [(f["file"], f["line"]) for f in findings(tree)[0] if f["file"] == "fs/myfs.c"] == [("fs/myfs.c", 4)]


@pytest.mark.parametrize("text, needle", [
    ("disable = [\"no-such-rule\"]\n", "disable: unknown rule 'no-such-rule'"),
    ("colour = 1\n", "unknown key 'colour'"),
    ("[severity]\nnofs-recursion = \"fatal\"\n", "severity.nofs-recursion"),
    ("exclude = \"fs/*\"\n", "'exclude' must be a list of strings"),
    ("this is not toml\n", "not valid TOML"),
])
def test_malformed_config_is_a_one_line_error(tree, text, needle):
    (tree / ".gfpcheck.toml").write_text(text)
    run = gfpcheck("scan", str(tree))
    assert run.returncode == 2 and run.stderr.count("\n") == 1
    assert ".gfpcheck.toml" in run.stderr and needle in run.stderr


def test_unusable_baseline_is_a_one_line_error(tmp_path, tree):
    (tmp_path / "b.json").write_text("{\"format\": \"something else\"}")
    for path, needle in ((tmp_path / "b.json", "not a gfpcheck baseline"), (tmp_path / "none.json", "no such")):
        run = gfpcheck("scan", "--baseline", str(path), str(tree))
        assert run.returncode == 2 and run.stderr.count("\n") == 1 and needle in run.stderr
