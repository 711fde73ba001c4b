"""Flow-sensitive states inside one function (propagate/flow.py, flowtree.py)."""

from __future__ import annotations

import pytest

from gfpcheck.propagate import state as st
from gfpcheck.propagate.flowtree import (
    CALL_RESULT_TESTED,
    TEST_ERR,
    TEST_NOT,
    TEST_NOT_ERR,
    TEST_TRUTHY,
    parse_test,
)

from .helpers import analyse


def nofs(a, states: list[st.State]) -> set[int]:
    return {a.depth(s, "nofs") for s in states}


def held(a, states: list[st.State]) -> set[int]:
    return {a.held(s, "fs") for s in states}


def test_scope_is_closed_after_restore_and_open_between(rules):
    a = analyse(rules, {"a.c": """
void f(void)
{
	unsigned int flags;
	before();
	flags = memalloc_nofs_save();
	inside();
	memalloc_nofs_restore(flags);
	after();
}
"""})
    assert nofs(a, a.states_at("f", "before")) == {0}
    assert nofs(a, a.states_at("f", "inside")) == {1}
    assert nofs(a, a.states_at("f", "after")) == {0}


def test_early_return_that_restores_keeps_the_fall_through_scoped(rules):
    a = analyse(rules, {"a.c": """
int f(void)
{
	unsigned int flags = memalloc_nofs_save();
	if (check()) {
		memalloc_nofs_restore(flags);
		return -EINVAL;
	}
	work();
	memalloc_nofs_restore(flags);
	return 0;
}
"""})
    assert nofs(a, a.states_at("f", "work")) == {1}


def test_goto_carries_its_state_to_the_label(rules):
    a = analyse(rules, {"a.c": """
int f(void)
{
	unsigned int flags = memalloc_nofs_save();
	if (check())
		goto out;
	memalloc_nofs_restore(flags);
	return 0;
out:
	cleanup();
	memalloc_nofs_restore(flags);
	return -EIO;
}
"""})
    assert nofs(a, a.states_at("f", "cleanup")) == {1}


def test_failed_begin_holds_nothing_on_its_error_branch(rules):
    a = analyse(rules, {"a.c": """
int f(struct btrfs_root *root)
{
	struct btrfs_trans_handle *trans = btrfs_start_transaction(root, 1);
	if (IS_ERR(trans)) {
		report();
		return PTR_ERR(trans);
	}
	work(trans);
	btrfs_end_transaction(trans);
	after();
	return 0;
}
int g(struct xfs_mount *mp)
{
	struct xfs_trans *tp;
	int error = xfs_trans_alloc(mp, NULL, 0, 0, 0, &tp);
	if (error) {
		failed();
		return error;
	}
	xfs_trans_cancel(tp);
	return 0;
}
"""})
    assert held(a, a.states_at("f", "report")) == {0}
    assert held(a, a.states_at("f", "work")) == {1}
    assert held(a, a.states_at("f", "after")) == {0}
    assert held(a, a.states_at("g", "failed")) == {0}


def test_loops_and_switch_cases(rules):
    a = analyse(rules, {"a.c": """
void f(int n, int mode)
{
	unsigned int flags = 0;
	while (n--) {
		in_loop();
		flags = memalloc_nofs_save();
	}
	after_loop();
	switch (mode) {
	case 0:
		memalloc_nofs_restore(flags);
		break;
	case 1:
		case_one();
		break;
	}
	after_switch();
}
"""})
    # each round may leave one more scope open; zero rounds leave none
    assert {0, 1} <= nofs(a, a.states_at("f", "in_loop"))
    assert {0, 1} <= nofs(a, a.states_at("f", "after_loop"))
    assert {0, 1} <= nofs(a, a.states_at("f", "case_one"))
    assert 0 in nofs(a, a.states_at("f", "after_switch"))


@pytest.mark.parametrize("condition, expected", [
    ("(IS_ERR(trans))", (TEST_ERR, "trans")),
    ("(unlikely(IS_ERR(trans)))", (TEST_ERR, "trans")),
    ("(!IS_ERR(trans))", (TEST_NOT_ERR, "trans")),
    ("(!handle)", (TEST_NOT, "handle")),
    ("(handle == NULL)", (TEST_NOT, "handle")),
    ("(error)", (TEST_TRUTHY, "error")),
    ("(err < 0)", (TEST_TRUTHY, "err")),
    ("((error == -EDQUOT || error == -ENOSPC) && !retried)", (TEST_ERR, "error")),
    ("(xfs_trans_alloc(mp, resv, 0, 0, 0, &tp))", (TEST_TRUTHY, CALL_RESULT_TESTED)),
    ("(a && b)", None),
    ("(x > 3)", None),
])
def test_condition_tests(rules, condition, expected):
    assert parse_test(condition, rules) == expected
