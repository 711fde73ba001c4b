"""Misuse of the scope API itself.

- scope-leak: a memalloc_{nofs,noio,flags}_save() whose saved flags stay in a
  local variable, with a path from it to a return that skips the matching
  restore: the task keeps PF_MEMALLOC_* for good, and every later allocation
  it makes is silently constrained.  Saved flags stored into a field or
  returned are handed off (jbd2's start_this_handle() keeps them in the
  handle for jbd2_journal_stop()), not leaked.  A save and a restore under
  `if`s with the same condition (`if (nofs) flags = memalloc_nofs_save();
  ... if (nofs) memalloc_nofs_restore(flags);`) go together on every path:
  the flow cannot see that correlation, so such a kind is not judged.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..facts import CALL_RESULT, EV_RETURN, PARAM_NAME, flow_events
from ..link import T_SCOPE
from ..masks import UNKNOWN
from ..propagate import state as st
from ..propagate.flowtree import call_guards
from ..propagate.origins import Origin
from ..propagate.witness import Context
from .catalog import Check
from .engine import Engine, Verdict

LEAK = "leak"

SCOPE_LEAK = Check(
    id="scope-leak",
    name="ScopeLeak",
    severity="error",
    short="memalloc_*_save() not restored on a return path",
    full=(
        "A memalloc_nofs_save(), memalloc_noio_save() or memalloc_flags_save() keeps the flags it saved in a "
        "local variable, but a path from it reaches a return without the matching restore. The task then "
        "keeps PF_MEMALLOC_NOFS (or NOIO) set after the function returns, for good: every later allocation "
        "it makes, in any code, loses __GFP_FS or __GFP_IO, and a later restore of an outer scope restores "
        "the wrong flags. The chain shows the save and the return that skips the restore."
    ),
    help=(
        "Restore on every path out, typically by sending early returns through the label that calls "
        "memalloc_nofs_restore(flags). If the scope is meant to outlive the function, store the saved "
        "flags where the code that ends it can find them (as jbd2 keeps them in the handle)."
    ),
    example=(
        "flags = memalloc_nofs_save();\n"
        "ret = do_work();\n"
        "if (ret)\n"
        "        return ret;                /* PF_MEMALLOC_NOFS stays set */\n"
        "memalloc_nofs_restore(flags);"
    ),
    message="{where} is not undone on this return: the task keeps its {kind} scope after {function}() returns",
)

CHECKS: tuple[Check, ...] = (SCOPE_LEAK,)


def verdicts(engine: Engine) -> Iterator[Verdict]:
    """A verdict per return that leaves a locally saved scope open."""
    program = engine.program
    rules = engine.rules
    for fid in sorted(program.detailed):
        targets = program.targets(fid)
        saves = [(index, rules.scopes[t.api]) for index, t in enumerate(targets)
                 if t.kind == T_SCOPE and rules.scopes[t.api].op == "open"]
        if not saves:
            continue
        local = _local_saves(program, fid, saves)
        for kind in _correlated(engine, fid, targets, local):
            del local[kind]
        if not local:
            continue
        for states, line, column in engine.own_scope_states(fid):
            for kind, index in local.items():
                if any(engine.scope_open(s, kind) for s in st.members(states)):
                    api = targets[index].api
                    origin = Origin(fid, index, -1, api, UNKNOWN, api)
                    yield Verdict(SCOPE_LEAK, origin, None, Context(LEAK, kind), None, (line, column))


def _local_saves(program, fid: int, saves: list) -> dict[str, int]:
    """For each scope kind every save of which keeps its flags in a local variable
    (not a parameter, not stored into a field, not returned): the first such save."""
    function = program.functions[fid]
    calls = program.calls(fid)
    params = {p[PARAM_NAME] for p in function.params}
    stored = {binding.function for binding in function.bindings}
    returned = _returned_names(program, fid)
    out: dict[str, int] = {}
    handed_off: set[str] = set()
    for index, api in saves:
        variable = calls[index][CALL_RESULT]
        if not variable.isidentifier() or variable in params or variable in stored or variable in returned:
            handed_off.add(api.kind)
            continue
        out.setdefault(api.kind, index)
    return {kind: index for kind, index in out.items() if kind not in handed_off}


def _correlated(engine: Engine, fid: int, targets, local: dict[str, int]) -> list[str]:
    """Scope kinds whose saves are each guarded by a condition that also guards a
    restore of the kind."""
    if not local:
        return []
    rules = engine.rules
    guards = call_guards(engine.analysis.effects.tree(fid))
    saved: dict[str, set[str | None]] = {}
    restored: dict[str, set[str]] = {}
    for index, target in enumerate(targets):
        if target.kind != T_SCOPE:
            continue
        api = rules.scopes[target.api]
        if api.op == "open":
            saved.setdefault(api.kind, set()).add(guards.get(index))
        elif index in guards:
            restored.setdefault(api.kind, set()).add(guards[index])
    return [kind for kind in local if None not in saved.get(kind, {None}) and saved[kind] <= restored.get(kind, set())]


def _returned_names(program, fid: int) -> set[str]:
    """Names the function returns as they are: `return flags;`."""
    names = set()
    for event in flow_events(program.functions[fid]):
        if event[1] == EV_RETURN and event[5] is not None:
            value = event[5][0]
            if value and value.isidentifier():
                names.add(value)
    return names
