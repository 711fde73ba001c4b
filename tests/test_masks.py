from __future__ import annotations

import pytest

from gfpcheck.masks import UNKNOWN, Mask, MaskSyntaxError


@pytest.fixture
def algebra(rules):
    return rules.algebra


def fs_state(rules, mask: Mask) -> str:
    if mask.is_set(rules.fs_bit):
        return "set"
    if mask.is_clear(rules.fs_bit):
        return "clear"
    return "unknown"


@pytest.mark.parametrize("text, fs", [
    ("GFP_KERNEL", "set"),
    ("GFP_NOFS", "clear"),
    ("GFP_NOIO", "clear"),
    ("GFP_KERNEL & ~__GFP_FS", "clear"),
    ("GFP_KERNEL | __GFP_ZERO", "set"),
    ("(GFP_KERNEL | __GFP_NOWARN) & ~(__GFP_IO | __GFP_FS)", "clear"),
    ("mapping_gfp_constraint(mapping, ~__GFP_FS)", "clear"),
    ("mapping_gfp_mask(mapping)", "unknown"),
    ("nofs ? GFP_NOFS : GFP_KERNEL", "unknown"),
    ("nofs ? GFP_NOFS : GFP_NOIO", "clear"),
    ("(__force gfp_t)GFP_USER", "set"),
    ("gfp", "unknown"),
    ("gfp | __GFP_ZERO", "unknown"),
    ("0", "clear"),
    ("GFP_TRANSHUGE_LIGHT", "set"),
])
def test_masks_are_evaluated_as_bits(rules, algebra, text, fs):
    assert fs_state(rules, algebra.evaluate(text)) == fs


def test_environment_supplies_parameters(rules, algebra):
    nofs = algebra.evaluate("GFP_NOFS")
    mask = algebra.evaluate("gfp | __GFP_ZERO", {"gfp": nofs})
    assert mask.is_clear(rules.fs_bit)
    assert mask.is_set(rules.bits["__GFP_ZERO"])


def test_atomic_has_no_direct_reclaim(rules, algebra):
    assert algebra.evaluate("GFP_ATOMIC").is_clear(rules.reclaim_bit)
    assert algebra.evaluate("GFP_NOWAIT").is_clear(rules.reclaim_bit)


def test_join_keeps_only_agreeing_bits():
    a = Mask(0b111, 0b101)
    b = Mask(0b111, 0b100)
    joined = a.join(b)
    assert joined.known == 0b110 and joined.value == 0b100
    assert UNKNOWN.join(a) == UNKNOWN


def test_unreadable_text_raises_and_try_evaluate_is_unknown(algebra):
    with pytest.raises(MaskSyntaxError):
        algebra.evaluate("GFP_KERNEL |")
    with pytest.raises(MaskSyntaxError):
        algebra.evaluate("sizeof(struct foo) + 1")
    assert algebra.try_evaluate("GFP_KERNEL |") == UNKNOWN


def test_free_names_are_parameters_not_rule_names(algebra):
    assert algebra.free_names("gfp | __GFP_ZERO") == {"gfp"}
    assert algebra.free_names("mapping_gfp_constraint(m, ~__GFP_FS)") == {"m"}
    assert algebra.free_names("GFP_KERNEL") == frozenset()
    assert algebra.is_mask_text("flags | GFP_NOFS")
    assert not algebra.is_mask_text("flags")
