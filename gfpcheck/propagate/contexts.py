"""Which contexts each function can be entered in.

Starting from the functions nothing calls (system calls, ops callbacks,
init code) in a clean context, states flow along every call: through
direct calls, function-pointer members, dispatchers, and into a callback
bound at the call site that passed it (so a filesystem's initxattrs is
entered from that filesystem's call of security_inode_init_security only).
Inside a function the states at each call come from its flow (scopes,
handles, belief) when anything in it changes the context.

Belief (an explicit NOFS mask written on the path) follows direct calls
only: the author of a GFP_NOFS allocation answers for the helpers it calls,
not for whatever an ops table or a callback hands control to.  Handles and
scopes follow direct calls, callbacks and the indirect calls that carry
context (link.MAX_CONTEXT_TARGETS).  An indirect call that could reach many
implementations (sb->s_op->alloc_inode) carries a held context only into the
implementations of the subsystem where it was taken (State.home: a btrfs
handle reaches btrfs's alloc_inode, not 56 others), and enters the rest in a
clean context.

A state that holds, scopes or believes something also carries what the call
that entered the function says of the parameters its conditions test
(State.facts: `outbound == 0`, `mode == MODE_FULL`), from the constants that
call passes; the function's flow starts from them, and from the feature tests
that are false for objects of the subsystem where the context was taken
(rules: features).  Facts never cross an ops call or a callback.
"""

from __future__ import annotations

import heapq
from collections import defaultdict

from ..facts import CALL_CONSTANTS, constant
from ..link import T_BEGIN, T_END, T_FUNC, T_INDIRECT, T_PARAM, Program, subsystem
from . import paths as pa
from . import state as st
from .effects import Effects
from .flow import run_flow

_FORWARD_DEPTH = 4


