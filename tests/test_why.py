"""`gfpcheck why FUNCTION` (gfpcheck/checks/why.py, gfpcheck/report/why.py)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.test_cli import FIXTURES, SEED, gfpcheck


def _steps(reach: dict) -> list[tuple[str, int, str]]:
    return [(step["function"], step["line"], step["kind"]) for step in reach["chain"]]


def test_init_desc_in_the_seed_is_reached_by_the_btrfs_handle_and_evm_nofs_belief():
    run = gfpcheck("why", "init_desc", str(SEED), "--no-cache", "--format", "json")
    assert run.returncode == 0, run.stderr
    (definition,) = json.loads(run.stdout)["definitions"]
    assert (definition["function"], definition["file"]) == ("init_desc", "security/integrity/evm/evm_crypto.c")
    reaches = {(r["family"], r["context"]): r for r in definition["contexts"]}
    assert sorted(reaches) == [("fs", "belief"), ("fs", "held")]
    held = reaches[("fs", "held")]
    assert held["description"] == "a btrfs transaction held"
    assert _steps(held) == [("btrfs_mkdir", 11, "held"), ("btrfs_mkdir", 17, "call"),
                            ("btrfs_xattr_security_init", 50, "call"), ("security_inode_init_security", 54, "call"),
                            ("evm_inode_init_security", 25, "call"), ("evm_init_hmac", 76, "call"),
                            ("init_desc", 11, "reached")]
    assert "btrfs_start_transaction() takes a transaction handle" in held["chain"][0]["note"]
    belief = reaches[("fs", "belief")]
    assert _steps(belief) == [("evm_inode_init_security", 20, "belief"), ("evm_inode_init_security", 25, "call"),
                              ("evm_init_hmac", 76, "call"), ("init_desc", 11, "reached")]
    assert "kzalloc() with GFP_NOFS" in belief["chain"][0]["note"]
    assert {(a["family"], a["context"]) for a in definition["absent"]} >= {("fs", "scope"), ("io", "held")}


def test_text_gives_each_context_its_chain_as_compiler_lines():
    run = gfpcheck("why", "init_desc", str(SEED), "--no-cache")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "security/integrity/evm/evm_crypto.c:11:1: init_desc() is entered with:"
    assert "  [fs] a btrfs transaction held: shortest chain, 5 calls, high confidence" in lines
    assert "fs/btrfs/inode.c:11:10: note: btrfs_mkdir: btrfs_start_transaction() takes a transaction handle  " \
           "[rules: begin]" in lines
    assert "  [fs] GFP_NOFS believed by a caller: shortest chain, 2 calls, high confidence" in lines
    assert "  [fs] never a memalloc_nofs or memalloc_noio or memalloc_noreclaim scope open" in lines


def test_a_clean_entry_and_a_handle_parameter_both_reach_a_function():
    run = gfpcheck("why", "demo_lookup", str(FIXTURES / "needless"), "--no-cache", "--format", "json")
    (definition,) = json.loads(run.stdout)["definitions"]
    reaches = {(r["family"], r["context"]): r for r in definition["contexts"]}
    assert sorted(reaches) == [("", "clean"), ("fs", "held")]
    assert _steps(reaches[("", "clean")]) == [("sys_demo_frob", 28, "entry"), ("sys_demo_frob", 35, "call"),
                                               ("demo_lookup", 16, "reached")]
    assert _steps(reaches[("fs", "held")])[0] == ("demo_commit", 46, "held")


def test_an_ops_entry_starts_its_context_itself():
    run = gfpcheck("why", "demo_map", str(FIXTURES / "noio"), "--no-cache", "--format", "json")
    (definition,) = json.loads(run.stdout)["definitions"]
    (reach,) = [r for r in definition["contexts"] if r["family"] == "io"]
    assert (reach["context"], reach["calls"]) == ("held", 0)
    assert _steps(reach) == [("demo_map", 17, "held")]
    assert "struct target_type.map" in reach["chain"][0]["note"]


def _twins(tmp_path: Path) -> Path:
    for name, mask in (("one", "GFP_NOFS"), ("two", "GFP_KERNEL")):
        path = tmp_path / "fs" / name / "a.c"
        path.parent.mkdir(parents=True)
        path.write_text(f"static void *demo_get(void)\n{{\n\treturn kmalloc(8, {mask});\n}}\n\n"
                        f"int {name}_open(struct inode *inode)\n{{\n\treturn demo_get() ? 0 : -ENOMEM;\n}}\n")
    return tmp_path


def test_every_definition_unless_a_file_is_named(tmp_path):
    tree = _twins(tmp_path)
    run = gfpcheck("why", "demo_get", str(tree), "--no-cache", "--format", "json")
    assert [d["file"] for d in json.loads(run.stdout)["definitions"]] == ["fs/one/a.c", "fs/two/a.c"]
    run = gfpcheck("why", "demo_get", str(tree), "--no-cache", "--format", "json", "--file", "fs/two/a.c")
    assert [d["file"] for d in json.loads(run.stdout)["definitions"]] == ["fs/two/a.c"]


def test_an_unknown_function_is_a_one_line_input_error(tmp_path):
    tree = _twins(tmp_path)
    for args in (("demo_nothing",), ("demo_get", "--file", "fs/three/a.c")):
        run = gfpcheck("why", *args, str(tree), "--no-cache")
        assert run.returncode == 2
        assert run.stdout == ""
        assert len(run.stderr.splitlines()) == 1 and "no function" in run.stderr
