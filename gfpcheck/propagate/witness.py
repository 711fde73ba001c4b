"""The shortest call chain that proves a finding.

For each kind of context (a family's handle held, its context believed, a
scope that neutralises it open) one breadth-first search runs forward from
the functions that start it (a handle parameter, an ops entry or a begin
call, an explicit mask clearing the family's bits, a scope opened) over
the states functions are actually entered in.  Each (function, state) keeps
the call it was first reached by, so the chain behind any finding is read
back from there: a shortest one from the nearest place the context starts.
Calls resolved by member name alone are used only where nothing else
reaches.  Functions, states and calls are visited in a fixed order, so ties
always break the same way.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import NamedTuple

from ..link import NAME_ONLY, T_BEGIN, T_INDIRECT, T_SCOPE, BindingSite, Program
from . import state as st
from .contexts import Contexts
from .effects import Effects

HELD, BELIEF, SCOPE, CLEAN = "held", "belief", "scope", "clean"


class Context(NamedTuple):
    """A kind of context a chain proves: `family`'s handle held (HELD), its context
    believed (BELIEF), a scope that neutralises it open (SCOPE), or a clean start
    at a system call (CLEAN, no family)."""

    what: str
    family: str = ""


class Link(NamedTuple):
    """One call on a chain: `caller` entered in `state` calls the next function at `index`."""

    caller: int
    state: int
    index: int
    binding: BindingSite | None


class Chain(NamedTuple):
    source: int  # function where the context starts
    source_state: int  # state it was entered in
    links: tuple[Link, ...]  # calls from the source down to the target function
    name_only: bool  # some call was resolved by member name alone


Node = tuple[int, int]  # (function, entry state)


class Witness:
    def __init__(self, program: Program, contexts: Contexts, effects: Effects,
                 belief_sites: dict[int, dict[int, frozenset[str]]]):
        self.program = program
        self.contexts = contexts
        self.effects = effects
        self.space = effects.space
        self.belief_sites = belief_sites
        self._forests: dict[Context, dict[Node, tuple[Node, Link] | None]] = {}
        self._entry_parents: dict[int, tuple[int, Link] | None] | None = None
        self._relevant: dict[Context, set[int]] = {}
        self._clean_targets: set[int] = set()  # functions a clean chain is asked for
        self._asked: dict[Context, dict[int, set[int]]] = {}
        self._exact: dict[tuple[Context, str], dict] = {}
        self._exact_targets: dict[Context, set[int]] = {}

    def flag(self, kind: Context) -> Callable[[int], bool]:
        """Whether a state has this kind of context."""
        space = self.space
        family = space.family_index[kind.family]
        if kind.what == HELD:
            return lambda sid: space.held(sid, family) > 0
        if kind.what == BELIEF:
            return lambda sid: space.believed(sid, family)
        kinds = frozenset(space.scope_index[k] for k in self.effects.rules.family_by_name[kind.family].scopes
                          if k in space.scope_index)
        return lambda sid: space.scoped(sid, kinds)

    def _flagged(self, kind: Context) -> int:
        return self.space.flagged(kind, self.flag(kind))

    def focus(self, targets: dict[Context, set[int]]) -> None:
        """Search only toward these functions (per kind of context): the forest then
        grows through their callers that carry that context, and no further."""
        for kind, fids in targets.items():
            if kind.what == CLEAN:
                self._clean_targets = set(fids)
            else:
                self._relevant[kind] = self._callers(kind, fids)

    def ask(self, kind: Context, fid: int, states: int) -> None:
        """Tell the shared forest of `kind` that a chain into `fid` in one of `states`
        (a bitmask) will be asked for: once every chain asked for is found, it stops
        growing at the end of that depth (see _grow)."""
        self._asked.setdefault(kind, {}).setdefault(fid, set()).add(states)

    def _homed(self, home: str | None) -> int:
        """The states whose context was taken in `home` or that hold none crossing
        ops calls (-1, every state, for None)."""
        if home is None:
            return -1
        states = self.space.states
        return self.space.flagged(("home", home), lambda sid: states[sid].home in ("", home))

    def _callers(self, kind: Context, fids: set[int], home: str | None = None) -> set[int]:
        """The functions and their callers, transitively through callers entered with
        this kind of context (taken in `home`, when given)."""
        pred = self.program.graph.pred
        reached = self.contexts.reached
        flagged = self._flagged(kind) & self._homed(home)
        relevant = set(fids)
        stack = [fid for fid in fids if reached.get(fid, 0) & flagged]
        while stack:
            fid = stack.pop()
            for caller in pred[fid]:
                if caller not in relevant:
                    relevant.add(caller)
                    if reached.get(caller, 0) & flagged:
                        stack.append(caller)
        return relevant

    def find(self, fid: int, wanted: Callable[[int], bool], kind: Context, exact: bool = False) -> Chain | None:
        """A shortest chain into `fid`, entered in a state `wanted` accepts, from the
        nearest function where the `kind` of context starts.

        The shared forest grows each context once, from the subsystem that reaches
        it first; a chain through an ops call that only the context of another
        subsystem crosses is found in the `exact` forest of that subsystem, grown
        toward the functions given to want_exact()."""
        flag = self.flag(kind)
        states = [s for s in st.members(self.contexts.reached.get(fid, 0)) if wanted(s)]
        for state in states:
            if not flag(state):
                return Chain(fid, state, (), False)  # the context starts in fid itself
        if exact:
            homes = sorted({self.space.state(s).home for s in states})
            found = [self._best(self._exact_forest(kind, home), fid, states, lambda s: s) for home in homes]
            best = min((b for b in found if b is not None), default=None, key=lambda b: b[0])
        else:
            best = self._best(self._forest(kind), fid, states, self.space.homeless)
        if best is None:
            return None
        _key, _state, links = best
        first = links[0]
        return Chain(first.caller, first.state, tuple(links), any(self._name_only(link) for link in links))

    def want_exact(self, kind: Context, fids: set[int]) -> None:
        """Grow the exact forests of this kind toward these functions, when asked for."""
        self._exact_targets.setdefault(kind, set()).update(fids)
        for key in [key for key in self._exact if key[0] == kind]:
            del self._exact[key]

    def _exact_forest(self, kind: Context, home: str) -> dict:
        """The forest of chains whose held context was taken in `home` (a subsystem),
        over states with their home: only those that reach ops calls with many
        implementations into `home`'s."""
        forest = self._exact.get((kind, home))
        if forest is None:
            forest = self._exact[(kind, home)] = self._grow(kind, home=home,
                                                            toward=self._exact_targets.get(kind, set()))
        return forest

    def _best(self, forest: dict, fid: int, states: list[int], key_of: Callable[[int], int]) -> tuple | None:
        best: tuple | None = None
        for state in states:
            node = (fid, key_of(state))
            if node in forest:
                links = self._links(forest, node)
                key = (sum(1 for link in links if self._name_only(link)), len(links), state)
                if best is None or key < best[0]:
                    best = (key, state, links)
        return best

    def from_entry(self, fid: int, entries: Callable[[], frozenset[int]]) -> Chain | None:
        """A shortest chain from a clean entry (`entries()`: system calls and the like)
        down to `fid`, in the clean state."""
        if self._entry_parents is None:
            self._entry_parents = self._grow_from_entries(entries())
        parents = self._entry_parents
        if fid not in parents:
            return None
        links, entry = self._walk_back(parents, fid, lambda node: node)
        return Chain(entry, st.CLEAN, tuple(links), any(self._name_only(link) for link in links))

    def _grow_from_entries(self, entries: frozenset[int]) -> dict[int, tuple[int, Link] | None]:
        """Breadth-first from the clean entries toward the functions focus() named for
        a clean chain, until every one is reached (or nothing more is)."""
        parents: dict[int, tuple[int, Link] | None] = {}
        needed = set(self._clean_targets) or None
        toward = self._toward_entries(needed, entries) if needed else None
        queue: deque[int] = deque()
        for fid in sorted(entries):
            parents[fid] = None
            if toward is None or fid in toward:
                queue.append(fid)
        clean = st.single(st.CLEAN)
        while queue:
            caller = queue.popleft()
            for callee, states, index, binding in self.contexts.successors(caller, clean):
                if callee not in parents and states and (toward is None or callee in toward):
                    parents[callee] = (caller, Link(caller, st.CLEAN, index, binding))
                    queue.append(callee)
                    if needed:
                        needed.discard(callee)
                        if not needed:
                            return parents
        return parents

    def _toward_entries(self, fids: set[int], entries: frozenset[int]) -> set[int]:
        """The functions and their callers, transitively, up to the clean entries: every
        function on a shortest chain from an entry into one of `fids`.  The search
        from the entries keeps to them and so finds the same chains sooner, and ends
        when a function asked for cannot be reached at all."""
        pred = self.program.graph.pred
        relevant = set(fids)
        stack = [fid for fid in fids if fid not in entries]
        while stack:
            for caller in pred[stack.pop()]:
                if caller not in relevant:
                    relevant.add(caller)
                    if caller not in entries:
                        stack.append(caller)
        return relevant

    def _links(self, forest, node: Node) -> list[Link]:
        return self._walk_back(forest, node, lambda node: node[0])[0]

    def _walk_back(self, parents: dict, node, function_of: Callable) -> tuple[list[Link], object]:
        """The links from the root of a search tree down to `node`, and that root;
        `parents` maps a node to (its parent, the link between them), a root to None."""
        links: list[Link] = []
        while (parent := parents.get(node)) is not None:
            callee = function_of(node)
            node, link = parent
            links.append(self._placed(link, callee))
        links.reverse()
        return links, node

    def _placed(self, link: Link, callee: int) -> Link:
        """The link with its call index, found when the caller only makes plain calls."""
        if link.index is None:
            return link._replace(index=self.program.call_to(link.caller, callee))
        return link

    def _name_only(self, link: Link) -> bool:
        if link.binding is not None or link.index is None:
            return False
        target = self.program.targets(link.caller)[link.index]
        return target.kind == T_INDIRECT and target.confidence == NAME_ONLY

    # -- one forest per kind of context ------------------------------------------
    def _forest(self, kind: Context) -> dict[Node, tuple[Node, Link] | None]:
        forest = self._forests.get(kind)
        if forest is None:
            forest = self._grow(kind)
            self._forests[kind] = forest
        return forest

    def _grow(self, kind: Context, home: str | None = None,
              toward: set[int] | None = None) -> dict[Node, tuple[Node, Link] | None]:
        """The forest of shortest chains for this kind of context, from every function
        where it starts.  Nodes are (function, state without its home), or with
        `home` (exact), (function, state) for the states whose context was taken
        there, from the functions of that subsystem; `toward` limits the growth to
        the callers of those functions."""
        exact = home is not None
        flag = self.flag(kind)
        space = self.space
        contexts = self.contexts
        reached = contexts.reached
        fast = contexts.is_fast
        normal = space.entry_normal  # states as the callee is entered in them
        targets_of = self.program.targets
        callees_of = self.program.callees
        relevant = self._relevant.get(kind) if toward is None else self._callers(kind, toward, home)
        changes_on_entry = self.effects.entered
        kept_callees: dict[int, tuple[int, ...]] = {}  # a caller's callees in `relevant`
        homeless = space.homeless if not exact else (lambda sid: sid)
        flagged = space.flagged(kind, flag) & self._homed(home)
        forest: dict[Node, tuple[Node, Link] | None] = {}
        primary: deque[tuple[int, int, int]] = deque()  # (function, state, depth)
        fallback: deque[tuple[tuple[int, int, int], Node, Node, Link]] = deque()
        starters = self._starters(kind)
        if relevant is not None:
            starters &= relevant
        if exact and kind.what == HELD:
            starters = {fid for fid in starters if self.effects.home(fid) == home}
        for fid in sorted(starters):
            for state in st.members(reached.get(fid, 0)):
                if not flag(state):
                    primary.append((fid, state, 0))
        # The chains asked for (ask()), as sets of node keys per function: once one
        # node of each set is in the forest and every node as deep as the deepest of
        # those is, no chain asked for can change (each is the shortest, ties broken
        # by state, among nodes already found), unless a call resolved by name alone
        # was taken, which breaks the order by depth.
        asked = self._asked.get(kind, {})
        if toward is not None:
            asked = {fid: masks for fid, masks in asked.items() if fid in toward}
        unfound: dict[int, list[frozenset[Node]]] = {}
        with_kind = space.flagged(kind, flag)
        for fid, masks in asked.items():
            groups = []
            for mask in sorted(masks):
                if mask & ~with_kind:
                    continue  # the context starts in fid itself: find() needs no forest
                group = frozenset(homeless(s) for s in st.members(mask & flagged))
                if group:  # (none in a subsystem's forest when all are another's)
                    groups.append(group)
            if groups:
                unfound[fid] = groups
        deepest = 0
        by_name = False

        def found(callee: int, key_state: int, depth: int) -> None:
            nonlocal deepest
            left = [group for group in unfound[callee] if key_state not in group]
            if len(left) < len(unfound[callee]):
                deepest = max(deepest, depth)
                if left:
                    unfound[callee] = left
                else:
                    del unfound[callee]
        # Forest nodes are (function, state without its home): the same context taken
        # in two subsystems is one node, grown once, whichever home reaches it first.
        expanded: set[Node] = set()
        while primary or fallback:
            if not primary:
                real, key, parent, link = fallback.popleft()
                if key in forest:
                    continue
                by_name = True
                forest[key] = (parent, link)
                primary.append(real)
                continue
            caller, state, depth = primary.popleft()
            if asked and not unfound and not by_name and depth >= deepest:
                break
            here = (caller, homeless(state))
            if here in expanded:
                continue
            expanded.add(here)
            if fast(caller):
                # plain calls only: every callee is entered in the caller's one inside state
                # (the caller's own when its entry changes nothing: states are kept normal)
                entered = (normal(contexts.inside(caller, 1 << state)).bit_length() - 1
                           if caller in changes_on_entry else state)
                entered = contexts.strip(1 << entered).bit_length() - 1  # callees learn nothing of its parameters
                if flag(entered):
                    link = Link(caller, state, None, None)
                    plain = homeless(entered)
                    callees = kept_callees.get(caller)
                    if callees is None:
                        callees = kept_callees[caller] = (callees_of[caller] if relevant is None else
                                                          tuple(c for c in callees_of[caller] if c in relevant))
                    for callee in callees:
                        key = (callee, plain)
                        if (reached.get(callee, 0) >> entered) & 1 and key not in forest:
                            forest[key] = (here, link)
                            if callee in unfound:
                                found(callee, plain, depth + 1)
                            primary.append((callee, entered, depth + 1))
                continue
            call_targets = None
            successors = list(contexts.successors(caller, 1 << state))
            # the states with this kind of context, the ones successors() just made included
            flagged = space.flagged(kind, flag) & self._homed(home)
            for callee, states, index, binding in successors:
                if relevant is not None and callee not in relevant:
                    continue
                entering = normal(states) & reached.get(callee, 0) & flagged
                if not entering:
                    continue
                link = Link(caller, state, index, binding)
                name_only = False
                if binding is None and index is not None:
                    call_targets = call_targets or targets_of(caller)
                    target = call_targets[index]
                    name_only = target.kind == T_INDIRECT and target.confidence == NAME_ONLY
                for entered in st.members(entering):
                    key = (callee, homeless(entered))
                    if key in forest:
                        continue
                    if name_only:
                        fallback.append(((callee, entered, depth + 1), key, here, link))
                        continue
                    forest[key] = (here, link)
                    if callee in unfound:
                        found(callee, key[1], depth + 1)
                    primary.append((callee, entered, depth + 1))
        return forest

    def _starters(self, kind: Context) -> set[int]:
        """Functions in which this kind of context can start: those with a rules API
        call, a handle parameter or an ops entry, or a call to a function whose
        summary starts it."""
        program = self.program
        effects = self.effects
        space = self.space
        family = kind.family
        if kind.what == BELIEF:
            return {fid for fid, sites in self.belief_sites.items() if any(family in f for f in sites.values())}
        out: set[int] = set()
        index = space.family_index[family]
        if kind.what == HELD:
            out.update(fid for fid, (held, _scopes) in effects.entered.items() if family in held)
            starts = [fid for fid, e in effects.summaries.items() if e.held and e.held[index] > 0]
            apis = {fid for fid in program.detailed
                    if any(t.kind == T_BEGIN and effects.family_of(t) == family for t in program.targets(fid))}
        else:
            kinds = self.effects.rules.family_by_name[family].scopes
            out.update(fid for fid, (_held, scopes) in effects.entered.items() if kinds & scopes.keys())
            starts = [fid for fid, e in effects.summaries.items() if effects.opens_scope(e)]
            apis = {fid for fid in program.detailed if any(t.kind in (T_SCOPE, T_BEGIN) for t in program.targets(fid))}
        out |= apis
        pred = program.graph.pred
        for fid in starts:
            out.update(pred[fid])
        return out
