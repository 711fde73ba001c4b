"""The shortest call chain that proves a finding.

Searching backwards from the function where the bad state is seen, over
callers in the states they were actually reached in, the first function
where the relevant part of the context starts (a handle taken, NOFS first
believed) ends the search: breadth-first, so the chain from that source to
the allocation is a shortest one.  Callers, states and call sites are
visited in a fixed order, so ties always break the same way.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, NamedTuple

from ..link import NAME_ONLY, T_INDIRECT, BindingSite, Program
from . import state as st
from .contexts import Contexts

MAX_VISITS = 50_000


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


class Witness:
    def __init__(self, program: Program, contexts: Contexts):
        self.program = program
        self.contexts = contexts
        self._successors: dict[tuple[int, int], tuple] = {}

    def _calls(self, caller: int, state: int) -> tuple:
        key = (caller, state)
        found = self._successors.get(key)
        if found is None:
            found = tuple(self.contexts.successors(caller, 1 << state))
            self._successors[key] = found
        return found

    def find(self, fid: int, wanted: Callable[[int], bool], is_source: Callable[[int], bool]) -> Chain | None:
        """A shortest chain into `fid`, entered in a state `wanted` accepts, from a
        function entered in a state `is_source` accepts.  Chains that need a
        member-name-only resolution are used only when no other exists."""
        for allow_name_only in (False, True):
            chain = self._search(fid, wanted, is_source, allow_name_only)
            if chain is not None:
                return chain
        return None

    def _search(self, fid: int, wanted, is_source, allow_name_only: bool) -> Chain | None:
        program = self.program
        reached = self.contexts.reached
        graph = program.graph
        start = [(fid, s) for s in st.members(reached.get(fid, 0)) if wanted(s)]
        parent: dict[tuple[int, int], tuple[tuple[int, int], Link] | None] = {node: None for node in start}
        queue = deque(start)
        visits = 0
        while queue:
            node = queue.popleft()
            function, state = node
            if is_source(state):
                return self._chain(node, parent)
            visits += 1
            if visits > MAX_VISITS:
                return None
            for caller in sorted(graph.pred[function]):
                targets = program.targets[caller]
                for caller_state in st.members(reached.get(caller, 0)):
                    pred = (caller, caller_state)
                    if pred in parent:
                        continue
                    for callee, states, index, binding in self._calls(caller, caller_state):
                        if callee != function or not (states >> state) & 1:
                            continue
                        target = targets[index]
                        if binding is None and target[0] == T_INDIRECT and target[3] == NAME_ONLY \
                                and not allow_name_only:
                            continue
                        parent[pred] = (node, Link(caller, caller_state, index, binding))
                        queue.append(pred)
                        break
        return None

    def _chain(self, source: tuple[int, int], parent) -> Chain:
        links = []
        node = source
        name_only = False
        program = self.program
        while parent[node] is not None:
            child, link = parent[node]
            links.append(link)
            target = program.targets[link.caller][link.index]
            if link.binding is None and target[0] == T_INDIRECT and target[3] == NAME_ONLY:
                name_only = True
            node = child
        return Chain(source[0], source[1], tuple(links), name_only)
