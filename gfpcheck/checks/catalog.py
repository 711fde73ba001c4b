"""Every check gfpcheck reports, declared once.

The text and JSON reports, SARIF's `rules[]`, `gfpcheck explain` and
`gfpcheck rules` all read these declarations.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    id: str  # rule id as printed: nofs-recursion
    name: str  # CamelCase name for SARIF
    severity: str  # error | warning | note
    short: str
    full: str
    help: str  # how to fix
    example: str

    @property
    def type(self) -> str:
        """checkpatch-style type: NOFS_RECURSION."""
        return self.id.upper().replace("-", "_")

    @property
    def indented_example(self) -> str:
        return "\n".join("    " + line for line in self.example.splitlines())


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
        "drop its GFP_NOFS."
    ),
    example=(
        "evm_inode_init_security()          /* kzalloc(..., GFP_NOFS) */\n"
        "  -> evm_init_hmac()\n"
        "    -> init_desc()                 /* kmalloc(..., GFP_KERNEL) */"
    ),
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
)

NOFS_NEEDLESS = Check(
    id="nofs-needless",
    name="NofsNeedless",
    severity="note",
    short="GFP_NOFS where no caller holds a transaction, scope or NOFS context",
    full=(
        "This function is reached only from system calls, and every path to it is clean: no "
        "transaction handle is held, no scope is open and no caller allocates with NOFS; every caller "
        "is known (no function pointer to it or its callers escapes). GFP_NOFS here only weakens "
        "reclaim and makes the allocation likelier to fail or loop."
    ),
    help=(
        "Use GFP_KERNEL. If the function takes a lock that reclaim can also take, say so in a comment "
        "and open a memalloc_nofs scope around that region instead."
    ),
    example="SYSCALL_DEFINE1(foo, ...)\n  -> foo_helper()                   /* kmalloc(..., GFP_NOFS) */",
)

CHECKS: tuple[Check, ...] = (NOFS_RECURSION, NOFS_INCONSISTENT, NOFS_REDUNDANT, NOFS_NEEDLESS)
BY_ID = {check.id: check for check in CHECKS}
SEVERITY_ORDER = {"note": 0, "warning": 1, "error": 2}


def lookup(name: str) -> Check | None:
    """The check a rule id (nofs-recursion) or a checkpatch TYPE (NOFS_RECURSION) names."""
    return BY_ID.get(name) or BY_ID.get(name.lower().replace("_", "-"))
