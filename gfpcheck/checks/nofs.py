"""The NOFS checks: findings from the contexts each mask origin is reached in.

For every place a mask is written (an allocation, or a call passing the mask
down), the states at the allocations it reaches decide the finding:

- nofs-recursion: __GFP_FS reclaim with a handle held and no scope open;
- nofs-inconsistent: __GFP_FS reclaim, unscoped, where NOFS is only believed;
- nofs-redundant: an explicit NOFS mask with a scope open on every known path;
- nofs-needless: an explicit NOFS mask on clean paths from system calls only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ..findings import Finding
from ..link import Program
from ..propagate import state as st
from ..propagate.contexts import Contexts
from ..propagate.effects import Effects
from ..propagate.origins import FS_RECLAIM, NOFS, Origin, Origins, Use
from ..propagate.witness import BELIEF, HELD, SCOPE, Witness
from ..ruleset import Ruleset
from .catalog import NOFS_INCONSISTENT, NOFS_NEEDLESS, NOFS_RECURSION, NOFS_REDUNDANT
from .evidence import Evidence


@dataclass(frozen=True)
class Analysis:
    """Everything the checks read; built by the pipeline."""

    program: Program
    rules: Ruleset
    origins: Origins
    effects: Effects
    contexts: Contexts


def run_checks(analysis: Analysis) -> list[Finding]:
    """All NOFS findings, one per rule and reported call, sorted by place."""
    return sorted(_Checker(analysis).findings(), key=Finding.sort_key)


class _Checker:
    def __init__(self, analysis: Analysis):
        self.a = analysis
        self.program = analysis.program
        self.contexts = analysis.contexts
        self.origins = analysis.origins
        self.witness = Witness(analysis.program, analysis.contexts, analysis.effects, analysis.origins.nofs_sites)
        self.evidence = Evidence(analysis)
        self._only_known_callers: dict[int, bool] = {}

    def findings(self) -> Iterator[Finding]:
        """Decide every finding first, then let the witness search only the part of the
        program that leads to them, then attach each finding's chain."""
        verdicts = list(self._verdicts())
        targets: dict[str, set[int]] = {}
        for _check, origin, _use, kind, _wanted in verdicts:
            targets.setdefault(kind, set()).add(origin.fid)
        self.witness.focus(targets)
        for check, origin, use, kind, wanted in verdicts:
            if kind == "clean":
                chain = self.witness.from_entry(origin.fid)
            else:
                chain = self.witness.find(origin.fid, wanted, kind)
            yield self.evidence.finding(check, origin, use, chain, kind)

    def _verdicts(self) -> Iterator[tuple]:
        """(check, origin, allocation reached, kind of context, entry states wanted)."""
        origins = self.origins
        for fid in sorted(origins.by_function):
            entry = self.contexts.reached.get(fid, 0)
            if not entry:
                continue
            sites = self.contexts.site_states(fid, entry)
            for origin in origins.by_function[fid]:
                yield from self._fs_reclaim(origin, entry)
                if origins.classify(origin.mask) == NOFS:
                    yield from self._explicit_nofs(origin, entry, sites[origin.index])

    # -- __GFP_FS allocations ----------------------------------------------------
    def use_states(self, origin: Origin, use: Use, entry_mask: int) -> int:
        """States at the allocation `use`, for the origin's function entered in `entry_mask`."""
        contexts = self.contexts
        mask = contexts.site_states(origin.fid, entry_mask)[origin.index]
        if use.fid == origin.fid and use.index == origin.index and not use.hops:
            return mask
        for fid, index in use.hops:
            mask = contexts.site_states(fid, mask)[index]
        return contexts.site_states(use.fid, mask)[use.index]

    def _fs_reclaim(self, origin: Origin, entry: int) -> Iterator[tuple]:
        classify = self.origins.classify
        recursion = inconsistent = None
        for use in self.origins.uses(origin):
            if classify(use.mask) != FS_RECLAIM:
                continue
            states = self.use_states(origin, use, entry)
            if recursion is None and any(_held_unscoped(s) for s in st.members(states)):
                recursion = use
            if inconsistent is None and any(_believed_unscoped(s) for s in st.members(states)):
                inconsistent = use
        if recursion is not None:
            yield (NOFS_RECURSION, origin, recursion, HELD,
                   lambda s: any(_held_unscoped(x) for x in st.members(self.use_states(origin, recursion, 1 << s))))
        elif inconsistent is not None:
            yield (NOFS_INCONSISTENT, origin, inconsistent, BELIEF,
                   lambda s: any(_believed_unscoped(x)
                                 for x in st.members(self.use_states(origin, inconsistent, 1 << s))))

    # -- explicit NOFS masks ---------------------------------------------------------
    def _explicit_nofs(self, origin: Origin, entry: int, states: int) -> Iterator[tuple]:
        if not states:
            return
        rules = self.a.rules
        keeps_io = not origin.mask.is_clear(rules.io_bit)
        members = list(st.members(states))
        if (keeps_io and all(st.scoped(s) for s in members)) or noio_everywhere(origin, rules, members):
            yield (NOFS_REDUNDANT, origin, None, SCOPE,
                   lambda s: bool(self.contexts.site_states(origin.fid, 1 << s)[origin.index]))
        elif keeps_io and self._needless(origin, entry, members):
            yield (NOFS_NEEDLESS, origin, None, "clean", None)

    def _needless(self, origin: Origin, entry: int, states: list[int]) -> bool:
        if any(st.held(s) or st.scoped(s) for s in states):
            return False
        if any(s != st.CLEAN for s in st.members(entry)):
            return False
        return self.only_known_callers(origin.fid)

    def only_known_callers(self, fid: int) -> bool:
        """Whether every path to `fid` starts at a system call: among its callers,
        their callers and so on there is an entry point, and no function that
        nothing calls (so is called from somewhere unseen) or whose address escapes."""
        known = self._only_known_callers.get(fid)
        if known is None:
            program = self.program
            pred = program.graph.pred
            entries = program.entries
            taken = program.address_taken
            seen = {fid}
            stack = [fid]
            found_entry = False
            known = True
            while stack and known:
                current = stack.pop()
                if current in entries:
                    found_entry = True
                    continue
                callers = pred[current]
                if not callers or current in taken:
                    known = False
                    break
                for caller in callers:
                    if caller not in seen:
                        seen.add(caller)
                        stack.append(caller)
            known = known and found_entry
            self._only_known_callers[fid] = known
        return known


def noio_everywhere(origin: Origin, rules: Ruleset, states: list[int]) -> bool:
    """A NOIO mask (IO cleared too) is redundant only inside noio scopes."""
    return origin.mask.is_clear(rules.io_bit) and all(st.noio_depth(s) for s in states)


def _held_unscoped(state: int) -> bool:
    return st.held(state) > 0 and not st.scoped(state)


def _believed_unscoped(state: int) -> bool:
    return st.believed(state) and not st.scoped(state)

