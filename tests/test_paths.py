"""What a path learns from the conditions it passes (propagate/paths.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

from gfpcheck.facts import constant
from gfpcheck.pipeline import ScanOptions, scan
from gfpcheck.propagate import paths as pa
from gfpcheck.ruleset import default_rules_dir, load_rules

WRAPPERS = frozenset({"unlikely", "likely"})
TRACKED = frozenset({"suspend", "trans", "how", "flags"})


def parse(text: str):
    return pa.parse_condition(text, WRAPPERS)


def test_conditions_on_plain_variables_are_parsed_and_others_are_not() -> None:
    assert parse("(suspend)") == ("test", "suspend", pa.TRUTH, "")
    assert parse("(unlikely(!trans))") == ("not", ("test", "trans", pa.TRUTH, ""))
    assert parse("(how == MODE_A)") == ("test", "how", pa.EQ, "MODE_A")
    assert parse("(NULL != trans)") == ("test", "trans", pa.NE, "0")
    assert parse("(flags & LOOKUP_DOWN)") == ("test", "flags", pa.AND_FLAG, "LOOKUP_DOWN")
    assert parse("(dev->ready)") is None
    assert parse("(ret < 0)") is None
    assert parse("(CONFIG_FOO)") is None


def test_constants_are_read_as_c_writes_them() -> None:
    assert constant("0644") == "420" and constant("0x1F") == "31" and constant("10UL") == "10"
    assert constant("-1") == "-1" and constant("0") == "0" and constant("NULL") == "0"
    assert constant("09") is None  # not a C number
    assert constant("B | A") == "A|B" and constant("x") is None


def test_a_value_set_on_a_path_decides_a_later_test() -> None:
    env = pa.assign(pa.NOTHING, "suspend", "false")
    assert pa.learn(parse("(suspend)"), True, env, TRACKED) is None
    assert pa.learn(parse("(suspend)"), False, env, TRACKED) == env
    env = pa.assign(env, "suspend", "true")
    assert pa.evaluate(parse("(!suspend && ready)"), dict((v, (r, c)) for v, r, c in env)) is False


def test_a_conjunction_teaches_its_parts_only_when_it_holds() -> None:
    condition = parse("(!suspend && (a || b))")
    assert pa.learn(condition, True, pa.NOTHING, TRACKED) == (("suspend", pa.EQ, "0"),)
    assert pa.learn(condition, False, pa.NOTHING, TRACKED) == pa.NOTHING


def test_untracked_variables_learn_nothing() -> None:
    assert pa.learn(parse("(ret)"), True, pa.NOTHING, TRACKED) == pa.NOTHING


def test_different_names_are_different_values_but_a_name_is_no_number() -> None:
    facts = {"how": (pa.EQ, "MODE_A")}
    assert pa.evaluate(parse("(how == MODE_A)"), facts) is True
    assert pa.evaluate(parse("(how != MODE_B)"), facts) is True
    assert pa.evaluate(parse("(how == 3)"), facts) is None
    assert pa.evaluate(parse("(how == 3)"), {"how": (pa.EQ, "2")}) is False


def test_flag_tests_read_an_or_of_flags() -> None:
    facts = {"flags": (pa.EQ, constant("LOOKUP_FOLLOW | LOOKUP_DOWN"))}
    assert pa.evaluate(parse("(flags & LOOKUP_DOWN)"), facts) is True
    assert pa.evaluate(parse("(flags & LOOKUP_RCU)"), facts) is None
    assert pa.evaluate(parse("(flags & LOOKUP_RCU)"), {"flags": (pa.EQ, "0")}) is False


def test_an_alias_takes_what_the_path_knows_of_its_source() -> None:
    env = pa.learn(parse("(!trans_in)"), True, pa.NOTHING, frozenset({"trans_in"}))
    assert pa.is_null(pa.assign(env, "trans", "trans_in"), "trans")


def test_too_many_environments_fold_into_what_they_share() -> None:
    paths = {(("a", pa.EQ, "0"), ("n", pa.EQ, str(i))): 1 << i for i in range(pa.MAX_PATHS + 1)}
    folded = pa.fold(paths)
    assert folded == {(("a", pa.EQ, "0"),): (1 << (pa.MAX_PATHS + 1)) - 1}


def test_a_feature_test_is_false_in_a_subsystem_without_the_features_ops(tmp_path) -> None:
    tree = Path(__file__).resolve().parent.parent / "fixtures" / "features"
    without = tmp_path / "rules"
    shutil.copytree(default_rules_dir(), without)
    (without / "features.yaml").unlink()

    def reported(rules) -> list[str]:
        result = scan(ScanOptions(paths=(tree,), root=tree, jobs=1, min_confidence="low"), rules=rules)
        return sorted({f.file for f in result.findings})

    # plainfs binds no fscrypt_operations: IS_ENCRYPTED() is false for its inodes
    assert reported(load_rules()) == ["fs/cryptfs/namei.c"]
    assert reported(load_rules([without])) == ["fs/cryptfs/namei.c", "fs/plainfs/namei.c"]
