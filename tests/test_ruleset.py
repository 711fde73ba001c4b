from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gfpcheck.ruleset import RuleError, default_rules_dir, load_rules


def copy_rules(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(default_rules_dir(), target)
    return target


def test_bundled_rules_load(rules):
    assert rules.allocators["kmalloc"].gfp_arg == 1
    assert rules.allocators["vmalloc"].implied == "GFP_KERNEL"
    assert rules.scopes["memalloc_nofs_save"].op == "open"
    assert rules.begin["btrfs_start_transaction"].result == "handle"
    assert rules.end["__ext4_journal_stop"] == 2
    assert rules.entry_macros["SYSCALL_DEFINE3"] == "sys_{0}"
    assert rules.binders["LSM_HOOK_INIT"].function_arg == 1
    assert rules.field_dispatchers["hook"] == "lsm:{field}"
    assert "struct btrfs_trans_handle" in rules.handle_types


def test_digest_is_stable_and_changes_with_content(tmp_path):
    first = load_rules().digest
    assert load_rules().digest == first
    directory = copy_rules(tmp_path)
    with open(directory / "allocators.yaml", "a") as handle:
        handle.write("  - {name: my_alloc, gfp_arg: 0}\n")
    assert load_rules([directory]).digest != first


@pytest.mark.parametrize("text, where", [
    ("allocators:\n  - {name: kmalloc, gfp_arg: one}\n", "allocators[0].gfp_arg"),
    ("allocators:\n  - {name: kmalloc}\n", "allocators[0]"),
    ("scopes:\n  - {name: memalloc_nofs_save, kind: nofs, op: sometimes}\n", "scopes[0].op"),
    ("unknown_section: []\n", "(top level)"),
    ("allocators: [\n", "invalid YAML"),
])
def test_malformed_rule_file_names_file_and_key(tmp_path, text, where):
    directory = copy_rules(tmp_path)
    (directory / "zz-extra.yaml").write_text(text)
    with pytest.raises(RuleError) as error:
        load_rules([directory])
    message = str(error.value)
    assert "zz-extra.yaml" in message
    assert where in message
    assert "\n" not in message


def test_cross_file_errors_are_reported(tmp_path):
    directory = copy_rules(tmp_path)
    (directory / "zz-extra.yaml").write_text("allocators:\n  - {name: my_alloc, implied: GFP_NOPE}\n")
    with pytest.raises(RuleError, match="GFP_NOPE"):
        load_rules([directory])


def test_a_family_covers_only_declared_families(tmp_path):
    directory = copy_rules(tmp_path)
    noio = directory / "noio.yaml"
    noio.write_text(noio.read_text().replace("covers: [fs]", "covers: [fss]"))
    with pytest.raises(RuleError, match=r"families.io.covers: 'fss' is not another family"):
        load_rules([directory])


def test_missing_directory_and_empty_directory(tmp_path):
    with pytest.raises(RuleError, match="not found"):
        load_rules([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(RuleError, match="no rules files"):
        load_rules([tmp_path / "empty"])


def test_later_directory_overrides_by_name(tmp_path):
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "site.yaml").write_text("allocators:\n  - {name: kmalloc, gfp_arg: 2}\n"
                                     "  - {name: my_pool_alloc, gfp_arg: 1}\n")
    rules = load_rules([default_rules_dir(), extra])
    assert rules.allocators["kmalloc"].gfp_arg == 2
    assert rules.allocators["my_pool_alloc"].gfp_arg == 1
    assert rules.allocators["kzalloc"].gfp_arg == 1
