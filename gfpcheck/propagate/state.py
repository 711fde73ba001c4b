"""The allocation context at a program point, packed into a small int.

A state records how many transaction handles are held, how many memalloc
nofs and noio scopes are open (each counted up to 3, so nested scopes close
correctly), and whether NOFS is believed (an explicit NOFS mask was written
on the path).  A set of states is an int bitmask over the 256 states.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import NamedTuple

HELD_SHIFT, NOFS_SHIFT, NOIO_SHIFT = 0, 2, 4
BELIEF = 1 << 6
# Set only while a summary is measured: the path went through the failure
# branch of a call that takes a handle or opens a scope.
FAILED = 1 << 7
DEPTH_MAX = 3
CLEAN = 0
SCOPE_BITS = (DEPTH_MAX << NOFS_SHIFT) | (DEPTH_MAX << NOIO_SHIFT)


def held(state: int) -> int:
    return state & DEPTH_MAX


def nofs_depth(state: int) -> int:
    return (state >> NOFS_SHIFT) & DEPTH_MAX


def noio_depth(state: int) -> int:
    return (state >> NOIO_SHIFT) & DEPTH_MAX


def scoped(state: int) -> bool:
    """A nofs or noio scope is open: __GFP_FS is cleared at run time."""
    return bool(state & SCOPE_BITS)


def believed(state: int) -> bool:
    return bool(state & BELIEF)


def make(held_depth: int = 0, nofs: int = 0, noio: int = 0, belief: bool = False) -> int:
    clamp = _clamp
    return (clamp(held_depth) << HELD_SHIFT) | (clamp(nofs) << NOFS_SHIFT) | (clamp(noio) << NOIO_SHIFT) | \
        (BELIEF if belief else 0)


def _clamp(depth: int) -> int:
    return 0 if depth < 0 else min(depth, DEPTH_MAX)


def members(mask: int) -> Iterator[int]:
    """The states in a bitmask, lowest first."""
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


def single(state: int) -> int:
    return 1 << state


@lru_cache(maxsize=1 << 12)
def entry_normal(mask: int) -> int:
    """States as a function is entered in them: each depth reduced to held or not,
    scoped or not.  Depth matters inside a function (its own save and restore
    pair) and two callers nesting differently need no separate visit."""
    out = 0
    for state in members(mask):
        out |= 1 << make(min(held(state), 1), min(nofs_depth(state), 1), min(noio_depth(state), 1),
                         believed(state))
    return out


@lru_cache(maxsize=1 << 12)
def without_belief(mask: int) -> int:
    out = 0
    for state in members(mask):
        out |= 1 << (state & ~BELIEF)
    return out


def failed(state: int) -> bool:
    return bool(state & FAILED)


def mark_failed(mask: int) -> int:
    out = 0
    for state in members(mask):
        out |= 1 << (state | FAILED)
    return out


class Effect(NamedTuple):
    """What a call does to the context: depth changes, and whether it makes NOFS believed."""

    held: int = 0
    nofs: int = 0
    noio: int = 0
    belief: bool = False

    def apply(self, state: int) -> int:
        return make(held(state) + self.held, nofs_depth(state) + self.nofs, noio_depth(state) + self.noio,
                    believed(state) or self.belief) | (state & FAILED)


IDENTITY = Effect()


@lru_cache(maxsize=1 << 16)
def apply_effects(effects: tuple[Effect, ...], mask: int) -> int:
    """The states after a call with any of `effects` (alternatives: several
    possible callees), from the states in `mask`."""
    out = 0
    for state in members(mask):
        for effect in effects:
            out |= 1 << effect.apply(state)
    return out


def describe(state: int) -> str:
    parts = []
    if held(state):
        parts.append("handle held")
    if nofs_depth(state):
        parts.append("nofs scope")
    if noio_depth(state):
        parts.append("noio scope")
    if believed(state):
        parts.append("NOFS believed")
    return ", ".join(parts) or "clean"
