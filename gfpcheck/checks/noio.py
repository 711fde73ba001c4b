"""The NOIO checks: the io family (rules/noio.yaml) asked the questions the fs
family is asked, for __GFP_IO:

- noio-recursion: an allocation that may issue and wait for I/O in direct
  reclaim while a request queue is frozen or entered, or on the I/O
  submission path, with no memalloc_noio scope open;
- noio-redundant: an explicit GFP_NOIO where a memalloc_noio scope is open
  on every known path.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..propagate import state as st
from ..propagate.witness import HELD, SCOPE, Context
from .catalog import Check
from .engine import HELD_UNSCOPED, REACHED, Condition, Engine, Verdict

FAMILY = "io"

NOIO_RECURSION = Check(
    id="noio-recursion",
    name="NoioRecursion",
    severity="error",
    short="Allocation may wait on block I/O reclaim while a request queue is frozen, entered or submitting I/O",
    full=(
        "An allocation whose mask carries __GFP_IO and __GFP_DIRECT_RECLAIM (GFP_KERNEL, GFP_NOFS, or an "
        "allocator that implies them such as vmalloc()) is reached while a request queue is frozen "
        "(blk_mq_freeze_queue() until blk_mq_unfreeze_queue()), entered (blk_queue_enter() until "
        "blk_queue_exit()), or on the I/O submission path (a driver's blk_mq_ops.queue_rq, dm's "
        "target_type.map, md's make_request, a bio-based driver's submit_bio), and no memalloc_noio scope "
        "is open. Direct reclaim may write back pages and wait for that I/O, which cannot complete while "
        "the queue is frozen or this request is still being submitted: a reclaim deadlock. GFP_NOFS does "
        "not help here; it still allows I/O."
    ),
    help=(
        "Open a memalloc_noio scope around the frozen or entered region (flags = memalloc_noio_save(); ... "
        "memalloc_noio_restore(flags);), as queue_attr_store() does for sysfs stores, or pass GFP_NOIO at "
        "this allocation. On the submission path, allocate with GFP_NOIO or from a mempool."
    ),
    example=(
        "blk_mq_freeze_queue(q);\n"
        "...\n"
        "tags = kcalloc(nr, sizeof(*tags), GFP_KERNEL);   /* reclaim may wait on this queue's I/O */\n"
        "...\n"
        "blk_mq_unfreeze_queue(q);"
    ),
    message="{where} with {mask} may wait on I/O reclaim while {held} is held{taken} and no memalloc_noio scope "
            "is open",
    alloc_note=": __GFP_IO and direct reclaim, no memalloc_noio scope open",
)

NOIO_REDUNDANT = Check(
    id="noio-redundant",
    name="NoioRedundant",
    severity="note",
    short="GFP_NOIO inside an active memalloc_noio scope",
    full=(
        "Every known path reaches this explicit GFP_NOIO mask with a memalloc_noio scope already open "
        "(in this function or a caller). The scope clears __GFP_IO and __GFP_FS at run time, so GFP_KERNEL "
        "would behave the same here and states the intent more honestly."
    ),
    help="Use GFP_KERNEL; the scope already provides NOIO.",
    example=(
        "flags = memalloc_noio_save();\n"
        "p = kmalloc(len, GFP_NOIO);        /* GFP_KERNEL is enough */\n"
        "memalloc_noio_restore(flags);"
    ),
    message="{mask} is redundant: a memalloc_noio scope is open on every known path to this call",
    alloc_note=" inside the scope",
)

CHECKS: tuple[Check, ...] = (NOIO_RECURSION, NOIO_REDUNDANT)


def verdicts(engine: Engine) -> Iterator[Verdict]:
    """Every NOIO verdict, origin by origin."""
    family = engine.rules.family_by_name.get(FAMILY)
    if family is None:
        return
    for origin, entry, states in engine.origins_reached():
        recursion, _believed = engine.unsafe_uses(origin, entry, family)
        if recursion is not None:
            yield Verdict(NOIO_RECURSION, origin, recursion, Context(HELD, FAMILY),
                          Condition(HELD_UNSCOPED, FAMILY))
        used = engine.where_used(origin, entry, states) if states else 0
        if used and engine.owner(origin.mask) == FAMILY and engine.redundant(origin.mask, list(st.members(used))):
            yield Verdict(NOIO_REDUNDANT, origin, None, Context(SCOPE, FAMILY), Condition(REACHED))
