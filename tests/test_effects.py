"""Function summaries (propagate/effects.py)."""

from __future__ import annotations

from gfpcheck.propagate import state as st

from .helpers import analyse

JBD2_LIKE = """
static int start_this_handle(journal_t *journal, handle_t *handle)
{
	if (is_journal_aborted(journal))
		return -EROFS;
	handle->saved_alloc_context = memalloc_nofs_save();
	return 0;
}
handle_t *jbd2__journal_start(journal_t *journal, int nblocks)
{
	handle_t *handle = new_handle(nblocks);
	int err;

	if (!handle)
		return ERR_PTR(-ENOMEM);
	err = start_this_handle(journal, handle);
	if (err < 0) {
		jbd2_free_handle(handle);
		return ERR_PTR(err);
	}
	return handle;
}
static void stop_this_handle(handle_t *handle)
{
	memalloc_nofs_restore(handle->saved_alloc_context);
}
int jbd2_journal_stop(handle_t *handle)
{
	int err = 0;

	stop_this_handle(handle);
	jbd2_free_handle(handle);
	return err;
}
"""


def test_scope_opened_in_one_function_and_closed_in_another(rules):
    a = analyse(rules, {"fs/jbd2/transaction.c": JBD2_LIKE})
    assert a.summary("start_this_handle") == a.effect(scopes={"nofs": 1})
    assert a.summary("jbd2__journal_start") == a.effect(scopes={"nofs": 1})
    assert a.summary("stop_this_handle") == a.effect(scopes={"nofs": -1})
    # stop_this_handle() is an end API
    assert a.summary("jbd2_journal_stop") == a.effect(held={"fs": -1}, scopes={"nofs": -1})
    assert a.effects.implied["handle_t"] == a.effect(scopes={"nofs": 1})


def test_balanced_and_wrapper_functions(rules):
    a = analyse(rules, {"a.c": """
int balanced(void)
{
	unsigned int flags = memalloc_nofs_save();
	int ret = work();

	if (ret) {
		memalloc_nofs_restore(flags);
		return ret;
	}
	memalloc_nofs_restore(flags);
	return 0;
}
struct btrfs_trans_handle *start_wrapper(struct btrfs_root *root)
{
	struct btrfs_trans_handle *trans = btrfs_start_transaction(root, 1);

	if (IS_ERR(trans))
		return trans;
	prepare(trans);
	return trans;
}
int leaky_error_path(struct btrfs_root *root)
{
	struct btrfs_trans_handle *trans = btrfs_start_transaction(root, 1);
	int ret;

	if (IS_ERR(trans))
		return PTR_ERR(trans);
	ret = work();
	if (ret)
		return -EIO;
	btrfs_end_transaction(trans);
	return 0;
}
int correlated(struct btrfs_root *root, bool start)
{
	struct btrfs_trans_handle *trans = NULL;
	int ret;

	if (start) {
		trans = btrfs_start_transaction(root, 1);
		if (IS_ERR(trans))
			return PTR_ERR(trans);
	}
	ret = work();
	if (start)
		btrfs_end_transaction(trans);
	return ret;
}
"""})
    assert a.summary("balanced") == st.IDENTITY
    assert a.summary("start_wrapper") == a.effect(held={"fs": 1})
    assert a.summary("leaky_error_path") == st.IDENTITY
    assert a.summary("correlated") == st.IDENTITY


def test_handle_parameter_implies_the_scope_its_begin_api_opens(rules):
    a = analyse(rules, {"fs/jbd2/transaction.c": JBD2_LIKE, "fs/ext4/inode.c": """
int ext4_step(handle_t *handle, struct inode *inode)
{
	return work(inode);
}
int btrfs_step(struct btrfs_trans_handle *trans)
{
	return work(trans);
}
"""})
    (ext4,) = a.states_at("ext4_step", "work")
    assert a.held(ext4) == 1 and a.depth(ext4, "nofs") == 1
    (btrfs,) = a.states_at("btrfs_step", "work")
    assert a.held(btrfs) == 1 and a.depth(btrfs, "nofs") == 0
