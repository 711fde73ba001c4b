"""The allocation context at a program point, as a typed value.

A `State` records, for each context family of the rules (fs: a filesystem
transaction; io: a frozen or entered request queue; ...), how many of its
handles are held and whether an explicit mask clearing its unsafe bits was
written on the path (the author believes the context holds); and, for each
scope kind (nofs, noio), how many scopes are open.  Depths count up to
DEPTH_MAX, so nested saves and restores close correctly.

The analysis handles sets of states by the million, so a `StateSpace` interns
each state as a small integer id and a set of states is a Python int used as
a bitmask over ids: the id space grows with the states that really occur, so
there is no fixed budget of bits, and union and intersection stay single
operations.  Id 0 is the clean state.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

DEPTH_MAX = 3
CLEAN = 0  # id of the clean state in every space


class State(NamedTuple):
    held: tuple[int, ...]  # per family: handles held
    scopes: tuple[int, ...]  # per scope kind: scopes open
    belief: tuple[bool, ...]  # per family: an explicit mask says the context holds
    # The subsystem (fs/btrfs) where the held context was taken, "" when none is
    # held of a family that crosses ops calls: a call through an ops table with
    # many implementations carries the context only into that subsystem's, the
    # ones that can belong to the object.  A family that stays on direct calls
    # (a frozen queue) never crosses one, so where it was taken is not kept.
    home: str = ""
    # Set only while a summary is measured: the path went through the failure
    # branch of a call that takes a handle or opens a scope.
    failed: bool = False
    # What the call that entered the function says of its parameters, as
    # paths.Env facts (`flags == LOOKUP_FOLLOW`, `outbound == 0`): set only on
    # states that hold, scope or believe something, for parameters the callee's
    # conditions test, from constants its caller passed.
    facts: tuple = ()
    # Per scope kind, when open: opened by a begin API (or a handle that implies it)
    # on some of its success paths only, as ext4's journal start opens none without
    # a journal.  Such a scope still covers the handle it comes with; it does not
    # make an explicit NOFS mask redundant.  () when no open scope is unsure.
    unsure: tuple = ()


class Effect(NamedTuple):
    """What a call does to the context: depth changes per family and scope kind,
    and the families whose context it makes believed.  Empty tuples mean no change.
    `home` is the subsystem of the call, for a context it takes (State.home)."""


    held: tuple[int, ...] = ()
    scopes: tuple[int, ...] = ()
    belief: tuple[bool, ...] = ()
    home: str = ""
    unsure: tuple[bool, ...] = ()  # per scope kind it opens: on some success paths only (State.unsure)

    def is_identity(self) -> bool:
        return not any(self.held) and not any(self.scopes) and not any(self.belief)


IDENTITY = Effect()


def members(mask: int) -> Iterator[int]:
    """The state ids in a bitmask, lowest first."""
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


def opened_unsure(before: tuple[int, ...], after: tuple[int, ...], unsure: tuple[bool, ...],
                  opening: tuple[bool, ...]) -> tuple[bool, ...]:
    """State.unsure after scopes go from depths `before` to `after`, `opening` saying
    which kinds the change opens on some paths only: a kind is unsure while every
    scope of it open is; a closed one is gone."""
    out = []
    for k, (b, a) in enumerate(zip(before, after, strict=True)):
        was = bool(unsure and unsure[k])
        if not a:
            out.append(False)
        elif a > b:  # opened now: unsure when the new scope is and no sure one was open
            out.append(bool(opening and opening[k]) and (not b or was))
        else:
            out.append(was)
    return tuple(out) if any(out) else ()


def single(state: int) -> int:
    return 1 << state


def _clamp(depth: int) -> int:
    return 0 if depth < 0 else min(depth, DEPTH_MAX)


class StateSpace:
    """Interned states of one analysis: `families` and `scope_kinds` name the
    positions of State.held/belief and State.scopes."""

    def __init__(self, families: Sequence[str], scope_kinds: Sequence[str], stay_direct: Sequence[str] = (),
                 covers: dict[str, Sequence[str]] | None = None):
        self.families = tuple(families)
        # family -> the families whose held context a callee is not entered with while it is held
        self.covers = tuple((self.families.index(f), frozenset(self.families.index(c) for c in covered
                                                              if c in self.families))
                            for f, covered in (covers or {}).items() if f in self.families)
        # families whose held context does not cross calls through function pointers
        self.stay_direct = frozenset(self.families.index(f) for f in stay_direct)
        self.scope_kinds = tuple(scope_kinds)
        self.family_index = {name: i for i, name in enumerate(self.families)}
        self.scope_index = {name: i for i, name in enumerate(self.scope_kinds)}
        self.states: list[State] = []
        self.ids: dict[State, int] = {}
        self.clean = State((0,) * len(self.families), (0,) * len(self.scope_kinds), (False,) * len(self.families))
        assert self.id(self.clean) == CLEAN
        self._normal: dict[int, int] = {}
        self._unbelieved: dict[int, int] = {}
        self._applied: dict[tuple, int] = {}
        self._homed: dict[tuple[int, str], int] = {}
        self._homeless: list[int] = []
        self._with_facts: dict[tuple[int, tuple], int] = {}
        self.knowing = 0  # bitmask of the states that carry facts
        self._flagged: dict[object, list[int]] = {}  # predicate -> [ids checked so far, bitmask of those that pass]

    # -- ids -------------------------------------------------------------------
    def id(self, state: State) -> int:
        found = self.ids.get(state)
        if found is None:
            found = self.ids[state] = len(self.states)
            self.states.append(state)
            if state.facts:
                self.knowing |= 1 << found
        return found

    def state(self, sid: int) -> State:
        return self.states[sid]

    def make(self, held: dict[str, int] | None = None, scopes: dict[str, int] | None = None,
             belief: Sequence[str] = ()) -> int:
        """The id of a state given by name: `make({"fs": 1}, {"nofs": 1})`."""
        held = held or {}
        scopes = scopes or {}
        return self.id(State(tuple(_clamp(held.get(f, 0)) for f in self.families),
                             tuple(_clamp(scopes.get(k, 0)) for k in self.scope_kinds),
                             tuple(f in belief for f in self.families)))

    # -- questions -------------------------------------------------------------
    def held(self, sid: int, family: int) -> int:
        return self.states[sid].held[family]

    def any_held(self, sid: int) -> bool:
        return any(self.states[sid].held)

    def scope_depth(self, sid: int, kind: str) -> int:
        index = self.scope_index.get(kind)
        return self.states[sid].scopes[index] if index is not None else 0

    def surely_scoped(self, sid: int) -> tuple[int, ...]:
        """Per scope kind, its depth where it is open on every path (State.unsure)."""
        state = self.states[sid]
        if not state.unsure:
            return state.scopes
        return tuple(0 if unsure else d for d, unsure in zip(state.scopes, state.unsure, strict=True))

    def scoped(self, sid: int, kinds: frozenset[int]) -> bool:
        """Whether a scope of any of these kinds (indices) is open."""
        scopes = self.states[sid].scopes
        return any(scopes[k] for k in kinds)

    def any_scope(self, sid: int) -> bool:
        return any(self.states[sid].scopes)

    def believed(self, sid: int, family: int) -> bool:
        return self.states[sid].belief[family]


    def flagged(self, key: object, predicate) -> int:
        """Bitmask of every id `predicate(id)` accepts, kept up to date as the space grows."""
        known = self._flagged.get(key)
        if known is None:
            known = self._flagged[key] = [0, 0]
        while known[0] < len(self.states):
            if predicate(known[0]):
                known[1] |= 1 << known[0]
            known[0] += 1
        return known[1]

    def describe(self, sid: int) -> str:
        state = self.states[sid]
        parts = [f"{family} context held" for family, depth in zip(self.families, state.held, strict=True) if depth]
        parts += [f"{kind} scope" for kind, depth in zip(self.scope_kinds, state.scopes, strict=True) if depth]
        parts += [f"{family} believed" for family, on in zip(self.families, state.belief, strict=True) if on]
        return ", ".join(parts) or "clean"

    # -- sets of states --------------------------------------------------------
    def entry_normal(self, mask: int) -> int:
        """States as a function is entered in them: each depth reduced to held or not,
        scoped or not.  Depth matters inside a function (its own save and restore
        pair) and two callers nesting differently need no separate visit.  A family
        held drops the held contexts of the families it covers."""
        out = self._normal.get(mask)
        if out is None:
            out = 0
            for sid in members(mask):
                state = self.states[sid]
                held = tuple(min(d, 1) for d in state.held)
                home = state.home
                for family, covered in self.covers:
                    if held[family]:
                        held = tuple(0 if f in covered else d for f, d in enumerate(held))
                        if not self._crossing(held):
                            home = ""
                out |= 1 << self.id(State(held, tuple(min(d, 1) for d in state.scopes), state.belief, home,
                                           False, state.facts, state.unsure))
            self._normal[mask] = out
        return out

    def across_ops(self, mask: int) -> int:
        """The states a call through a function pointer (an ops table, a callback)
        enters its target in: no belief (the author of a GFP_NOFS answers for the
        helpers it calls, not for what an ops table hands control to), and no held
        context of a family that stays on direct calls (`stay_direct`)."""
        out = self._unbelieved.get(mask)
        if out is None:
            out = 0
            nobody = (False,) * len(self.families)
            stay = self.stay_direct
            for sid in members(mask):
                state = self.states[sid]._replace(belief=nobody)
                if stay and any(state.held[f] for f in stay):
                    held = tuple(0 if f in stay else d for f, d in enumerate(state.held))
                    state = state._replace(held=held, home=state.home if self._crossing(held) else "")
                out |= 1 << self.id(state)
            self._unbelieved[mask] = out
        return out

    def with_facts(self, mask: int, facts: tuple) -> int:
        """The states with `facts` about the parameters of the function they enter
        (State.facts), in place of any they had; the clean state stays clean."""
        if not facts and not mask & self.knowing:
            return mask
        key = (mask, facts)
        out = self._with_facts.get(key)
        if out is None:
            out = 0
            for sid in members(mask):
                state = self.states[sid]
                if state.facts != facts and (facts == () or any(state.held) or any(state.scopes)
                                             or any(state.belief)):
                    sid = self.id(state._replace(facts=facts))
                out |= 1 << sid
            if len(self._with_facts) > 1 << 16:
                self._with_facts.clear()
            self._with_facts[key] = out
        return out

    def released(self, mask: int, family: int) -> int:
        """The states with no handle of `family` held."""
        out = 0
        for sid in members(mask):
            state = self.states[sid]
            if state.held[family]:
                held = tuple(0 if f == family else d for f, d in enumerate(state.held))
                state = state._replace(held=held, home=state.home if self._crossing(held) else "")
            out |= 1 << self.id(state)
        return out

    def mark_failed(self, mask: int) -> int:
        out = 0
        for sid in members(mask):
            out |= 1 << self.id(self.states[sid]._replace(failed=True))
        return out

    def apply(self, effect: Effect, sid: int) -> int:
        state = self.states[sid]
        held, scopes, belief, unsure = state.held, state.scopes, state.belief, state.unsure
        if effect.held:
            held = tuple(_clamp(d + e) for d, e in zip(held, effect.held, strict=True))
        if effect.scopes:
            after = tuple(_clamp(d + e) for d, e in zip(scopes, effect.scopes, strict=True))
            if unsure or effect.unsure:
                unsure = opened_unsure(scopes, after, unsure, effect.unsure)
            scopes = after
        if effect.belief:
            belief = tuple(b or e for b, e in zip(belief, effect.belief, strict=True))
        home = state.home
        if not self._crossing(held):
            home = ""
        elif not home and effect.home:
            home = effect.home
        return self.id(State(held, scopes, belief, home, state.failed, state.facts, unsure))

    def homed(self, mask: int, home: str) -> int:
        """The states a call through an ops table with many implementations enters one
        in `home` with: those whose context was taken in `home` (without belief), and
        the clean state in place of the others."""
        key = (mask, home)
        out = self._homed.get(key)
        if out is None:
            out = 0
            for sid in members(mask):
                if sid != CLEAN and self.states[sid].home == home:
                    out |= self.across_ops(1 << sid)
                else:
                    out |= 1 << CLEAN
            self._homed[key] = out
        return out

    def _crossing(self, held: tuple[int, ...]) -> bool:
        """Whether a context of a family that crosses ops calls is held."""
        stay = self.stay_direct
        return any(depth for f, depth in enumerate(held) if f not in stay)

    def homeless(self, sid: int) -> int:
        """The id of the state with no home and no facts: the same context, wherever
        it was taken and whatever the call that entered the function passed."""
        table = self._homeless
        while len(table) <= sid:
            state = self.states[len(table)]
            table.append(self.id(state._replace(home="", facts=())) if state.home or state.facts else len(table))
        return table[sid]

    def taken_in(self, sid: int, home: str) -> int:
        """The state with `home` as where its held context was taken, when it holds
        one and no home is known yet."""
        state = self.states[sid]
        if state.home or not self._crossing(state.held):
            return sid
        return self.id(state._replace(home=home))

    def apply_effects(self, effects: tuple[Effect, ...], mask: int) -> int:
        """The states after a call with any of `effects` (alternatives: several
        possible callees), from the states in `mask`."""
        key = (effects, mask)
        out = self._applied.get(key)
        if out is None:
            out = 0
            for sid in members(mask):
                for effect in effects:
                    out |= 1 << self.apply(effect, sid)
            if len(self._applied) > 1 << 16:
                self._applied.clear()
            self._applied[key] = out
        return out

    # -- effects ---------------------------------------------------------------
    def effect(self, held: dict[str, int] | None = None, scopes: dict[str, int] | None = None,
               belief: Sequence[str] = ()) -> Effect:
        """An Effect given by name: `effect({"fs": 1})` takes an fs handle."""
        held = held or {}
        scopes = scopes or {}
        return self.normal_effect(Effect(tuple(held.get(f, 0) for f in self.families) if held else (),
                                         tuple(scopes.get(k, 0) for k in self.scope_kinds) if scopes else (),
                                         tuple(f in belief for f in self.families) if belief else ()))

    def normal_effect(self, effect: Effect) -> Effect:
        """The effect with every part spelled out (or IDENTITY), so equal effects compare equal."""
        if effect.is_identity():
            return IDENTITY
        unsure = effect.unsure if any(effect.unsure) else ()
        return Effect(effect.held or (0,) * len(self.families), effect.scopes or (0,) * len(self.scope_kinds),
                      effect.belief or (False,) * len(self.families), effect.home, unsure)
