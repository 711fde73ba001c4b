"""Findings with their evidence: the message, and the chain as steps a reader can follow.

Each step says what it contributes: where the handle is taken or the scope
opened, which call leads on (and how an indirect call was resolved), where a
callback was bound, where a mask was passed down, and the allocation itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..facts import CALL_NAME, PARAM_NAME, PARAM_TYPE
from ..findings import ChainStep, Finding
from ..link import (
    CONFIDENT,
    DISPATCHED,
    NAME_ONLY,
    T_BEGIN,
    T_END,
    T_FUNC,
    T_INDIRECT,
    T_PARAM,
    T_SCOPE,
    subsystem,
)
from ..propagate import state as st
from ..propagate.origins import Origin, Use
from ..propagate.witness import Chain, Link
from .catalog import Check

if TYPE_CHECKING:
    from .nofs import Analysis


# Confidence limits: calls on the chain, and subsystems (fs/btrfs, security, ...) it visits.
HIGH_CALLS, HIGH_SUBSYSTEMS = 8, 3
MEDIUM_CALLS, MEDIUM_SUBSYSTEMS = 16, 4
CONFIDENCE_ORDER = {"low": 0, "medium": 1, "high": 2}


class Evidence:
    def __init__(self, analysis: Analysis):
        self.a = analysis
        self.program = analysis.program
        self.rules = analysis.rules

    # -- places ------------------------------------------------------------------
    def _step(self, fid: int, index: int | None, note: str) -> ChainStep:
        program = self.program
        function = program.functions[fid]
        if index is None:
            line, column = function.line, function.column
        else:
            call = self.program.calls(fid)[index]
            line, column = call[2], call[3]
        return ChainStep(function.name, program.path(fid), line, column, note)

    def _call_name(self, fid: int, index: int) -> str:
        return self.program.calls(fid)[index][CALL_NAME] or "(indirect call)"

    def _name(self, fid: int) -> str:
        return self.program.functions[fid].name

    # -- findings ------------------------------------------------------------------
    def finding(self, check: Check, origin: Origin, use: Use | None, chain: Chain | None, kind: str) -> Finding:
        program = self.program
        function = program.functions[origin.fid]
        call = program.calls(origin.fid)[origin.index]
        allocator = use.allocator if use is not None else (origin.allocator or call[CALL_NAME])
        gfp = origin.text if origin.arg >= 0 else f"{origin.text} (implied by {origin.allocator}())"
        steps: list[ChainStep] = []
        counted: list[ChainStep] = []  # the steps from the nearest place the context is evident
        if chain is not None:
            source = self._source(chain, kind, origin)
            per_link = self._links(chain)
            start = self._evident_from(chain, kind, origin)
            steps = [source, *(step for link_steps in per_link for step in link_steps)]
            counted = ([source] if start == 0 else []) + [step for link_steps in per_link[start:]
                                                         for step in link_steps]
        tail = self._tail(check, origin, use)
        steps.extend(tail)
        counted.extend(tail)
        confidence = self._confidence(chain, counted, chain.links[start:] if chain is not None else ())
        message = self._message(check, origin, use, chain, allocator)
        return Finding(
            rule=check.id, severity=check.severity, file=program.path(origin.fid), line=call[2],
            column=call[3], function=function.name, allocator=allocator, gfp=gfp, message=message,
            chain=tuple(steps), confidence=confidence,
        )

    def _confidence(self, chain: Chain | None, steps: list[ChainStep], links: tuple[Link, ...]) -> str:
        """How much a maintainer can trust the chain, judged on `links`, the calls from
        the nearest function where the context is evident, and their `steps`: a
        handle passed down twenty calls is as evident in the function that takes it
        as a parameter as it would be there alone.  Long chains and chains that
        wander through many subsystems mostly pass conditions the analysis does not
        see (a feature the filesystem never enables, an init-once path); a member
        resolved by name alone is a guess."""
        if chain is None:
            return "high"
        if any(self._name_only(link) for link in links):
            return "low"
        calls = len(links)
        subsystems = len({subsystem(step.file) for step in steps})
        targets = [self.program.targets(link.caller)[link.index] for link in links if link.binding is None]
        indirect = any(t[0] == T_INDIRECT and t[3] != DISPATCHED for t in targets)
        if calls <= HIGH_CALLS and subsystems <= HIGH_SUBSYSTEMS and not indirect:
            return "high"
        if calls <= MEDIUM_CALLS and subsystems <= MEDIUM_SUBSYSTEMS:
            return "medium"
        return "low"

    def _name_only(self, link: Link) -> bool:
        if link.binding is not None or link.index is None:
            return False
        target = self.program.targets(link.caller)[link.index]
        return target[0] == T_INDIRECT and target[3] == NAME_ONLY

    def _evident_from(self, chain: Chain, kind: str, origin: Origin) -> int:
        """How many of the chain's calls lie above the deepest function where its
        context is evident on its own (a handle parameter or a begin call, a scope
        opened, a NOFS mask written): 0 when only the chain's source shows it."""
        describe = self._describers().get(kind)
        if describe is None or not chain.links:
            return 0
        places = [(link.caller, link.index) for link in chain.links] + [(origin.fid, origin.index)]
        for start in range(len(places) - 1, 0, -1):
            fid, until = places[start]
            if describe(fid, until) is not None:
                return start
        return 0

    def _describers(self) -> dict:
        """For each kind of context, the function that finds where it starts in a function."""
        return {"held": self._held_source, "belief": self._belief_source, "scope": self._scope_source}

    def _message(self, check: Check, origin: Origin, use: Use | None, chain: Chain | None, allocator: str) -> str:
        where = f"{allocator}()"
        if use is not None and (use.fid != origin.fid or use.hops):
            where = f"{allocator}() in {self._name(use.fid)}(), reached by passing {origin.text} to " \
                    f"{self._call_name(origin.fid, origin.index)}(),"
        mask = origin.text
        source = self._name(chain.source) if chain is not None else None
        if check.id == "nofs-recursion":
            handle = self._handle_name(chain)
            taken = ""
            if source and chain.source in self.program.handle_params:
                taken = f" (a parameter of {source}())"
            elif source:
                taken = f" (taken in {source}())"
            return (f"{where} with {mask} may recurse into filesystem reclaim while {handle} is held{taken} "
                    f"and no memalloc_nofs scope is open")
        if check.id == "nofs-inconsistent":
            by = f"{source}() allocates with NOFS" if source else "a caller allocates with NOFS"
            return f"{where} with {mask} is not covered by a memalloc_nofs scope, but {by} on this path"
        if check.id == "nofs-redundant":
            return f"{mask} is redundant: a memalloc_nofs/noio scope is open on every known path to this call"
        return (f"{mask} is needless: every path to {self._name(origin.fid)}() starts at a system call "
                f"with no handle held, no scope open and no NOFS caller")

    def _handle_name(self, chain: Chain | None) -> str:
        if chain is None:
            return "a transaction handle"
        handle = self.program.handle_params.get(chain.source)
        if handle is not None and st.held(chain.source_state) == 0:
            return f"a {self.rules.handle_types.get(handle[1], 'transaction handle')}"
        first = chain.links[0].index if chain.links else None
        begin = self._begin_before(chain.source, first)
        target = self.program.targets(chain.source)[begin] if begin is not None else None
        if target is not None and target[0] == T_BEGIN:
            handle_type = self.rules.begin[target[2]].handle_type
            return f"a {self.rules.handle_types.get(handle_type, 'transaction handle')}"
        return "a transaction handle"

    # -- chain pieces ---------------------------------------------------------------
    def _source(self, chain: Chain, kind: str, origin: Origin) -> ChainStep:
        """The step where the chain's context starts.  When the first call hands a
        callback to a function that invokes it, the context may start inside that
        function, before the invocation: both places are searched, in that order."""
        fid = chain.source
        if kind == "clean":
            return self._step(fid, None, "system call entry: nothing held, no scope, no NOFS caller  "
                                         "[rules: entry_macros]")
        places = [(fid, chain.links[0].index if chain.links else origin.index)]
        if chain.links and chain.links[0].binding is not None:
            site = chain.links[0].binding
            invoke = self._invocation(site)
            if invoke is not None:
                places.append((site.callee, invoke))
        describe = self._describers()[kind]
        for place, until in places:
            step = describe(place, until)
            if step is not None:
                return step
        return self._step(fid, None, f"entered with {st.describe(chain.source_state)}")

    def _held_source(self, fid: int, until: int) -> ChainStep | None:
        program = self.program
        handle = program.handle_params.get(fid)
        if handle is not None:
            param = program.functions[fid].params[handle[0]]
            name = self.rules.handle_types.get(handle[1], "transaction handle")
            return self._step(fid, None, f"holds a {name}: parameter '{param[PARAM_NAME]}' is "
                                         f"{param[PARAM_TYPE]} *  [rules: handle_types]")
        begin = self._begin_before(fid, until)
        if begin is None:
            return None
        target = program.targets(fid)[begin]
        if target[0] == T_BEGIN:
            return self._step(fid, begin, f"{target[2]}() takes a transaction handle  [rules: begin]")
        return self._step(fid, begin, f"{self._call_name(fid, begin)}() returns with a transaction handle held  "
                                      f"[derived: function summary]")

    def _belief_source(self, fid: int, until: int) -> ChainStep | None:
        sites = sorted(i for i in self.a.origins.nofs_sites.get(fid, ()) if i <= until)
        if not sites:
            return None
        index = sites[-1]
        found = next(o for o in self.a.origins.by_function[fid] if o.index == index)
        what = f"{found.allocator}() with {found.text}" if found.allocator else \
            f"passes {found.text} to {self._call_name(fid, index)}()"
        return self._step(fid, index, f"{what}: NOFS is believed from here on")

    def _scope_source(self, fid: int, until: int) -> ChainStep | None:
        opened = self._scope_before(fid, until)
        if opened is not None:
            return self._step(fid, opened[0], opened[1])
        handle = self.program.handle_params.get(fid)
        if handle is None or handle[1] not in self.a.effects.implied:
            return None
        name = self.rules.handle_types.get(handle[1], "transaction handle")
        param = self.program.functions[fid].params[handle[0]][PARAM_NAME]
        return self._step(fid, None, f"holds a {name} (parameter '{param}'), and the API that begins one "
                                     f"opens a memalloc_nofs scope  [derived: begin API summary]")

    def _invocation(self, site) -> int | None:
        """Where the function a callback was passed to calls that parameter."""
        return next((i for i, t in enumerate(self.program.targets(site.callee))
                     if t[0] == T_PARAM and t[1] == site.arg), None)

    def _begin_before(self, fid: int, until: int | None) -> int | None:
        """The last call before `until` that takes a handle (a begin API or a wrapper of one)."""
        effects = self.a.effects
        found = None
        for index, target in enumerate(self.program.targets(fid)):
            if until is not None and index > until:
                break
            if target[0] == T_BEGIN or target[0] == T_FUNC and any(effects.summaries.get(c, st.IDENTITY).held > 0 for c in target[1]):
                found = index
        return found

    def _scope_before(self, fid: int, until: int) -> tuple[int, str] | None:
        effects = self.a.effects
        found = None
        for index, target in enumerate(self.program.targets(fid)):
            if index > until:
                break
            if target[0] == T_SCOPE and self.rules.scopes[target[1]].op == "open":
                found = (index, f"{target[1]}() opens a {self.rules.scopes[target[1]].kind} scope  [rules: scopes]")
            elif target[0] in (T_FUNC, T_BEGIN) and any(
                    effects.summaries.get(c, st.IDENTITY).nofs > 0 or effects.summaries.get(c, st.IDENTITY).noio > 0
                    for c in target[1]):
                found = (index, f"{self._call_name(fid, index)}() opens a memalloc scope that stays open "
                                f"after it returns  [derived: function summary]")
        return found

    def _links(self, chain: Chain) -> list[list[ChainStep]]:
        """The steps of each call on the chain."""
        callees = [link.caller for link in chain.links[1:]]
        return [self._link(link, callee) for link, callee in zip(chain.links, callees + [None])]

    def _link(self, link: Link, callee: int | None) -> list[ChainStep]:
        program = self.program
        target = program.targets(link.caller)[link.index]
        if link.binding is not None:
            site = link.binding
            bound = self._name(site.function)
            param = program.functions[site.callee].params[site.arg][PARAM_NAME]
            steps = [self._step(link.caller, link.index,
                                f"passes {bound} to {self._name(site.callee)}() as '{param}'")]
            invoke = self._invocation(site)
            if invoke is not None:
                steps.append(self._step(site.callee, invoke,
                                        f"calls '{param}', bound to {bound} by that caller"))
            return steps
        name = self._name(callee) if callee is not None else self._call_name(link.caller, link.index)
        if target[0] == T_INDIRECT:
            how = {DISPATCHED: "rules: dispatchers", CONFIDENT: "typed member"}.get(target[3], "member name only")
            return [self._step(link.caller, link.index, f"calls {name}() through {target[2]}  [{how}]")]
        if target[0] in (T_BEGIN, T_END):
            return [self._step(link.caller, link.index, f"calls {target[2]}()")]
        return [self._step(link.caller, link.index, f"calls {name}()")]

    def _tail(self, check: Check, origin: Origin, use: Use | None) -> list[ChainStep]:
        fid, index = origin.fid, origin.index
        if origin.allocator:
            return [self._step(fid, index, self._alloc_note(check, origin.allocator, origin.text))]
        steps = [self._step(fid, index, f"passes {origin.text} to {self._call_name(fid, index)}()")]
        if use is None:
            return steps
        for hop_fid, hop_index in use.hops:
            steps.append(self._step(hop_fid, hop_index, f"passes the mask on to {self._call_name(hop_fid, hop_index)}()"))
        steps.append(self._step(use.fid, use.index,
                                self._alloc_note(check, use.allocator, "the mask passed down")))
        return steps

    def _alloc_note(self, check: Check, allocator: str, mask: str) -> str:
        if check.id in ("nofs-recursion", "nofs-inconsistent"):
            return f"{allocator}() with {mask}: __GFP_FS and direct reclaim, no memalloc_nofs scope open"
        if check.id == "nofs-redundant":
            return f"{allocator}() with {mask} inside the scope"
        return f"{allocator}() with {mask}"