class Contexts:
    """`reached[fid]`: bitmask of the states a function can be entered in."""

    def __init__(self, program: Program, effects: Effects):
        self.program = program
        self.effects = effects
        self.reached: dict[int, int] = {}
        self._flows: dict[tuple[int, int], tuple[int, ...]] = {}
        self._edge_cache: dict[int, tuple] = {}
        self._homes: dict[int, str] = {}
        self._arg_facts: dict[tuple[int, int, int], tuple] = {}
        self._passes_constants: dict[int, bool] = {}
        self._callbacks_by_caller: dict[int, list] = defaultdict(list)
        for bound in sorted(program.binding_sites):
            for site in program.binding_sites[bound]:
                self._callbacks_by_caller[site.caller].append(site)
        self._run()

    # -- states inside one function ------------------------------------------
    def inside(self, fid: int, entry_mask: int) -> int:
        """States inside `fid` entered in the states of `entry_mask`: its entry effect applied."""
        entry = self.effects.entry
        if fid not in self.effects.entered:
            return entry_mask
        out = 0
        for state in st.members(entry_mask):
            out |= 1 << entry(fid, state)
        return out

    def site_states(self, fid: int, entry_mask: int) -> tuple[int, ...]:
        """States at each call of `fid` when entered in the states of `entry_mask`
        (before the function's own entry effect)."""
        effects = self.effects
        inside = self.inside(fid, entry_mask)
        calls = self.program.calls(fid)
        features = effects.tests_feature(fid)
        if effects.is_plain(fid) and not self._knows(inside) and not features:
            return (inside,) * len(calls)
        sites = [0] * len(calls)
        space = effects.space
        for state in st.members(inside):
            key = (fid, state)
            flow = self._flows.get(key)
            if flow is None:
                known = space.state(state).facts
                home = space.state(state).home
                if features:
                    known = tuple(sorted(set(known) | set(effects.feature_facts(home))))
                flow = run_flow(effects.tree(fid), calls, 1 << state, effects.transfer(fid, summary=False),
                                effects.failure(fid), tracked=effects.tracked(fid),
                                known=known, on_null=effects.null_handles(fid)).sites
                self._flows[key] = flow
            for i, mask in enumerate(flow):
                sites[i] |= mask
        return tuple(sites)

    def invocation_states(self, fid: int, param: int, entry_mask: int, depth: int = 0) -> int:
        """States in which `fid`, entered in `entry_mask`, calls the function held in
        parameter `param`, itself or in a callee it passes the parameter to."""
        program = self.program
        sites = self.site_states(fid, entry_mask)
        name = program.functions[fid].params[param][0]
        out = 0
        for index, (call, target) in enumerate(zip(program.calls(fid), program.targets(fid), strict=True)):
            if not sites[index]:
                continue
            if target.kind == T_PARAM and target.param == param:
                out |= sites[index]
            elif target.kind == T_FUNC and depth < _FORWARD_DEPTH and name in call[4]:
                for arg, text in enumerate(call[4]):
                    if text != name:
                        continue
                    for callee in target.ids:
                        if arg in program.invoked_params.get(callee, ()):
                            out |= self.invocation_states(callee, arg, sites[index], depth + 1)
        return out

    def is_fast(self, fid: int) -> bool:
        """Whether every callee of the function is entered in its own states, with
        no facts about their parameters: only plain calls, none passing a constant a
        callee's conditions test, and no feature test (rules: features) to decide."""
        return self.fast[fid] and not self._constants_passed(fid) and not self.effects.tests_feature(fid)

    def _constants_passed(self, fid: int) -> bool:
        """Whether a call of the function passes a constant for a parameter its
        callee's conditions test."""
        found = self._passes_constants.get(fid)
        if found is None:
            program = self.program
            found = False
            for index, call in enumerate(program.calls(fid)):
                constants = call[CALL_CONSTANTS]
                if constants and any(self._arg_facts_of(fid, index, callee)
                                     for callee in program.targets(fid)[index].ids):
                    found = True
                    break
            self._passes_constants[fid] = found
        return found

    def _knows(self, mask: int) -> bool:
        """Whether a state of the mask carries facts about the function's parameters."""
        return mask != self.strip(mask)

    def strip(self, mask: int) -> int:
        """The states without facts about the parameters of the function they were in."""
        return self.effects.space.with_facts(mask, ())

    def entering(self, caller: int, index: int, callee: int, mask: int) -> int:
        """The states `callee` is entered in by call `index` of `caller`: those at the
        call, with what its constant arguments say of the parameters the callee tests."""
        if mask == 1:  # only the clean state, which carries no facts
            return mask
        return self.effects.space.with_facts(mask, self._arg_facts_of(caller, index, callee))

    def _arg_facts_of(self, caller: int, index: int, callee: int) -> tuple:
        """What call `index` of `caller` says of the parameters `callee` tests."""
        key = (caller, index, callee)
        facts = self._arg_facts.get(key)
        if facts is None:
            facts = ()
            constants = self.program.calls(caller)[index][CALL_CONSTANTS]
            tested = self.effects.tested_params(callee) if constants else ()
            if tested:
                params = self.program.functions[callee].params
                known = []
                for position, text in enumerate(constants[:len(params)]):
                    name = params[position][0]
                    value = constant(text) if text and name in tested else None
                    if value is not None:
                        known.append((name, pa.EQ, value))
                facts = tuple(sorted(known))
            self._arg_facts[key] = facts
        return facts

    def _edges(self, fid: int) -> tuple[tuple, tuple, tuple]:
        """The static calls out of a detailed function: (direct, indirect carrying
        context, indirect entered clean), each callee once with the first call index
        that reaches it."""
        edges = self._edge_cache.get(fid)
        if edges is None:
            direct: dict[int, int] = {}
            indirect: dict[int, int] = {}
            free: dict[int, int] = {}
            for index, target in enumerate(self.program.targets(fid)):
                kind = target.kind
                if kind == T_FUNC or kind == T_BEGIN or kind == T_END:
                    for callee in target.ids:
                        direct.setdefault(callee, index)
                elif kind == T_INDIRECT:
                    for callee in target.ids:
                        (indirect if target.carries else free).setdefault(callee, index)
            edges = (tuple(direct.items()), tuple(indirect.items()), tuple(free.items()))
            self._edge_cache[fid] = edges
        return edges

    def successors(self, fid: int, entry_mask: int):
        """(callee, states it is entered in, call index, binding site or None) of every
        call out of `fid`; the binding site is set when the callee is a callback.  The
        call index is None for a function that only makes plain calls (see
        Program.call_to).  Belief does not cross indirect calls or callbacks (module
        docstring)."""
        program = self.program
        clean = st.single(st.CLEAN)
        space = self.effects.space
        across_ops = space.across_ops
        home = self._home
        callbacks = self._callbacks_by_caller.get(fid, ())
        strip = self.strip
        inside = self.inside(fid, entry_mask)
        if self.effects.is_plain(fid) and (inside == clean or fid not in program.detailed
                                           and not self._constants_passed(fid)
                                           and not self.effects.tests_feature(fid)):
            mask = strip(inside)
            if not mask:
                return
            if fid not in program.detailed:
                for callee in program.callees[fid]:
                    yield callee, mask, None, None
            else:
                direct, indirect, free = self._edges(fid)
                for callee, index in direct:
                    yield callee, mask, index, None
                if indirect:
                    without = across_ops(mask)
                    for callee, index in indirect:
                        yield callee, without, index, None
                for callee, index in free:
                    yield callee, clean if mask == clean else space.homed(mask, home(callee)), index, None
            for site in callbacks:
                yield (site.function, across_ops(self.invocation_states(site.callee, site.arg, mask)),
                       site.call, site)
            return
        sites = self.site_states(fid, entry_mask)
        for index, target in enumerate(program.targets(fid)):
            mask = sites[index]
            if not mask:
                continue
            kind = target.kind
            if kind == T_FUNC or kind == T_BEGIN or kind == T_END:
                for callee in target.ids:
                    yield callee, self.entering(fid, index, callee, mask), index, None
            elif kind == T_INDIRECT:
                if target.carries:
                    entered = strip(across_ops(mask))
                    for callee in target.ids:
                        yield callee, entered, index, None
                else:
                    for callee in target.ids:
                        yield callee, clean if mask == clean else strip(space.homed(mask, home(callee))), index, None
        for site in callbacks:
            mask = sites[site.call]
            if mask:
                yield (site.function, strip(across_ops(self.invocation_states(site.callee, site.arg, mask))),
                       site.call, site)

    def _home(self, fid: int) -> str:
        """The subsystem of a function, once per file."""
        file_index = self.program.file_of[fid]
        found = self._homes.get(file_index)
        if found is None:
            found = self._homes[file_index] = subsystem(self.program.files[file_index].path)
        return found

    # -- whole program ---------------------------------------------------------------
    def _run(self) -> None:
        """Two worklists.  The clean one is a plain breadth-first reachability from
        the roots: nearly every function is entered clean, and a function that only
        makes plain calls passes that straight on, one flag per function.  The other
        carries the states that are not clean (a held handle, an open scope, NOFS
        believed), found from where they start and taken once per batch of new states;
        the few functions those reach are where the work is."""
        program = self.program
        graph = program.graph
        count = len(program.functions)
        effects = self.effects
        detailed = program.detailed
        handles = effects.entered  # functions whose entry changes the state
        callbacks = self._callbacks_by_caller
        callees_of = program.callees
        plain = [effects.is_plain(fid) for fid in range(count)]
        # only plain calls: every callee is entered in the caller's own states
        self.fast = [plain[fid] and fid not in detailed and fid not in callbacks for fid in range(count)]
        fast = self.is_fast
        # a clean caller enters every callee clean, whatever the kind of call
        clean_through = [plain[fid] and fid not in handles and fid not in callbacks for fid in range(count)]
        clean = bytearray(count)
        clean_queue: list[int] = []
        dirty: dict[int, int] = {}  # states other than clean, per function
        pending: dict[int, int] = {}
        queue: list[int] = []  # a heap of ranks: callers before callees
        by_rank = _callers_first(callees_of, count)
        rank = [0] * count
        for position, fid in enumerate(by_rank):
            rank[fid] = position
        normal = effects.space.entry_normal
        clean_bit = st.single(st.CLEAN)
        get = dirty.get
        heappush = heapq.heappush

        def push(fid: int, mask: int) -> None:
            mask = normal(mask)
            if mask & clean_bit and not clean[fid]:
                clean[fid] = 1
                clean_queue.append(fid)
            seen = get(fid, 0)
            new = mask & ~clean_bit & ~seen
            if new:
                dirty[fid] = seen | new
                if fid in pending:
                    pending[fid] |= new
                else:
                    pending[fid] = new
                    heappush(queue, rank[fid])

        def drain() -> None:
            while clean_queue or queue:
                while clean_queue:
                    fid = clean_queue.pop()
                    if clean_through[fid]:
                        for callee in callees_of[fid]:
                            if not clean[callee]:
                                clean[callee] = 1
                                clean_queue.append(callee)
                    else:
                        for callee, states, _index, _site in self.successors(fid, clean_bit):
                            if states:
                                push(callee, states)
                if queue:
                    fid = by_rank[heapq.heappop(queue)]
                    mask = pending.pop(fid)
                    if fast(fid):
                        inside = self.strip(self.inside(fid, mask) if fid in handles else mask)
                        for callee in callees_of[fid]:
                            push(callee, inside)
                        continue
                    for callee, states, _index, _site in self.successors(fid, mask):
                        if states:
                            push(callee, states)

        roots = sorted(set(program.entries) | {fid for fid, callers in graph.pred.items() if not callers})
        for fid in roots:
            push(fid, clean_bit)
        drain()
        # functions only reachable from cycles nothing else enters
        for fid in range(count):
            if not clean[fid] and fid not in dirty:
                push(fid, clean_bit)
                drain()
        reached = self.reached
        for fid in range(count):
            mask = dirty.get(fid, 0) | (clean_bit if clean[fid] else 0)
            if mask:
                reached[fid] = mask


def _callers_first(callees_of, count: int) -> list[int]:
    """Every function once, such that outside cycles a caller comes before its
    callees (reverse postorder of a depth-first walk).  Taking the states not
    clean in this order lets a function gather the states of all its callers
    before it passes them on, instead of once for each caller's batch."""
    visited = bytearray(count)
    order: list[int] = []
    for start in range(count):
        if visited[start]:
            continue
        visited[start] = 1
        stack = [(start, iter(callees_of[start]))]
        while stack:
            fid, children = stack[-1]
            for callee in children:
                if not visited[callee]:
                    visited[callee] = 1
                    stack.append((callee, iter(callees_of[callee])))
                    break
            else:
                stack.pop()
                order.append(fid)
    order.reverse()
    return order
