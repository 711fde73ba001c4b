"""What each call does to the allocation context.

The rules name the primitive APIs (memalloc_nofs_save/restore, transaction
begin/end).  Every other function gets a summary, computed bottom-up from
its own flow: a function that opens a scope it does not close (jbd2's
start_this_handle) opens it in its caller; one that takes a handle and
returns it (a wrapper such as __ext4_journal_start_sb) takes a handle in its
caller.  A summary is read at the function's success return (`return 0;`,
`return handle;`; see flow._final), never at `return -ENOMEM;` or
`return ERR_PTR(err);`; the branch where a begin or open failed
(`if (IS_ERR(trans))`, `if (err)`) is set aside even when it reaches that
return, and the remaining paths must agree.  A failure path that leaves
something open, or a correlation the flow cannot see
(`if (start) begin(); ... if (start) end();`), never decides what callers see.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable

from ..link import T_BEGIN, T_END, T_FUNC, T_SCOPE, T_STOP, Program, Target, subsystem
from ..ruleset import Ruleset
from . import state as st
from .flow import Failure, Transfer, run_flow
from .flowtree import (
    F_BREAK,
    F_CALL,
    F_GOTO,
    F_IF,
    F_LOOP,
    F_RETURN,
    F_SWITCH,
    RETURN_SUCCESS,
    TEST_ERR,
    TEST_NOT,
    TEST_NOT_ERR,
    TEST_TRUTHY,
    aliases,
    build_tree,
    items,
    returns_by_call,
    tests,
    tracked_variables,
)
from .origins import Origins
from .paths import EQ, feature, is_feature, variables

_CONTEXT_APIS = frozenset((T_SCOPE, T_BEGIN, T_END, T_STOP))  # calls that always change the context
_MAX_REVISITS = 8  # a summary in a recursive cycle settles long before this


class Effects:
    """Per call site effects, function summaries and the effect of entering a function
    (a handle parameter, an ops field whose implementations start in a context)."""

    def __init__(self, program: Program, rules: Ruleset, origins: Origins):
        self.program = program
        self.rules = rules
        self.origins = origins
        self.space = space = st.StateSpace([f.name for f in rules.families], rules.scope_kinds,
                                           [f.name for f in rules.families if not f.through_ops],
                                           {f.name: f.covers for f in rules.families if f.covers})
        # depths that can move both ways when a summary is measured
        # (scopes it opens are unsure until a sure one opens: see _measure)
        self._neutral = space.id(space.state(space.make({f: 1 for f in space.families},
                                                        {k: 1 for k in space.scope_kinds}))
                                 ._replace(unsure=(True,) * len(space.scope_kinds)))
        self._trees: dict[int, tuple] = {}
        self._tracked: dict[int, frozenset[str]] = {}
        self._tested_params: dict[int, frozenset[str]] = {}
        self._tests_feature: dict[int, bool] = {}
        self._feature_facts: dict[str, tuple] = {}
        self._feature_homes: dict[str, set[str]] | None = None
        # (handle type, subsystem) -> per scope kind: some begin API there opens it on every success path
        self._sure_starts: dict[tuple[str, str], tuple[bool, ...]] = {}
        self.summaries: dict[int, st.Effect] = {}
        self._compute_summaries()
        self.implied = self._implied_scopes()
        self.entered = self._entry_effects()
        self._entry_cache: dict[tuple[int, int], int] = {}
        self._plain: dict[int, bool] = {}

    # -- flow of one function ---------------------------------------------------
    def tree(self, fid: int) -> tuple:
        tree = self._trees.get(fid)
        if tree is None:
            tree = build_tree(self.program.functions[fid], len(self.program.calls(fid)), self.rules)
            self._trees[fid] = tree
        return tree

    def tracked(self, fid: int) -> frozenset[str]:
        """The variables whose values the function's paths remember (flowtree.tracked_variables)."""
        found = self._tracked.get(fid)
        if found is None:
            found = self._tracked[fid] = tracked_variables(self.tree(fid))
        return found

    def null_handles(self, fid: int) -> dict[str, Callable[[int], int]]:
        """For a function with a handle parameter that a condition tests: below the
        branch where it is NULL, no handle of its family is held (`if (trans) {
        ...; return; }` leaves the rest of the function to callers without one)."""
        handle = self.program.handle_params.get(fid)
        if handle is None:
            return {}
        if not self.program.functions[fid].flow:
            return {}
        tree = self.tree(fid)
        names = aliases(tree, self.program.functions[fid].params[handle[0]][0]) & tests(tree).keys()
        if not names:
            return {}
        family = self.space.family_index[self.rules.handle_family.get(handle[1], "fs")]
        return dict.fromkeys(sorted(names), lambda mask: self.space.released(mask, family))

    def tests_feature(self, fid: int) -> bool:
        """Whether a condition of the function is a feature test (rules: features)."""
        found = self._tests_feature.get(fid)
        if found is None:
            flow = self.program.functions[fid].flow
            found = any(name.encode() in flow for name in self.rules.feature_tests) and any(
                is_feature(name) for name in tests(self.tree(fid)))
            self._tests_feature[fid] = found
        return found

    def feature_facts(self, home: str) -> tuple:
        """What the features' tests are for objects of `home` (paths.Env facts): false
        where the subsystem binds no function to the feature's ops struct, or is not
        one of those the feature is only in (for a context taken somewhere: `home`
        not ""), or the configuration lacks its option (always)."""
        found = self._feature_facts.get(home)
        if found is None:
            if self._feature_homes is None:
                resolver = self.program.resolver
                self._feature_homes = {
                    struct: {self.home(fid) for (owner, _member), fids in resolver.by_member.items()
                             if owner == resolver.types.canonical(struct) for fid in fids}
                    for struct in set(self.rules.features.values())}
            config = self.rules.kconfig
            found = tuple(sorted([(feature(test), EQ, "0") for test, struct in self.rules.features.items()
                                  if home and home not in self._feature_homes[struct]]
                                 + [(feature(test), EQ, "0") for test, homes in self.rules.features_only_in.items()
                                    if home and home not in homes]
                                 + [(feature(test), EQ, "0") for test, symbol in self.rules.features_config.items()
                                    if config is not None and config.value(symbol) not in ("y", "m")]))
            self._feature_facts[home] = found
        return found

    def tested_params(self, fid: int) -> frozenset[str]:
        """The parameters whose value decides something in the function: a condition
        or switch tests them and what it guards holds an allocation, a mask written,
        a call that changes the context, or a way out of the function before one."""
        found = self._tested_params.get(fid)
        if found is None:
            found = frozenset()
            function = self.program.functions[fid]
            if function.flow and function.params and fid in self.program.detailed:
                found = self._deciding(fid, frozenset(p[0] for p in function.params if p[0]))
            self._tested_params[fid] = found
        return found

    def _deciding(self, fid: int, params: frozenset[str]) -> frozenset[str]:
        weighty = {origin.index for origin in self.origins.by_function.get(fid, ())}
        for index, target in enumerate(self.program.targets(fid)):
            if target.kind in _CONTEXT_APIS or (target.kind == T_FUNC and any(c in self.summaries
                                                                                for c in target.ids)):
                weighty.add(index)
        if not weighty:
            return frozenset()

        def decides(block: tuple) -> bool:
            for item in block:
                op = item[0]
                if op == F_CALL and item[1] in weighty:
                    return True
                if op in (F_RETURN, F_GOTO, F_BREAK):
                    return True  # leaving early skips what follows
                if op == F_IF and (decides(item[1]) or decides(item[2])):
                    return True
                if op in (F_LOOP, F_SWITCH) and decides(item[1]):
                    return True
            return False

        out: set[str] = set()
        for item in items(self.tree(fid)):
            if item[0] == F_IF:
                tested = variables(item[5]) & params
                if tested and (decides(item[1]) or decides(item[2])):
                    out |= tested
            elif item[0] == F_SWITCH and item[2] in params and decides(item[1]):
                out.add(item[2])
        return frozenset(out)


    def family_of(self, target: tuple) -> str:
        """The family a begin or end API's context belongs to."""
        name = target.api
        return self.rules.begin[name].family if target.kind == T_BEGIN else self.rules.end_family[name]

    def site_effects(self, fid: int, index: int, summary: bool) -> tuple[st.Effect, ...] | None:
        """Alternative effects of call `index` of `fid`; None when it changes nothing.

        In context mode (`summary` false) a call that writes an explicit mask
        clearing a family's unsafe bits also makes that family's context believed
        from there on; belief never flows back to callers, so summaries leave it out."""
        program = self.program
        space = self.space
        target = program.targets(fid)[index]
        kind = target.kind
        effects: tuple[st.Effect, ...] | None = None
        if kind == T_SCOPE:
            api = self.rules.scopes[target.api]
            effects = (space.effect(scopes={api.kind: 1 if api.op == "open" else -1}),)
        elif kind == T_BEGIN or kind == T_END:
            held = {self.family_of(target): 1 if kind == T_BEGIN else -1}
            bodies = [self.summaries.get(callee, st.IDENTITY) for callee in target.ids] or [st.IDENTITY]
            effects = tuple(sorted({space.normal_effect(space.effect(held)._replace(scopes=b.scopes,
                                                                                   unsure=b.unsure))
                                    for b in bodies}))
        elif kind == T_FUNC:
            found = {self.summaries.get(callee, st.IDENTITY) for callee in target.ids}
            if found != {st.IDENTITY}:
                effects = tuple(sorted(found))
        if not summary and effects is not None and any(e.held and max(e.held) > 0 for e in effects):
            home = self.home(fid)
            effects = tuple(e._replace(home=home) if e.held and max(e.held) > 0 else e for e in effects)
        if not summary:
            believed = self.origins.belief_sites.get(fid, {}).get(index)
            if believed:
                belief = space.effect(belief=believed).belief
                effects = tuple(space.normal_effect(e._replace(belief=belief)) for e in (effects or (st.IDENTITY,)))
        return effects

    def transfer(self, fid: int, summary: bool, only: Callable[[Target, tuple[st.Effect, ...]],
                                                             tuple[st.Effect, ...] | None] | None = None) -> Transfer:
        """The flow's transfer function for `fid`: each call's effects on a set of
        states (site_effects), or what `only` keeps of them, given the call's target."""
        cache: dict[int, tuple[st.Effect, ...] | None] = {}
        targets = self.program.targets(fid)
        space = self.space

        def transfer(index: int, mask: int) -> int:
            if targets[index].kind == T_STOP:
                return 0  # the path ends at a call that never returns
            if index not in cache:
                effects = self.site_effects(fid, index, summary)
                if only is not None and effects is not None:
                    effects = only(targets[index], effects)
                cache[index] = effects
            effects = cache[index]
            return mask if effects is None else space.apply_effects(effects, mask)
        return transfer

    def failure(self, fid: int) -> Failure:
        """Which branch of `if (<test of v>)` is the one where the call that set v failed."""
        program = self.program

        def failure(test: str, index: int) -> str | None:
            target = program.targets(fid)[index]
            if target.kind == T_BEGIN:
                result = self.rules.begin[target.api].result
                if result == "none":
                    return None  # it cannot fail
                returns_handle = result == "handle"
            elif target.kind == T_FUNC and any(c in self.summaries for c in target.ids):
                returns_handle = any(program.functions[c].returns_pointer for c in target.ids)
            else:
                return None
            if test == TEST_ERR:
                return "then"
            if test == TEST_NOT_ERR:
                return "else"
            if test == TEST_NOT:
                return "then" if returns_handle else "else"
            if test == TEST_TRUTHY:
                return "else" if returns_handle else "then"
            return None
        return failure

    def is_plain(self, fid: int) -> bool:
        """No call of the function changes the context and no condition drops its
        handle: every call runs in the entry states."""
        plain = self._plain.get(fid)
        if plain is None:
            plain = not self._changes_context(fid, summary=False) and not self.null_handles(fid)
            self._plain[fid] = plain
        return plain

    def _changes_context(self, fid: int, summary: bool) -> bool:
        """Whether any call of the function has an effect or never returns.  A function
        that only makes plain calls is answered from its callees, without decoding."""
        program = self.program
        summaries = self.summaries.keys()
        if fid not in program.detailed:
            return not summaries.isdisjoint(program.callees[fid])
        if not summary and fid in self.origins.belief_sites:
            return True
        for target in program.targets(fid):
            kind = target.kind
            if kind in _CONTEXT_APIS or (kind == T_FUNC and not summaries.isdisjoint(target.ids)):
                return True
        return False

    # -- entry ------------------------------------------------------------------------
    def _entry_effects(self) -> dict[int, tuple[dict[str, int], dict[str, bool]]]:
        """What entering each function means, for those where it means something:
        (held per family, scopes per kind, each saying whether it is unsure:
        State.unsure).  A handle parameter holds the handle's family, with the
        scopes its begin APIs open; an implementation of an ops field the rules
        name as an entry of a family starts in that family's context."""
        rules = self.rules
        out: dict[int, tuple[dict[str, int], dict[str, bool]]] = {}
        for fid, (_index, handle) in self.program.handle_params.items():
            implied = self.implied.get(handle, st.IDENTITY)
            unsure = self._unsure_param_scopes(handle, fid) if implied.scopes else ()
            # the function that opens the scope itself (start_this_handle()) runs
            # before it is open: it is not entered in it
            opens = self.summaries.get(fid, st.IDENTITY).scopes
            scopes = {kind: unsure[k] for k, (kind, depth) in enumerate(zip(self.space.scope_kinds, implied.scopes))
                      if depth > 0 and not (opens and opens[k] > 0)}
            out[fid] = ({rules.handle_family.get(handle, "fs"): 1}, scopes)
        for family, fids in self.program_entries().items():
            for fid in fids:
                held, scopes = out.get(fid, ({}, {}))
                out[fid] = ({**held, family: 1}, scopes)
        return out

    def program_entries(self) -> dict[str, tuple[int, ...]]:
        """For each family, the functions bound to an ops field it names as an entry."""
        resolver = self.program.resolver
        out: dict[str, tuple[int, ...]] = {}
        for family in self.rules.families:
            found: set[int] = set()
            for struct, member in family.entries:
                found.update(resolver.by_member.get((resolver.types.canonical(struct), member), ()))
            if found:
                out[family.name] = tuple(sorted(found))
        return out

    def home(self, fid: int) -> str:
        """The subsystem of a function (fs/btrfs), where a context it takes is at home."""
        return subsystem(self.program.path(fid))

    def entry(self, fid: int, state: int) -> int:
        """The state inside a function entered in `state` (see _entry_effects)."""
        key = (fid, state)
        found = self._entry_cache.get(key)
        if found is None:
            entered = self.entered.get(fid)
            if entered is None:
                found = state
            else:
                space = self.space
                current = space.state(state)
                held, scopes = entered
                opened = tuple(max(d, 1) if k in scopes else d
                               for k, d in zip(space.scope_kinds, current.scopes, strict=True))
                unsure = st.opened_unsure(current.scopes, opened, current.unsure,
                                          tuple(scopes.get(k, False) for k in space.scope_kinds))
                found = space.taken_in(space.id(current._replace(
                    held=tuple(max(d, 1) if f in held else d
                               for f, d in zip(space.families, current.held, strict=True)),
                    scopes=opened, unsure=unsure)), self.home(fid))
            self._entry_cache[key] = found
        return found

    # -- summaries ------------------------------------------------------------------------
    def _compute_summaries(self) -> None:
        """Summaries of every function that can reach a scope or transaction API: from
        the functions that call one, a changed summary sends its callers back to be
        measured again, until nothing changes."""
        program = self.program
        pred = program.graph.pred
        queue: deque[int] = deque()
        queued: set[int] = set()
        for fid in sorted(program.detailed):
            if any(t.kind in (T_SCOPE, T_BEGIN, T_END) for t in program.targets(fid)):
                queue.append(fid)
                queued.add(fid)
        visits: dict[int, int] = defaultdict(int)
        while queue:
            fid = queue.popleft()
            queued.discard(fid)
            visits[fid] += 1
            effect = self._measure(fid)
            if effect == self.summaries.get(fid, st.IDENTITY) or visits[fid] > _MAX_REVISITS:
                continue
            if effect == st.IDENTITY:
                self.summaries.pop(fid, None)
            else:
                self.summaries[fid] = effect
            for caller in sorted(pred[fid]):
                if caller not in queued:
                    queue.append(caller)
                    queued.add(caller)

    def _measure(self, fid: int) -> st.Effect:
        """Net effect of a function on its caller's context (see module docstring)."""
        if not self._changes_context(fid, summary=True):
            return st.IDENTITY
        function = self.program.functions[fid]
        space = self.space
        result = run_flow(self.tree(fid), self.program.calls(fid), st.single(self._neutral),
                          self.transfer(fid, summary=True), self.failure(fid), mark_failures=True,
                          void=function.return_type == "void" and not function.returns_pointer,
                          mark_failed=space.mark_failed, tracked=self.tracked(fid))
        changes = set()
        unsure = [False] * len(space.scope_kinds)
        for sid in st.members(result.final):
            state = space.state(sid)
            if not state.failed:
                changes.add((tuple(d - 1 for d in state.held), tuple(d - 1 for d in state.scopes)))
                for k, flag in enumerate(state.unsure):
                    unsure[k] = unsure[k] or flag
        effect = _combine(changes, space)
        if not any(d > 0 for d in effect.scopes):
            return effect
        # A scope the success path opens that another success return does not, where
        # that return hands back what a call in it made: opened on some paths only
        # (ext4's `return ext4_get_nojournal();`, a handle with no journal).  A
        # return of a variable (jbd2's nested handle, `return handle;`) is a handle
        # whose scope its first start opened.
        by_call = returns_by_call(self.tree(fid))
        for number, mask in result.returns.items():
            if result.kinds[number] != RETURN_SUCCESS or number not in by_call:
                continue
            for sid in st.members(mask):
                state = space.state(sid)
                if state.failed:
                    continue
                for k, d in enumerate(state.scopes):
                    if effect.scopes[k] > 0 and d - 1 <= 0:
                        unsure[k] = True
        return space.normal_effect(effect._replace(unsure=tuple(u and d > 0 for u, d in
                                                                zip(unsure, effect.scopes, strict=True))))

    def _implied_scopes(self) -> dict[str, st.Effect]:
        """For each handle type: the scopes its begin APIs open, as measured from their code."""
        implied: dict[str, tuple[int, ...]] = {}
        resolver = self.program.resolver
        none = (0,) * len(self.space.scope_kinds)
        for api in self.rules.begin.values():
            for fid in resolver.functions_by_name.get(api.name, ()) + resolver.macros_by_name.get(api.name, ()):
                summary = self.summaries.get(fid, st.IDENTITY)
                opened = summary.scopes or none
                known = implied.get(api.handle_type, none)
                implied[api.handle_type] = tuple(max(a, b) for a, b in zip(known, opened, strict=True))
                if any(opened):
                    sure = tuple(d > 0 and not (summary.unsure and summary.unsure[k]) for k, d in enumerate(opened))
                    key = (api.handle_type, self.home(fid))
                    self._sure_starts[key] = tuple(a or b for a, b in zip(self._sure_starts.get(key, sure), sure,
                                                                          strict=True))
        return {t: self.space.effect(scopes=dict(zip(self.space.scope_kinds, scopes, strict=True)))
                for t, scopes in implied.items() if any(d > 0 for d in scopes)}

    def _unsure_param_scopes(self, handle: str, fid: int) -> tuple[bool, ...]:
        """Per scope kind a handle parameter of `handle` type implies, whether it is
        unsure in `fid`: where its subsystem starts such handles itself, as sure as
        those starts (ext4's, with no journal, open none); elsewhere sure when any
        start of the type is (jbd2's own, for a handle_t that reached ocfs2)."""
        kinds = range(len(self.space.scope_kinds))
        here = self._sure_starts.get((handle, self.home(fid)))
        if here is None:
            starts = [sure for (t, _home), sure in self._sure_starts.items() if t == handle]
            here = tuple(any(sure[k] for sure in starts) for k in kinds)
        return tuple(not flag for flag in here)

    def opens_scope(self, effect: st.Effect) -> bool:
        return any(d > 0 for d in effect.scopes)


def _combine(changes: set[tuple[tuple[int, ...], tuple[int, ...]]], space: st.StateSpace) -> st.Effect:
    """The net change along the final return's non-failure paths, when they agree.

    Paths that disagree (`if (start) begin(); ... if (start) end();` seen without
    the correlation) leave no net effect.  Each change is capped at one level,
    so recursion cannot inflate it."""
    if len(changes) != 1:
        return st.IDENTITY
    ((held, scopes),) = changes
    return space.normal_effect(st.Effect(tuple(max(-1, min(1, d)) for d in held),
                                         tuple(max(-1, min(1, d)) for d in scopes)))
