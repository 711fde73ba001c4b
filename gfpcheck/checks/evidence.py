"""Findings with their evidence: the message, and the chain as steps a reader can follow.

Each step says what it contributes: where the handle is taken or the scope
opened, which call leads on (and how an indirect call was resolved), where a
callback was bound, where a mask was passed down, and the allocation itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..facts import CALL_NAME, CALL_RESULT, PARAM_NAME, PARAM_TYPE
from ..findings import ChainStep, Covered, Finding
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
from ..propagate.witness import BELIEF, CLEAN, HELD, SCOPE, Chain, Context, Link
from ..ruleset import CLEAN_ENTRY_KEY, Family
from .catalog import Check

if TYPE_CHECKING:
    from .engine import Analysis, Engine, Verdict


# Confidence limits: calls on the chain, and subsystems (fs/btrfs, security, ...) it visits.
HIGH_CALLS, HIGH_SUBSYSTEMS = 8, 3
MEDIUM_CALLS, MEDIUM_SUBSYSTEMS = 16, 4
# A chain longer than this from its source is low confidence even where its
# context is evident further down: it runs through the scheduler, printk, audit
# or netfilter on the way, under conditions the analysis does not see.
LONGEST_CALLS = 48
CONFIDENCE_ORDER = {"low": 0, "medium": 1, "high": 2}
# What a chain's first step says when the context shows up in the source function
# only below the call the chain leaves by: a loop's earlier pass, where the mask
# is most often another branch's (erofs's block device bio_alloc(GFP_NOIO) against
# its file-backed path).  Such a finding has low confidence.
UNSEEN_SOURCE = "the context starts below the call, on an earlier pass of a loop"


class Evidence:
    def __init__(self, analysis: Analysis, engine: Engine):
        self.a = analysis
        self.engine = engine
        self.program = analysis.program
        self.rules = analysis.rules
        self.space = analysis.effects.space
        self._entry_fields: dict[tuple[str, int], tuple[str, str] | None] = {}

    # -- places ------------------------------------------------------------------
    def _step(self, fid: int, index: int | None, note: str, kind: str = "call") -> ChainStep:
        program = self.program
        function = program.functions[fid]
        if index is None:
            line, column = function.line, function.column
        else:
            call = self.program.calls(fid)[index]
            line, column = call[2], call[3]
        return ChainStep(function.name, program.path(fid), line, column, note, kind)

    def _call_name(self, fid: int, index: int) -> str:
        return self.program.calls(fid)[index][CALL_NAME] or "(indirect call)"

    def _name(self, fid: int) -> str:
        return self.program.functions[fid].name

    # -- findings ------------------------------------------------------------------
    def finding(self, verdict: Verdict, chain: Chain | None) -> Finding:
        check, origin, use, kind = verdict.check, verdict.origin, verdict.use, verdict.context
        if verdict.at is not None:
            return self._local_finding(verdict)
        program = self.program
        function = program.functions[origin.fid]
        call = program.calls(origin.fid)[origin.index]
        allocator = use.allocator if use is not None else (origin.allocator or call[CALL_NAME])
        gfp = origin.text if origin.arg >= 0 else f"{origin.text} (implied by {origin.allocator}())"
        steps: list[ChainStep] = []
        counted: list[ChainStep] = []  # the steps from the nearest place the context is evident
        seen = True  # whether the chain's first step shows where its context starts
        if chain is not None:
            source, seen = self._source(chain, kind, chain.links[0].index if chain.links else origin.index)
            per_link = self._links(chain, origin.fid)
            start = self._evident_from(chain, kind, origin)
            steps = [source, *(step for link_steps in per_link for step in link_steps)]
            counted = ([source] if start == 0 else []) + [step for link_steps in per_link[start:]
                                                         for step in link_steps]
        tail = self._tail(check, origin, use)
        steps.extend(tail)
        counted.extend(tail)
        confidence = _capped(self._confidence(chain, counted, chain.links[start:] if chain is not None else ()),
                             steps, seen)
        message = self._message(check, origin, use, chain, allocator, kind)
        believer = self._unheld_believer(check, kind, chain, origin)
        if believer is not None:
            where = message_where = f"{allocator}()"
            if use is not None:
                message_where = f"{where} in {self._name(use.fid)}()"
            elif origin.fid != chain.source:
                message_where = f"{where} in {function.name}()"
            step = self._step(believer.fid, believer.index, "")
            message = check.believer_message.format(mask=believer.text, function=step.function,
                                                    where=message_where, unsafe=gfp)
            place = steps[-1]
            return Finding(rule=check.id, severity=check.severity, file=step.file, line=step.line,
                           column=step.column, function=step.function,
                           allocator=believer.allocator or self._call_name(believer.fid, believer.index),
                           gfp=believer.text, message=message, chain=tuple(steps), confidence=confidence,
                           covers=(Covered(place.file, place.line, place.function, allocator, gfp),))
        return Finding(
            rule=check.id, severity=check.severity, file=program.path(origin.fid), line=call[2],
            column=call[3], function=function.name, allocator=allocator, gfp=gfp, message=message,
            chain=tuple(steps), confidence=confidence,
        )

    def _unheld_believer(self, check: Check, kind: Context, chain: Chain | None, origin: Origin) -> Origin | None:
        """The mask the chain's belief starts from, when the check reports such findings
        at the believer, the mask speaks for the family (GFP_NOFS, not a driver's
        GFP_NOIO kept for reasons of its own), no path to it holds the family's
        context, and none comes from reclaim or writeback."""
        if not check.believer_message or kind.what != BELIEF or chain is None:
            return None
        fid = chain.source
        found = self._belief_origin(self.rules.family_by_name[kind.family], fid,
                                    chain.links[0].index if chain.links else origin.index)
        if found is None or self.engine.owner(found.mask) != kind.family or self.engine.from_reclaim(fid):
            return None
        family = self.space.family_index[kind.family]
        states = self.engine.use_states(found, None, self.a.contexts.reached.get(fid, 0))
        if any(self.space.held(s, family) for s in st.members(states)):
            return None
        return found

    def _local_finding(self, verdict: Verdict) -> Finding:
        """A finding proved inside one function, reported at `verdict.at`: the chain is
        the call that starts it and the place it goes wrong (a scope saved, then a
        return that skips its restore)."""
        origin = verdict.origin
        program = self.program
        function = program.functions[origin.fid]
        line, column = verdict.at
        api = origin.allocator
        variable = program.calls(origin.fid)[origin.index][CALL_RESULT]
        kind = verdict.context.family
        steps = (self._step(origin.fid, origin.index, f"{api}() opens a {kind} scope, saving the flags in "
                                                      f"'{variable}'  [rules: scopes]", "scope"),
                 ChainStep(function.name, program.path(origin.fid), line, column,
                           f"returns with the {kind} scope still open: no restore of '{variable}' on this path",
                           "return"))
        message = verdict.check.message.format(where=f"{api}()", kind=kind, function=function.name, mask="",
                                               held="", taken="", believer="")
        return Finding(rule=verdict.check.id, severity=verdict.check.severity, file=program.path(origin.fid),
                       line=line, column=column, function=function.name, allocator=api, gfp="", message=message,
                       chain=steps, confidence="high")

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
        indirect = any(t.kind == T_INDIRECT and t.confidence != DISPATCHED for t in targets)
        if calls <= HIGH_CALLS and subsystems <= HIGH_SUBSYSTEMS and not indirect:
            return "high"
        if calls <= MEDIUM_CALLS and subsystems <= MEDIUM_SUBSYSTEMS:
            return "medium"
        return "low"

    def _name_only(self, link: Link) -> bool:
        if link.binding is not None or link.index is None:
            return False
        target = self.program.targets(link.caller)[link.index]
        return target.kind == T_INDIRECT and target.confidence == NAME_ONLY

    def _evident_from(self, chain: Chain, kind: Context, origin: Origin) -> int:
        """How many of the chain's calls lie above the deepest function where its
        context is evident on its own (a handle parameter or a begin call, a scope
        opened, a NOFS mask written): 0 when only the chain's source shows it."""
        if kind.what == CLEAN or not chain.links:
            return 0
        describe = self._describer(kind)
        places = [(link.caller, link.index) for link in chain.links] + [(origin.fid, origin.index)]
        for start in range(len(places) - 1, 0, -1):
            fid, until = places[start]
            if describe(fid, until) is not None:
                return start
        return 0

    def _describer(self, kind: Context):
        """The function that finds where this kind of context starts in a function:
        (fid, until call index) -> its step, or None."""
        family = self.rules.family_by_name[kind.family]
        describe = {HELD: self._held_source, BELIEF: self._belief_source, SCOPE: self._scope_source}[kind.what]
        return lambda fid, until: describe(family, fid, until)

    def _message(self, check: Check, origin: Origin, use: Use | None, chain: Chain | None, allocator: str,
                 kind: Context) -> str:
        where = f"{allocator}()"
        if use is not None and (use.fid != origin.fid or use.hops):
            where = f"{allocator}() in {self._name(use.fid)}(), reached by passing {origin.text} to " \
                    f"{self._call_name(origin.fid, origin.index)}(),"
        source = self._name(chain.source) if chain is not None else None
        taken = ""
        held = ""
        if kind.what == HELD:
            family = self.rules.family_by_name[kind.family]
            held = self.held_name(chain, family)
            field = self._entry_field(family, chain.source) if source else None
            if source and chain.source in self.program.handle_params:
                taken = f" (a parameter of {source}())"
            elif field is not None:
                taken = f" ({source}() implements {field[0]}.{field[1]})"
            elif source:
                taken = f" (taken in {source}())"
        return check.message.format(where=where, mask=origin.text, held=held, taken=taken,
                                    believer=f"{source}()" if source else "a caller",
                                    function=self._name(origin.fid), kind="")

    def held_name(self, chain: Chain | None, family: Family) -> str:
        """What is held, as specifically as the chain says: `a btrfs transaction`."""
        generic = family.held
        if chain is None:
            return generic
        handle = self.program.handle_params.get(chain.source)
        if handle is not None and self.space.held(chain.source_state, self.space.family_index[family.name]) == 0:
            return f"a {self.rules.handle_types.get(handle[1], generic.removeprefix('a '))}"
        first = chain.links[0].index if chain.links else None
        begin = self._begin_before(family, chain.source, first)
        target = self.program.targets(chain.source)[begin] if begin is not None else None
        if target is not None and target.kind == T_BEGIN:
            handle_type = self.rules.begin[target.api].handle_type
            name = self.rules.handle_types.get(handle_type)
            return f"a {name}" if name else generic
        return generic

    # -- chain pieces ---------------------------------------------------------------
    def _source(self, chain: Chain, kind: Context, until: int) -> tuple[ChainStep, bool]:
        """The step where the chain's context starts, at or before call `until` of
        its source function, and whether it was found.
        When the first call hands a callback to a function that invokes it, the
        context may start inside that function, before the invocation: both
        places are searched, in that order.  When neither has it, the context
        reaches the call only from below it, on an earlier pass of a loop
        (UNSEEN_SOURCE)."""
        fid = chain.source
        if kind.what == CLEAN:
            return self._clean_source(fid), True
        places = [(fid, until)]
        if chain.links and chain.links[0].binding is not None:
            site = chain.links[0].binding
            invoke = self._invocation(site)
            if invoke is not None:
                places.append((site.callee, invoke))
        describe = self._describer(kind)
        for place, until in places:
            step = describe(place, until)
            if step is not None:
                return step, True
        entered = f"entered with {self.space.describe(chain.source_state)}; {UNSEEN_SOURCE}"
        return self._step(fid, None, entered, "entry"), False

    def reach(self, chain: Chain, kind: Context, fid: int) -> tuple[tuple[ChainStep, ...], str]:
        """The steps by which a kind of context reaches function `fid` on entry, from
        where it starts to the call into `fid`, and how much they are trusted
        (`gfpcheck why`).  A chain with no calls starts in `fid` itself: a handle
        parameter, an ops entry; its calls do not count, only how it is entered."""
        source, seen = self._source(chain, kind, chain.links[0].index if chain.links else -1)
        steps = [source, *(step for link_steps in self._links(chain, fid) for step in link_steps)]
        return tuple(steps), _capped(self._confidence(chain, steps, chain.links), steps, seen)

    def _clean_source(self, fid: int) -> ChainStep:
        """The step where a clean chain starts: a system call, or another clean entry."""
        program = self.program
        if fid in program.entries:
            return self._step(fid, None, "system call entry: nothing held, no scope, no NOFS caller  "
                                         "[rules: entry_macros]", "entry")
        resolver = program.resolver
        for struct, member in self.rules.entry_contexts.clean:
            if fid in resolver.by_member.get((resolver.types.canonical(struct), member), ()):
                return self._step(fid, None, f"implements {struct}.{member}, entered with nothing held, no scope, "
                                             f"no NOFS caller  [rules: entry_contexts.clean]", "entry")
        if fid in resolver.by_key.get(CLEAN_ENTRY_KEY, ()):
            return self._step(fid, None, "registered as an init or probe routine: entered with nothing held, "
                                         "no scope, no NOFS caller  [rules: entry_contexts.clean_macros]", "entry")
        return self._step(fid, None, "handed to an API that calls it with nothing held, no scope, no NOFS "
                                     "caller  [rules: entry_contexts.clean_callbacks]", "entry")

    def _held_source(self, family: Family, fid: int, until: int) -> ChainStep | None:
        program = self.program
        handle = program.handle_params.get(fid)
        if handle is not None and self.rules.handle_family.get(handle[1]) == family.name:
            param = program.functions[fid].params[handle[0]]
            name = self.rules.handle_types.get(handle[1], "transaction handle")
            return self._step(fid, None, f"holds a {name}: parameter '{param[PARAM_NAME]}' is "
                                         f"{param[PARAM_TYPE]} *  [rules: handle_types]", "held")
        field = self._entry_field(family, fid)
        if field is not None:
            return self._step(fid, None, f"implements {field[0]}.{field[1]}, which runs with {family.held} held  "
                                         f"[rules: families.{family.name}.entries]", "held")
        begin = self._begin_before(family, fid, until)
        if begin is None:
            return None
        target = program.targets(fid)[begin]
        if target.kind == T_BEGIN:
            return self._step(fid, begin, f"{target.api}() {family.begins}  [rules: begin]", "held")
        return self._step(fid, begin, f"{self._call_name(fid, begin)}() returns with {family.held} held  "
                                      f"[derived: function summary]", "held")

    def _entry_field(self, family: Family, fid: int) -> tuple[str, str] | None:
        """The ops field (struct, field) through which the family's rules make `fid` an entry."""
        key = (family.name, fid)
        if key not in self._entry_fields:
            resolver = self.program.resolver
            self._entry_fields[key] = next(
                ((struct, member) for struct, member in family.entries
                 if fid in resolver.by_member.get((resolver.types.canonical(struct), member), ())), None)
        return self._entry_fields[key]

    def _belief_origin(self, family: Family, fid: int, until: int) -> Origin | None:
        """The last mask at or before call `until` of `fid` that makes the family believed."""
        sites = sorted(i for i, families in self.a.origins.belief_sites.get(fid, {}).items()
                       if i <= until and family.name in families)
        if not sites:
            return None
        return next(o for o in self.a.origins.by_function[fid] if o.index == sites[-1])

    def _belief_source(self, family: Family, fid: int, until: int) -> ChainStep | None:
        found = self._belief_origin(family, fid, until)
        if found is None:
            return None
        index = found.index
        what = f"{found.allocator}() with {found.text}" if found.allocator else \
            f"passes {found.text} to {self._call_name(fid, index)}()"
        return self._step(fid, index, f"{what}: {family.mask} is believed from here on", "belief")

    def _scope_source(self, family: Family, fid: int, until: int) -> ChainStep | None:
        opened = self._scope_before(family, fid, until)
        if opened is not None:
            return self._step(fid, opened[0], opened[1], "scope")
        handle = self.program.handle_params.get(fid)
        implied = self.a.effects.implied.get(handle[1]) if handle is not None else None
        if implied is None:
            return None
        kinds = [k for k, d in zip(self.space.scope_kinds, implied.scopes, strict=True) if d > 0 and k in family.scopes]
        if not kinds:
            return None
        name = self.rules.handle_types.get(handle[1], "transaction handle")
        param = self.program.functions[fid].params[handle[0]][PARAM_NAME]
        return self._step(fid, None, f"holds a {name} (parameter '{param}'), and the API that begins one "
                                     f"opens a memalloc_{kinds[0]} scope  [derived: begin API summary]", "scope")

    def _invocation(self, site) -> int | None:
        """Where the function a callback was passed to calls that parameter."""
        return next((i for i, t in enumerate(self.program.targets(site.callee))
                     if t.kind == T_PARAM and t.param == site.arg), None)

    def _begin_before(self, family: Family, fid: int, until: int | None) -> int | None:
        """The last call before `until` that takes the family's context (a begin API
        or a wrapper of one)."""
        effects = self.a.effects
        index = self.space.family_index[family.name]
        found = None
        for at, target in enumerate(self.program.targets(fid)):
            if until is not None and at > until:
                break
            if target.kind == T_BEGIN and effects.family_of(target) == family.name:
                found = at
            elif target.kind == T_FUNC and any(_takes(effects.summaries.get(c, st.IDENTITY), index)
                                               for c in target.ids):
                found = at
        return found

    def _scope_before(self, family: Family, fid: int, until: int) -> tuple[int, str] | None:
        effects = self.a.effects
        found = None
        for index, target in enumerate(self.program.targets(fid)):
            if index > until:
                break
            if target.kind == T_SCOPE and self.rules.scopes[target.api].op == "open" \
                    and self.rules.scopes[target.api].kind in family.scopes:
                found = (index, f"{target.api}() opens a {self.rules.scopes[target.api].kind} scope  [rules: scopes]")
            elif target.kind in (T_FUNC, T_BEGIN) and any(
                    effects.opens_scope(effects.summaries.get(c, st.IDENTITY)) for c in target.ids):
                found = (index, f"{self._call_name(fid, index)}() opens a memalloc scope that stays open "
                                f"after it returns  [derived: function summary]")
        return found

    def _links(self, chain: Chain, last: int) -> list[list[ChainStep]]:
        """The steps of each call on the chain; `last` is the function the last call reaches."""
        callees = [link.caller for link in chain.links[1:]] + [last]
        return [self._link(link, callee) for link, callee in zip(chain.links, callees)]

    def _link(self, link: Link, callee: int | None) -> list[ChainStep]:
        program = self.program
        target = program.targets(link.caller)[link.index]
        if link.binding is not None:
            site = link.binding
            bound = self._name(site.function)
            param = program.functions[site.callee].params[site.arg][PARAM_NAME]
            steps = [self._step(link.caller, link.index,
                                f"passes {bound} to {self._name(site.callee)}() as '{param}'", "bind")]
            invoke = self._invocation(site)
            if invoke is not None:
                steps.append(self._step(site.callee, invoke,
                                        f"calls '{param}', bound to {bound} by that caller", "invoke"))
            return steps
        name = self._name(callee) if callee is not None else self._call_name(link.caller, link.index)
        if target.kind == T_INDIRECT:
            how = {DISPATCHED: "rules: dispatchers", CONFIDENT: "typed member"}.get(target.confidence,
                                                                                    "member name only")
            return [self._step(link.caller, link.index, f"calls {name}() through {target.via}  [{how}]", "indirect")]
        if target.kind in (T_BEGIN, T_END):
            return [self._step(link.caller, link.index, f"calls {target.api}()")]
        return [self._step(link.caller, link.index, f"calls {name}()")]

    def _tail(self, check: Check, origin: Origin, use: Use | None) -> list[ChainStep]:
        fid, index = origin.fid, origin.index
        if origin.allocator:
            return [self._step(fid, index, self._alloc_note(check, origin.allocator, origin.text), "allocation")]
        steps = [self._step(fid, index, f"passes {origin.text} to {self._call_name(fid, index)}()", "mask")]
        if use is None:
            return steps
        for hop_fid, hop_index in use.hops:
            steps.append(self._step(hop_fid, hop_index,
                                    f"passes the mask on to {self._call_name(hop_fid, hop_index)}()", "mask"))
        steps.append(self._step(use.fid, use.index,
                                self._alloc_note(check, use.allocator, "the mask passed down"), "allocation"))
        return steps

    def _alloc_note(self, check: Check, allocator: str, mask: str) -> str:
        return f"{allocator}() with {mask}{check.alloc_note}"


def _capped(confidence: str, steps: list[ChainStep], seen: bool) -> str:
    """Low past LONGEST_CALLS calls below the source's step, and when the context
    shows up only on a loop's earlier pass (mostly another branch's mask: blockdev
    or file I/O); else `confidence`."""
    return "low" if len(steps) > LONGEST_CALLS + 1 or not seen else confidence


def _takes(summary: st.Effect, family: int) -> bool:
    """Whether a function's summary takes the context of the family at this index."""
    return bool(summary.held) and summary.held[family] > 0
