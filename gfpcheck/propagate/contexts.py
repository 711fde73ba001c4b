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
context (link.MAX_CONTEXT_TARGETS); an indirect call that could reach many
implementations enters them in a clean context instead.
"""

from __future__ import annotations

from collections import defaultdict, deque

from ..link import T_BEGIN, T_END, T_FUNC, T_INDIRECT, T_PARAM, Program
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
        self._callbacks_by_caller: dict[int, list] = defaultdict(list)
        for bound in sorted(program.binding_sites):
            for site in program.binding_sites[bound]:
                self._callbacks_by_caller[site.caller].append(site)
        self._run()

    # -- states inside one function ------------------------------------------
    def site_states(self, fid: int, entry_mask: int) -> tuple[int, ...]:
        """States at each call of `fid` when entered in the states of `entry_mask`
        (before the function's own entry effect)."""
        effects = self.effects
        inside = 0
        for state in st.members(entry_mask):
            inside |= 1 << effects.entry(fid, state)
        calls = self.program.functions[fid].calls
        if effects.is_plain(fid):
            return (inside,) * len(calls)
        sites = [0] * len(calls)
        for state in st.members(inside):
            key = (fid, state)
            flow = self._flows.get(key)
            if flow is None:
                flow = run_flow(effects.tree(fid), calls, 1 << state, effects.transfer(fid, summary=False),
                                effects.failure(fid)).sites
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
        for index, (call, target) in enumerate(zip(program.functions[fid].calls, program.targets[fid])):
            if not sites[index]:
                continue
            if target[0] == T_PARAM and target[1] == param:
                out |= sites[index]
            elif target[0] == T_FUNC and depth < _FORWARD_DEPTH and name in call[4]:
                for arg, text in enumerate(call[4]):
                    if text != name:
                        continue
                    for callee in target[1]:
                        if arg in program.invoked_params.get(callee, ()):
                            out |= self.invocation_states(callee, arg, sites[index], depth + 1)
        return out

    def _edges(self, fid: int) -> tuple[tuple, tuple, tuple, tuple]:
        """The static calls out of `fid`: (direct, indirect carrying context, indirect
        entered clean, callbacks); each callee once with the first call index that
        reaches it, callbacks per call site."""
        edges = self._edge_cache.get(fid)
        if edges is None:
            direct: dict[int, int] = {}
            indirect: dict[int, int] = {}
            free: dict[int, int] = {}
            for index, target in enumerate(self.program.targets[fid]):
                kind = target[0]
                if kind == T_FUNC or kind == T_BEGIN or kind == T_END:
                    for callee in target[1]:
                        direct.setdefault(callee, index)
                elif kind == T_INDIRECT:
                    for callee in target[1]:
                        (indirect if target[4] else free).setdefault(callee, index)
            callbacks = tuple((site.call, site) for site in self._callbacks_by_caller.get(fid, ()))
            edges = (tuple(direct.items()), tuple(indirect.items()), tuple(free.items()), callbacks)
            self._edge_cache[fid] = edges
        return edges

    def successors(self, fid: int, entry_mask: int):
        """(callee, states it is entered in, call index, binding site or None) of every
        call out of `fid`; the binding site is set when the callee is a callback.
        Belief does not cross indirect calls or callbacks (module docstring)."""
        program = self.program
        direct, indirect, free, callbacks = self._edges(fid)
        sites = self.site_states(fid, entry_mask)
        clean = st.single(st.CLEAN)
        if self.effects.is_plain(fid):
            mask = sites[0] if sites else 0
            if not mask:
                return
            for callee, index in direct:
                yield callee, mask, index, None
            if indirect:
                without = st.without_belief(mask)
                for callee, index in indirect:
                    yield callee, without, index, None
            for callee, index in free:
                yield callee, clean, index, None
        else:
            for index, target in enumerate(program.targets[fid]):
                mask = sites[index]
                if not mask:
                    continue
                kind = target[0]
                if kind == T_FUNC or kind == T_BEGIN or kind == T_END:
                    for callee in target[1]:
                        yield callee, mask, index, None
                elif kind == T_INDIRECT:
                    entered = st.without_belief(mask) if target[4] else clean
                    for callee in target[1]:
                        yield callee, entered, index, None
        for index, site in callbacks:
            mask = sites[index]
            if mask:
                yield (site.function, st.without_belief(self.invocation_states(site.callee, site.arg, mask)),
                       index, site)

    # -- whole program ---------------------------------------------------------------
    def _run(self) -> None:
        program = self.program
        graph = program.graph
        reached = self.reached
        pending: dict[int, int] = {}
        queue: deque[int] = deque()
        normal = st.entry_normal

        def push(fid: int, mask: int) -> None:
            new = normal(mask) & ~reached.get(fid, 0)
            if new:
                reached[fid] = reached.get(fid, 0) | new
                if fid in pending:
                    pending[fid] |= new
                else:
                    pending[fid] = new
                    queue.append(fid)

        def drain() -> None:
            while queue:
                fid = queue.popleft()
                for callee, states, _index, _site in self.successors(fid, pending.pop(fid)):
                    if states:
                        push(callee, states)

        roots = sorted(set(program.entries) | {fid for fid in graph.nodes if graph.in_degree(fid) == 0})
        for fid in roots:
            push(fid, st.single(st.CLEAN))
        drain()
        # functions only reachable from cycles nothing else enters
        for fid in range(len(program.functions)):
            if fid not in reached:
                push(fid, st.single(st.CLEAN))
                drain()
