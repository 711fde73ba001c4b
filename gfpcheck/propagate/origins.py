"""Where masks are written, and which allocations a mask passed down reaches.

An origin is a call whose argument spells out a mask (`kmalloc(n, GFP_NOFS)`,
`alloc_foo(x, GFP_KERNEL)`), or an allocator that implies one (`vmalloc`).
A mask passed to a parameter is followed into the callee, through any
number of forwarding calls, to the allocations that use it; that is where
the mask takes effect, and the origin is where a finding is reported.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import NamedTuple

from ..facts import CALL_ARGS, PARAM_NAME
from ..link import T_ALLOC, T_BEGIN, T_END, T_FUNC, Program
from ..masks import UNKNOWN, Mask
from ..ruleset import Family, Ruleset

MAX_FORWARD_DEPTH = 6

# Mask classes, for a context family
UNSAFE = "unsafe"  # may enter direct reclaim with a bit the family forbids (__GFP_FS for fs): can recurse
CLEARED = "cleared"  # the family's bits cleared on purpose (GFP_NOFS for fs, GFP_NOIO), not opportunistically
OTHER = "other"


class Origin(NamedTuple):
    fid: int
    index: int  # call index
    arg: int  # argument holding the mask; -1 when the allocator implies it
    text: str  # the mask as written, or the implied mask's name
    mask: Mask
    allocator: str  # the allocator called here; "" when the mask is passed on


class Use(NamedTuple):
    """An allocation a passed-down mask reaches."""

    fid: int
    index: int
    allocator: str
    mask: Mask
    hops: tuple[tuple[int, int], ...]  # (function, call index) of each forwarding call after the origin


class Origins:
    """Mask origins of every function, and how masks flow through parameters."""

    def __init__(self, program: Program, rules: Ruleset):
        self.program = program
        self.rules = rules
        self.algebra = rules.algebra
        self._envs: dict[int, dict[str, Mask]] = {}
        self._free_names: dict[str, frozenset[str]] = {}
        self._unsafe = {family.name: rules.unsafe_bits(family) for family in rules.families}
        self.mask_params = self._mask_params()
        self.by_function: dict[int, tuple[Origin, ...]] = {}
        for fid in sorted(program.detailed):
            found = tuple(self._find(fid))
            if found:
                self.by_function[fid] = found
        # Call sites that write an explicit mask clearing a family's bits: from there
        # on, that family's context is believed (not where the rules call it a habit).
        self.belief_sites: dict[int, dict[int, frozenset[str]]] = {}
        for fid, origins in self.by_function.items():
            path = program.path(fid)
            sites: dict[int, frozenset[str]] = {}
            for origin in origins:
                believed = frozenset(family.name for family in rules.families
                                     if self.classify(origin.mask, family) == CLEARED
                                     and not path.startswith(family.habits))
                if believed:
                    sites[origin.index] = believed
            if sites:
                self.belief_sites[fid] = sites

    # -- classification ------------------------------------------------------
    def classify(self, mask: Mask, family: Family) -> str:
        """UNSAFE, CLEARED or OTHER: what the mask means in the family's context."""
        rules = self.rules
        bits = self._unsafe[family.name]
        if mask.is_set(bits) and mask.is_set(rules.reclaim_bit):
            return UNSAFE
        if mask.known & ~mask.value & bits == bits and not mask.is_clear(rules.reclaim_bit) \
                and not mask.is_set(rules.opportunistic_bits):
            return CLEARED
        return OTHER

    def meaningful(self, mask: Mask) -> bool:
        """Whether the mask means something in some family: a site worth keeping."""
        return any(self.classify(mask, family) != OTHER for family in self.rules.families)

    # -- masks written in a function ---------------------------------------------
    def env(self, fid: int) -> dict[str, Mask]:
        """Values of the function's mask-typed locals (every assignment joined)."""
        env = self._envs.get(fid)
        if env is None:
            env = {}
            params = {p[PARAM_NAME] for p in self.program.functions[fid].params}
            for name, values in self.program.functions[fid].mask_locals:
                value = None
                for text in values:
                    if self._free(text) & params:
                        value = UNKNOWN  # set from a parameter: known only per caller
                        break
                    current = self.algebra.try_evaluate(text, env)
                    value = current if value is None else value.join(current)
                env[name] = value if value is not None else UNKNOWN
            self._envs[fid] = env
        return env

    def _free(self, text: str) -> frozenset[str]:
        found = self._free_names.get(text)
        if found is None:
            if text.isidentifier():
                found = frozenset() if text in self.algebra.names else frozenset((text,))
            else:
                found = self.algebra.free_names(text)
            self._free_names[text] = found
        return found

    def _find(self, fid: int) -> Iterator[Origin]:
        program = self.program
        function = program.functions[fid]
        rules = self.rules
        algebra = self.algebra
        params = {p[PARAM_NAME] for p in function.params if p[PARAM_NAME]}
        for index, (call, target) in enumerate(zip(program.calls(fid), program.targets(fid), strict=True)):
            kind = target.kind
            args = call[CALL_ARGS]
            if kind == T_ALLOC:
                allocator = rules.allocators[target.api]
                if allocator.implied is not None:
                    yield Origin(fid, index, -1, allocator.implied, rules.implied_mask(allocator), allocator.name)
                    continue
                if allocator.gfp_arg >= len(args) or args[allocator.gfp_arg] is None:
                    continue
                text = args[allocator.gfp_arg]
                if self._free(text) & params:
                    continue  # the caller decides
                mask = algebra.try_evaluate(text, self.env(fid))
                if self.meaningful(mask):
                    yield Origin(fid, index, allocator.gfp_arg, text, mask, allocator.name)
            elif kind in (T_FUNC, T_BEGIN, T_END):
                for arg, text in enumerate(args):
                    if text is None or not any(arg in self.mask_params.get(c, ()) for c in target.ids):
                        continue
                    if self._free(text) & params or not (algebra.is_mask_text(text) or text in self.env(fid)):
                        continue
                    mask = algebra.try_evaluate(text, self.env(fid))
                    if self.meaningful(mask):
                        yield Origin(fid, index, arg, text, mask, "")

    # -- parameters that carry masks -------------------------------------------------
    def _mask_params(self) -> dict[int, frozenset[int]]:
        """Parameters each function uses as an allocation mask, itself or by passing them
        on: found from the allocations whose mask names a parameter, back through callers."""
        program = self.program
        rules = self.rules
        uses: dict[int, set[int]] = defaultdict(set)
        for fid in sorted(program.detailed):
            params = _param_index(program.functions[fid])
            if not params:
                continue
            for call, target in zip(program.calls(fid), program.targets(fid), strict=True):
                if target.kind != T_ALLOC:
                    continue
                gfp_arg = rules.allocators[target.api].gfp_arg
                args = call[CALL_ARGS]
                if gfp_arg is not None and gfp_arg < len(args) and args[gfp_arg]:
                    for name in self._free(args[gfp_arg]) & params.keys():
                        uses[fid].add(params[name])
        queue = sorted(uses)
        graph = program.graph
        while queue:
            callee = queue.pop()
            for caller in sorted(graph.pred[callee]):
                params = _param_index(program.functions[caller])
                if not params:
                    continue
                for call, target in zip(program.calls(caller), program.targets(caller), strict=True):
                    if target.kind not in (T_FUNC, T_BEGIN, T_END) or callee not in target.ids:
                        continue
                    args = call[CALL_ARGS]
                    for arg in sorted(uses[callee]):
                        text = args[arg] if arg < len(args) else None
                        if not text:
                            continue
                        for name in self._free(text) & params.keys():
                            if params[name] not in uses[caller]:
                                uses[caller].add(params[name])
                                queue.append(caller)
        return {fid: frozenset(p) for fid, p in uses.items() if p}

    def uses(self, origin: Origin) -> Iterator[Use]:
        """Allocations an origin's mask reaches; for a direct allocation, itself."""
        if origin.allocator:
            yield Use(origin.fid, origin.index, origin.allocator, origin.mask, ())
            return
        target = self.program.targets(origin.fid)[origin.index]
        for callee in target.ids:
            if origin.arg in self.mask_params.get(callee, ()):
                yield from self._follow(callee, origin.arg, origin.mask, (), set())

    def _follow(self, fid: int, param: int, value: Mask, hops: tuple, seen: set) -> Iterator[Use]:
        if (fid, param) in seen or len(hops) >= MAX_FORWARD_DEPTH:
            return
        seen = seen | {(fid, param)}
        program = self.program
        function = program.functions[fid]
        name = function.params[param][PARAM_NAME]
        env = dict(self.env(fid))
        env[name] = value
        rules = self.rules
        for index, (call, target) in enumerate(zip(program.calls(fid), program.targets(fid), strict=True)):
            kind = target.kind
            args = call[CALL_ARGS]
            if kind == T_ALLOC:
                allocator = rules.allocators[target.api]
                if allocator.gfp_arg is None or allocator.gfp_arg >= len(args):
                    continue
                text = args[allocator.gfp_arg]
                if text and name in self._free(text):
                    yield Use(fid, index, allocator.name, self.algebra.try_evaluate(text, env), hops)
            elif kind in (T_FUNC, T_BEGIN, T_END):
                for arg, text in enumerate(args):
                    if not text or name not in self._free(text):
                        continue
                    passed = self.algebra.try_evaluate(text, env)
                    for callee in target.ids:
                        if arg in self.mask_params.get(callee, ()):
                            yield from self._follow(callee, arg, passed, hops + ((fid, index),), seen)


def _param_index(function) -> dict[str, int]:
    return {p[PARAM_NAME]: i for i, p in enumerate(function.params) if p[PARAM_NAME]}
