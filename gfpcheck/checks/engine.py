"""What the checks read, and the questions they ask of it.

The pipeline builds an `Analysis` (program, rules, origins, effects,
contexts); checks modules turn it into `Verdict`s through an `Engine`, which
answers in the kernel's terms — which states reach this allocation, is a
family's handle held there with no scope that neutralises it, is the
family's context only believed — so no check reads how a state is stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

from ..facts import CALL_ARGS, CALL_NAME
from ..link import T_SCOPE, Program
from ..propagate import state as st
from ..propagate.contexts import Contexts
from ..propagate.effects import Effects
from ..propagate.flow import run_flow
from ..propagate.flowtree import return_places
from ..propagate.origins import CLEARED, UNSAFE, Origin, Origins, Use
from ..propagate.witness import Context
from ..ruleset import CLEAN_ENTRY_KEY, Family, Ruleset
from .catalog import Check


@dataclass(frozen=True)
class Analysis:
    """Everything the checks read; built by the pipeline."""

    program: Program
    rules: Ruleset
    origins: Origins
    effects: Effects
    contexts: Contexts
    units: tuple[tuple[str, str], ...] = ()  # (.c file, the Kbuild object it is linked into); none without a config


class Condition(NamedTuple):
    """What must hold at the reported allocation, for a state to prove a verdict:
    HELD_UNSCOPED or BELIEVED_UNSCOPED of `family`, or REACHED (any state)."""

    test: str
    family: str = ""


HELD_UNSCOPED = "held-unscoped"
RECLAIM_CALLS = 2  # how far below a reclaim or writeback ops field from_reclaim() looks
BELIEVED_UNSCOPED = "believed-unscoped"
REACHED = "reached"


class Verdict(NamedTuple):
    """A finding decided, before its evidence is written: the check, where the mask
    is written (`origin`), the allocation it reaches (`use`, None for the origin
    itself), the kind of context its chain must prove, and what must hold at the
    allocation (None: a clean chain from a system call is enough, or the check
    proves the finding inside one function)."""

    check: Check
    origin: Origin
    use: Use | None
    context: Context
    condition: Condition | None
    at: tuple[int, int] | None = None  # (line, column) to report at, when not the origin's call


class Engine:
    """The analysis, asked as the checks ask it."""

    def __init__(self, analysis: Analysis):
        self.analysis = analysis
        self.program = analysis.program
        self.rules = analysis.rules
        self.origins = analysis.origins
        self.contexts = analysis.contexts
        self.space = analysis.effects.space
        self._neutralisers = {
            family.name: frozenset(self.space.scope_index[k] for k in family.scopes if k in self.space.scope_index)
            for family in self.rules.families}
        self._known: bytearray | None = None
        self._clean: frozenset[int] | None = None
        self._reclaim: frozenset[int] | None = None
        self._from_reclaim: bytearray | None = None
        rules = self.rules
        self._scope_bits = [rules.bits_of(rules.scope_clears.get(kind, ())) for kind in self.space.scope_kinds]
        self._relevant = 0  # every bit some scope clears: the bits masks are compared on
        for bits in self._scope_bits:
            self._relevant |= bits
        self._scope_cleared: dict[int, int] = {}

    # -- where masks are written, and the states there -------------------------------
    def origins_reached(self) -> Iterator[tuple[Origin, int, int]]:
        """(origin, entry states of its function, states at its call) for every origin
        in a function some path reaches, in a stable order."""
        origins = self.origins
        for fid in sorted(origins.by_function):
            entry = self.contexts.reached.get(fid, 0)
            if not entry:
                continue
            sites = self.contexts.site_states(fid, entry)
            for origin in origins.by_function[fid]:
                yield origin, entry, sites[origin.index]

    def uses(self, origin: Origin) -> Iterator[Use]:
        return self.origins.uses(origin)

    def classify(self, mask, family: Family) -> str:
        return self.origins.classify(mask, family)

    def use_states(self, origin: Origin, use: Use | None, entry_mask: int) -> int:
        """States at the allocation `use` (the origin's own call when None), for the
        origin's function entered in `entry_mask`."""
        contexts = self.contexts
        mask = contexts.site_states(origin.fid, entry_mask)[origin.index]
        if use is None or (use.fid == origin.fid and use.index == origin.index and not use.hops):
            return mask
        caller, call = origin.fid, origin.index
        for fid, index in use.hops:
            mask = contexts.site_states(fid, contexts.entering(caller, call, fid, mask))[index]
            caller, call = fid, index
        return contexts.site_states(use.fid, contexts.entering(caller, call, use.fid, mask))[use.index]

    def where_used(self, origin: Origin, entry: int, states: int) -> int:
        """States where the origin's mask is used: at its own call for an allocation;
        for a mask passed down, at the allocations it reaches (jbd2__journal_restart()
        closes its scope before start_this_handle() uses the GFP_NOFS it was given),
        or at the call when it reaches none."""
        if origin.allocator:
            return states
        out = 0
        for use in self.uses(origin):
            out |= self.use_states(origin, use, entry)
        return out or states

    def unsafe_uses(self, origin: Origin, entry: int, family: Family) -> tuple[Use | None, Use | None]:
        """The first allocation the origin's mask reaches that is unsafe in the family
        (its bits with direct reclaim) with the family's context held and no scope
        neutralising it open; and the first where the context is only believed."""
        held = believed = None
        for use in self.uses(origin):
            if self.classify(use.mask, family) != UNSAFE:
                continue
            states = list(st.members(self.use_states(origin, use, entry)))
            if held is None and any(self.held_unscoped(s, family.name) for s in states):
                held = use
            if believed is None and any(self.believed_unscoped(s, family.name) for s in states):
                believed = use
            if held is not None and believed is not None:
                break
        return held, believed

    # -- questions about states -----------------------------------------------------
    def scoped(self, sid: int, family: str) -> bool:
        """A scope that clears the family's bits is open."""
        return self.space.scoped(sid, self._neutralisers[family])

    def held_unscoped(self, sid: int, family: str) -> bool:
        return self.space.held(sid, self.space.family_index[family]) > 0 and not self.scoped(sid, family)

    def believed_unscoped(self, sid: int, family: str) -> bool:
        return self.space.believed(sid, self.space.family_index[family]) and not self.scoped(sid, family)

    def any_held(self, sid: int) -> bool:
        return self.space.any_held(sid)

    def any_scope(self, sid: int) -> bool:
        return self.space.any_scope(sid)

    def scope_open(self, sid: int, kind: str) -> bool:
        return self.space.scope_depth(sid, kind) > 0

    def accepts(self, verdict: Verdict, entry_state: int) -> bool:
        """Whether the origin's function, entered in `entry_state`, proves the verdict."""
        condition = verdict.condition
        states = self.use_states(verdict.origin, verdict.use, 1 << entry_state)
        if condition is None or condition.test == REACHED:
            return bool(states)
        test = self.held_unscoped if condition.test == HELD_UNSCOPED else self.believed_unscoped
        return any(test(s, condition.family) for s in st.members(states))

    # -- explicit masks and scopes -----------------------------------------------------
    def cleared(self, mask) -> int:
        """The bits a scope could clear that the mask clears itself."""
        return self._relevant & mask.known & ~mask.value

    def scope_cleared(self, sid: int) -> int:
        """The bits the scopes open in a state clear on every path (State.unsure)."""
        found = self._scope_cleared.get(sid)
        if found is None:
            found = 0
            for bits, depth in zip(self._scope_bits, self.space.surely_scoped(sid), strict=True):
                if depth:
                    found |= bits
            self._scope_cleared[sid] = found
        return found

    def redundant(self, mask, states: list[int]) -> bool:
        """Whether, in every state, open scopes already clear every bit the mask clears."""
        cleared = self.cleared(mask)
        return bool(cleared) and bool(states) and all(self.scope_cleared(s) & cleared == cleared for s in states)

    def owner(self, mask) -> str | None:
        """The family an explicit mask speaks for: among the families whose bits it
        clears, the one the fewest scope kinds neutralise (GFP_NOIO: io, not fs)."""
        cleared = [f for f in self.rules.families if self.classify(mask, f) == CLEARED]
        if not cleared:
            return None
        return min(cleared, key=lambda f: len(f.scopes)).name

    def clears_only(self, mask, family: Family) -> bool:
        """Whether the mask clears the family's bits and no other bit a scope could clear."""
        return self.cleared(mask) == self.rules.unsafe_bits(family) & self._relevant

    # -- returns ---------------------------------------------------------------------
    def own_scope_states(self, fid: int) -> list[tuple[int, int, int]]:
        """(states, line, column) at each return of the function, run from the clean
        state counting the scopes it opens and closes itself, and the closes its
        callees make (a helper that restores); scopes a callee leaves open for it (a
        transaction's) are not its own and are not counted.  Falling off the end of
        the body counts as a return at its closing line."""
        effects = self.analysis.effects
        space = self.space
        function = self.program.functions[fid]
        tree = effects.tree(fid)

        def own(target, found: tuple[st.Effect, ...]) -> tuple[st.Effect, ...] | None:
            """A scope API's effect as it is; of any other call, only the scopes it closes."""
            if target.kind == T_SCOPE:
                return found
            return tuple({space.normal_effect(st.Effect(scopes=tuple(min(d, 0) for d in e.scopes)))
                          for e in found if e.scopes}) or None

        transfer = effects.transfer(fid, summary=True, only=own)
        result = run_flow(tree, self.program.calls(fid), st.single(st.CLEAN), transfer, effects.failure(fid),
                          tracked=effects.tracked(fid))
        places = return_places(tree)
        out = [(mask, *places[number]) for number, mask in sorted(result.returns.items()) if mask]
        if result.end:
            out.append((result.end, function.end_line, 1))
        return out

    # -- callers ---------------------------------------------------------------------
    def clean_entries(self) -> frozenset[int]:
        """Functions that start in a clean context: system calls, implementations of
        the rules' clean ops fields, functions handed to clean callbacks or named by
        clean macros (rules/entry_contexts.yaml)."""
        if self._clean is None:
            program = self.program
            resolver = program.resolver
            contexts = self.rules.entry_contexts
            out = set(program.entries)
            out.update(self._implementations(contexts.clean))
            out.update(resolver.by_key.get(CLEAN_ENTRY_KEY, ()))
            for api, arg in contexts.clean_callbacks:
                for caller in self._callers_of(api):
                    for call in program.calls(caller):
                        args = call[CALL_ARGS]
                        if call[CALL_NAME] == api and arg < len(args) and args[arg]:
                            out.update(resolver.function_ids(args[arg], program.file_of[caller]))
            self._clean = frozenset(out)
        return self._clean

    def _callers_of(self, name: str) -> list[int]:
        """Functions that call `name`: from the call graph when the tree defines it,
        else from every function's calls (an API declared in a header only)."""
        program = self.program
        resolver = program.resolver
        defined = resolver.functions_by_name.get(name, ()) + resolver.macros_by_name.get(name, ())
        if defined:
            return sorted({caller for fid in defined for caller in program.graph.pred[fid]})
        return [fid for fid, function in enumerate(program.functions)
                if name in function.callees or (fid in program.detailed and any(
                    call[CALL_NAME] == name for call in program.calls(fid)))]

    def reclaim_entries(self) -> frozenset[int]:
        """Implementations of ops fields that can run from reclaim or writeback."""
        if self._reclaim is None:
            self._reclaim = frozenset(self._implementations(self.rules.entry_contexts.reclaim))
        return self._reclaim

    def _implementations(self, fields) -> set[int]:
        resolver = self.program.resolver
        out: set[int] = set()
        for struct, member in fields:
            out.update(resolver.by_member.get((resolver.types.canonical(struct), member), ()))
        return out

    def from_reclaim(self, fid: int) -> bool:
        """Whether the function implements an ops field that can run from reclaim or
        writeback (rules: entry_contexts.reclaim), or is called from one within
        RECLAIM_CALLS calls: the code whose own masks serve writeback.  Further down,
        nearly the whole kernel is reachable from evict_inode, and says nothing."""
        if self._from_reclaim is None:
            succ = self.program.graph.succ
            reached = bytearray(len(self.program.functions))
            level = sorted(self.reclaim_entries())
            for start in level:
                reached[start] = 1
            for _ in range(RECLAIM_CALLS):
                following = []
                for caller in level:
                    for callee in succ[caller]:
                        if not reached[callee]:
                            reached[callee] = 1
                            following.append(callee)
                level = following
            self._from_reclaim = reached
        return bool(self._from_reclaim[fid])

    def only_known_callers(self, fid: int) -> bool:
        """Whether every path to `fid` starts at a clean entry (a system call, a clean
        ops field, ...): among its callers, their callers and so on there is one, and
        no function that nothing calls (so is called from somewhere unseen), whose
        address escapes, or that can run from reclaim or writeback."""
        if self._known is None:
            self._known = self._known_callers()
        return bool(self._known[fid])

    def _known_callers(self) -> bytearray:
        """only_known_callers() of every function at once: a function is known when
        some clean entry reaches it and no unknown start does.  An unknown start (a
        reclaim entry, or a function that is no entry and is uncalled or has its
        address taken) taints its callees down to the next clean entry."""
        program = self.program
        succ, pred = program.graph.succ, program.graph.pred
        entries, reclaim, taken = self.clean_entries(), self.reclaim_entries(), program.address_taken
        count = len(program.functions)
        tainted = bytearray(count)
        stack = [fid for fid in range(count)
                 if fid in reclaim or (fid not in entries and (not pred[fid] or fid in taken))]
        for fid in stack:
            tainted[fid] = 1
        while stack:
            for callee in succ[stack.pop()]:
                if not tainted[callee] and callee not in entries:
                    tainted[callee] = 1
                    stack.append(callee)
        known = bytearray(count)
        stack = [fid for fid in entries if not tainted[fid]]
        for fid in stack:
            known[fid] = 1
        while stack:
            for callee in succ[stack.pop()]:
                if not known[callee] and not tainted[callee]:
                    known[callee] = 1
                    stack.append(callee)
        return known
