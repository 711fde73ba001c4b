"""The NOFS checks: findings from the contexts each mask origin is reached in.

For every place a mask is written (an allocation, or a call passing the mask
down), the states at the allocations it reaches decide the finding:

- nofs-recursion: __GFP_FS reclaim with a filesystem handle held and no scope open;
- nofs-inconsistent: __GFP_FS reclaim, unscoped, where NOFS is only believed;
- nofs-redundant: an explicit NOFS mask with a scope open on every known path;
- nofs-needless: an explicit NOFS mask on clean paths from system calls only.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..propagate import state as st
from ..propagate.origins import CLEARED, Origin
from ..propagate.witness import BELIEF, CLEAN, HELD, SCOPE, Context
from .catalog import Check
from .engine import (
    BELIEVED_UNSCOPED,
    HELD_UNSCOPED,
    REACHED,
    Condition,
    Engine,
    Verdict,
)

FAMILY = "fs"

NOFS_RECURSION = Check(
    id="nofs-recursion",
    name="NofsRecursion",
    severity="error",
    short="Allocation may recurse into filesystem reclaim while a transaction handle is held",
    full=(
        "An allocation whose mask carries __GFP_FS and __GFP_DIRECT_RECLAIM (GFP_KERNEL, GFP_USER, "
        "GFP_KERNEL_ACCOUNT, or an allocator that implies them such as vmalloc() or crypto_alloc_shash()) "
        "is reached while a filesystem transaction or journal handle is held and no memalloc_nofs or "
        "memalloc_noio scope is open. Direct reclaim may call back into the filesystem (writeback, inode "
        "eviction, shrinkers), which can wait for the very transaction this task holds: a reclaim "
        "deadlock. The chain shows where the handle was taken and every call down to the allocation."
    ),
    help=(
        "Open a scope where the handle is taken (flags = memalloc_nofs_save(); ... "
        "memalloc_nofs_restore(flags);), as jbd2 and XFS do for every handle, or pass GFP_NOFS at this "
        "allocation. The scope is preferred (Documentation/core-api/gfp_mask-from-fs-io.rst): it also "
        "covers allocations in callees you do not control."
    ),
    example=(
        "trans = btrfs_start_transaction(root, 1);\n"
        "...\n"
        "name = kmalloc(len, GFP_KERNEL);   /* reclaim may need the running transaction */\n"
        "...\n"
        "btrfs_end_transaction(trans);"
    ),
    message="{where} with {mask} may recurse into filesystem reclaim while {held} is held{taken} and no "
            "memalloc_nofs scope is open",
    alloc_note=": __GFP_FS and direct reclaim, no memalloc_nofs scope open",
)

NOFS_INCONSISTENT = Check(
    id="nofs-inconsistent",
    name="NofsInconsistent",
    severity="warning",
    short="GFP_KERNEL allocation below code that allocates with GFP_NOFS",
    full=(
        "A function on the call path allocates with an explicit NOFS (or NOIO) mask, so its author "
        "believes it runs where filesystem reclaim is unsafe, yet a callee allocates with a mask that "
        "allows filesystem reclaim and no memalloc_nofs scope covers it. Either the GFP_NOFS above is "
        "needless, or this allocation can deadlock. Belief follows direct calls only: code reached "
        "through an ops table or a callback is not held to its caller's GFP_NOFS. No path with a held "
        "transaction handle reaches the allocation (that would be nofs-recursion)."
    ),
    help=(
        "Decide which side is right. If the caller really needs NOFS, open a memalloc_nofs_save() scope "
        "around the region instead of passing GFP_NOFS, so callees are covered too. If it does not, "
        "drop its GFP_NOFS. When no path to the GFP_NOFS holds a transaction handle, the finding is "
        "reported at the GFP_NOFS (the side most likely wrong), with the GFP_KERNEL allocation as evidence."
    ),
    example=(
        "evm_inode_init_security()          /* kzalloc(..., GFP_NOFS) */\n"
        "  -> evm_init_hmac()\n"
        "    -> init_desc()                 /* kmalloc(..., GFP_KERNEL) */"
    ),
    message="{where} with {mask} is not covered by a memalloc_nofs scope, but {believer} allocates with NOFS "
            "on this path",
    alloc_note=": __GFP_FS and direct reclaim, no memalloc_nofs scope open",
    believer_message="{mask} in {function}() is likely needless: no filesystem handle is held on any path to it, "
                     "and {where} below allocates with {unsafe} outside any memalloc_nofs scope",
)

NOFS_REDUNDANT = Check(
    id="nofs-redundant",
    name="NofsRedundant",
    severity="note",
    short="GFP_NOFS inside an active memalloc_nofs scope",
    full=(
        "Every known path reaches this explicit NOFS mask with a memalloc_nofs or memalloc_noio scope "
        "already open (opened in this function, a caller, or by the begin API of a transaction such as "
        "jbd2's start_this_handle()). The scope clears __GFP_FS at run time, so GFP_KERNEL would behave "
        "the same here and states the intent more honestly."
    ),
    help="Use GFP_KERNEL; the scope already provides NOFS.",
    example=(
        "flags = memalloc_nofs_save();\n"
        "p = kmalloc(len, GFP_NOFS);        /* GFP_KERNEL is enough */\n"
        "memalloc_nofs_restore(flags);"
    ),
    message="{mask} is redundant: a memalloc_nofs/noio scope is open on every known path to this call",
    alloc_note=" inside the scope",
)

NOFS_NEEDLESS = Check(
    id="nofs-needless",
    name="NofsNeedless",
    severity="note",
    short="GFP_NOFS where no caller holds a transaction, scope or NOFS context",
    full=(
        "This function is reached only from clean entries, and every path to it is clean: no transaction "
        "handle is held, no scope is open and no caller allocates with NOFS. Clean entries are system calls "
        "and the ops the kernel calls in plain process context (mount's get_tree and the fill_super given "
        "to get_tree_bdev(), readdir's iterate_shared, read_iter, open, unlocked_ioctl, read_folio and "
        "readahead, module init and driver probe: rules/entry_contexts.yaml). No path comes from an ops "
        "field that can run from reclaim or writeback (evict_inode, writepages, release_folio, shrinkers), "
        "and every caller is known (no function pointer to it or its callers escapes otherwise). GFP_NOFS "
        "here only weakens reclaim and makes the allocation likelier to fail or loop."
    ),
    help=(
        "Use GFP_KERNEL. If the function takes a lock that reclaim can also take, say so in a comment "
        "and open a memalloc_nofs scope around that region instead."
    ),
    example="SYSCALL_DEFINE1(foo, ...)\n  -> foo_helper()                   /* kmalloc(..., GFP_NOFS) */",
    message="{mask} is needless: every path to {function}() starts at a system call or another clean entry "
            "with no handle held, no scope open and no NOFS caller",
)

CHECKS: tuple[Check, ...] = (NOFS_RECURSION, NOFS_INCONSISTENT, NOFS_REDUNDANT, NOFS_NEEDLESS)


def verdicts(engine: Engine) -> Iterator[Verdict]:
    """Every NOFS verdict, origin by origin."""
    family = engine.rules.family_by_name.get(FAMILY)
    if family is None:
        return
    for origin, entry, states in engine.origins_reached():
        yield from _fs_reclaim(engine, family, origin, entry)
        if engine.classify(origin.mask, family) == CLEARED:
            yield from _explicit_nofs(engine, family, origin, entry, states)


def _fs_reclaim(engine: Engine, family, origin: Origin, entry: int) -> Iterator[Verdict]:
    """__GFP_FS reclaim reached with a handle held (recursion) or NOFS only believed
    (inconsistent), and no scope that clears __GFP_FS open."""
    recursion, inconsistent = engine.unsafe_uses(origin, entry, family)
    if recursion is not None:
        yield Verdict(NOFS_RECURSION, origin, recursion, Context(HELD, FAMILY), Condition(HELD_UNSCOPED, FAMILY))
    elif inconsistent is not None:
        yield Verdict(NOFS_INCONSISTENT, origin, inconsistent, Context(BELIEF, FAMILY),
                      Condition(BELIEVED_UNSCOPED, FAMILY))


def _explicit_nofs(engine: Engine, family, origin: Origin, entry: int, states: int) -> Iterator[Verdict]:
    """An explicit mask that speaks for the fs family (GFP_NOFS; GFP_NOIO too while
    no family of its own claims it): redundant where open scopes already clear
    every bit it clears, on every path; needless when it clears only __GFP_FS on
    clean paths that only start at system calls."""
    if not states or engine.owner(origin.mask) != FAMILY:
        return
    members = list(st.members(states))
    if engine.redundant(origin.mask, list(st.members(engine.where_used(origin, entry, states)))):
        yield Verdict(NOFS_REDUNDANT, origin, None, Context(SCOPE, FAMILY), Condition(REACHED))
    elif engine.clears_only(origin.mask, family) and _needless(engine, origin, entry, members):
        yield Verdict(NOFS_NEEDLESS, origin, None, Context(CLEAN), None)


def _needless(engine: Engine, origin: Origin, entry: int, states: list[int]) -> bool:
    if any(engine.any_held(s) or engine.any_scope(s) for s in states):
        return False
    if any(s != st.CLEAN for s in st.members(entry)):
        return False
    return engine.only_known_callers(origin.fid)
