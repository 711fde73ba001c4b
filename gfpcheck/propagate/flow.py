"""Run a function's flow tree over sets of states.

Scopes and handles are flow-sensitive inside a function: a scope closed
before an allocation does not cover it; a branch that restores and returns
early does not end the scope on the fall-through path; `goto out` carries its
state to the label.  The result says which states each call site can start
in, and which states leave the function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from ..facts import CALL_RESULT, constant
from . import paths as pa
from .flowtree import (
    CALL_RESULT_TESTED,
    F_ASSIGN,
    F_BREAK,
    F_CALL,
    F_CASE,
    F_CONTINUE,
    F_GOTO,
    F_IF,
    F_LABEL,
    F_LOOP,
    F_RETURN,
    F_SWITCH,
    RETURN_SUCCESS,
    RETURN_UNKNOWN,
)

_LOOP_ROUNDS = 3

Transfer = Callable[[int, int], int]  # (call index, states before) -> states after
# (test kind, index of the call whose result the test reads) -> "then" | "else" | None:
# the branch on which that call failed.
Failure = Callable[[str, int], str | None]
Paths = dict  # environment (paths.Env) -> states: the states of the paths that know it


class FlowResult(NamedTuple):
    sites: tuple[int, ...]  # per call index: states the call can start in
    exits: int  # states at any return
    final: int  # states on the way out through the last return (or the end of the body)
    returns: dict[int, int]  # per return (numbered as flowtree numbers them): states there
    end: int  # states falling off the end of the body
    kinds: dict[int, str]  # per return: RETURN_* kind


def run_flow(tree: tuple, calls: tuple, entry: int, transfer: Transfer, failure: Failure,
             mark_failures: bool = False, void: bool = False,
             mark_failed: Callable[[int], int] | None = None, tracked: frozenset[str] = frozenset(),
             known: pa.Env = pa.NOTHING, on_null: dict[str, Callable[[int], int]] | None = None) -> FlowResult:
    """States at every call of a function entered in the states of `entry` (a bitmask).

    With `mark_failures`, states on the failure branch of a context-changing call
    are marked by `mark_failed` (State.failed), so a summary can tell failure
    paths from the rest.  The path remembers what it learns of the `tracked`
    variables, starting from `known`; where it learns that a variable of
    `on_null` is NULL, that function is applied to its states (a handle
    parameter that is NULL holds no handle)."""
    tracked = tracked | frozenset(on_null or ()) | frozenset(fact[0] for fact in known)
    run = _Run(calls, transfer, failure, mark_failed if mark_failures else None, tracked, on_null or {})
    end = _states(run.block(tree, {known: entry} if entry else {}))
    return FlowResult(tuple(run.sites), run.exits | end, _final(run, end, void), run.returns, end, run.kinds)


def _states(paths: Paths) -> int:
    out = 0
    for mask in paths.values():
        out |= mask
    return out


def _merge(into: Paths, paths: Paths) -> Paths:
    """`into` with the states of `paths` added (`into` is changed and returned)."""
    for env, mask in paths.items():
        if mask:
            into[env] = into.get(env, 0) | mask
    return pa.fold(into)


def _final(run: _Run, end: int, void: bool) -> int:
    """States on the function's success path: at its last reachable success
    return (`return 0;`, `return handle;`), else falling off the end, else at
    its last reachable return whose value says nothing (`return ret;`).  A
    void function's early `return;` is a bail-out: its end comes first."""
    order = (None, RETURN_SUCCESS, RETURN_UNKNOWN) if void else (RETURN_SUCCESS, None, RETURN_UNKNOWN)
    for kind in order:
        if kind is None:
            if end:
                return end
            continue
        reached = [number for number, mask in run.returns.items() if mask and run.kinds[number] == kind]
        if reached:
            return run.returns[max(reached)]
    return 0


def _matches(env: pa.Env, variable: str, values: tuple[str, ...]) -> bool:
    """Whether the path knows the variable equals one of the case values."""
    fact = next((f for f in env if f[0] == variable), None)
    return fact is not None and fact[1] == pa.EQ and fact[2] in {constant(v) for v in values if v}


class _Run:
    __slots__ = (
        "before",
        "breaks",
        "calls",
        "continues",
        "exits",
        "failure",
        "kinds",
        "mark_failed",
        "on_null",
        "pending",
        "returns",
        "sites",
        "switches",
        "tracked",
        "transfer",
    )

    def __init__(self, calls: tuple, transfer: Transfer, failure: Failure,
                 mark_failed: Callable[[int], int] | None, tracked: frozenset[str],
                 on_null: dict[str, Callable[[int], int]]):
        self.calls = calls
        self.transfer = transfer
        self.failure = failure
        self.mark_failed = mark_failed
        self.tracked = tracked
        self.on_null = on_null
        self.sites = [0] * len(calls)
        self.exits = 0
        self.returns: dict[int, int] = {}  # return number -> states
        self.kinds: dict[int, str] = {}  # return number -> RETURN_* kind
        self.pending: dict[str, Paths] = {}  # label -> paths of the gotos that jump to it
        self.before: dict[str, tuple[int, int]] = {}  # variable -> (call index, states before that call)
        self.breaks: list[Paths] = []
        self.continues: list[Paths] = []
        self.switches: list[tuple[Paths, str | None, tuple[str, ...]]] = []

    def block(self, items: tuple, paths: Paths) -> Paths:
        for item in items:
            op = item[0]
            if op == F_LABEL:
                paths = _merge(paths, self.pending.pop(item[1], {}))
                continue
            if op == F_CASE:
                if self.switches:
                    paths = _merge(paths, self._case(item[1]))
                continue
            if not paths:
                continue  # unreachable until a label or case
            if op == F_CALL:
                paths = self._call(item[1], paths)
            elif op == F_IF:
                then_paths, else_paths = self._branch(item, paths)
                paths = _merge(self.block(item[1], then_paths), self.block(item[2], else_paths))
            elif op == F_ASSIGN:
                if item[1] in self.tracked:
                    out: Paths = {}
                    for env, mask in paths.items():
                        key = pa.assign(env, item[1], item[2])
                        out[key] = out.get(key, 0) | mask
                    paths = out
            elif op == F_RETURN:
                mask = _states(paths)
                self.exits |= mask
                self.returns[item[1]] = self.returns.get(item[1], 0) | mask
                self.kinds[item[1]] = item[2]
                paths = {}
            elif op == F_GOTO:
                self.pending[item[1]] = _merge(self.pending.get(item[1], {}), paths)
                paths = {}
            elif op == F_LOOP:
                self.breaks.append({})
                self.continues.append({})
                head = paths
                for _ in range(_LOOP_ROUNDS):
                    out = self.block(item[1], dict(head))
                    widened = _merge(_merge(dict(head), out), self.continues[-1])
                    if widened == head:
                        break
                    head = widened
                self.continues.pop()
                paths = _merge(dict(head), self.breaks.pop())
            elif op == F_SWITCH:
                self.breaks.append({})
                self.switches.append((paths, item[2], item[3]))
                out = self.block(item[1], {})
                self.switches.pop()
                paths = _merge(_merge(out, self.breaks.pop()), self._unmatched(paths, item[2], item[3]))
            elif op == F_BREAK:
                if self.breaks:
                    self.breaks[-1] = _merge(self.breaks[-1], paths)
                paths = {}
            elif op == F_CONTINUE:
                if self.continues:
                    self.continues[-1] = _merge(self.continues[-1], paths)
                paths = {}
        return paths

    def _call(self, index: int, paths: Paths) -> Paths:
        variable = self.calls[index][CALL_RESULT]
        forget = variable in self.tracked
        out: Paths = {}
        before = changed = 0
        for env, mask in paths.items():
            self.sites[index] |= mask
            after = self.transfer(index, mask)
            before |= mask
            changed |= after != mask
            key = pa.forget(env, variable) if forget else env
            if after:
                out[key] = out.get(key, 0) | after
        if changed:
            if variable:
                self.before[variable] = (index, before)
            self.before[CALL_RESULT_TESTED] = (index, before)
        else:
            self.before.pop(CALL_RESULT_TESTED, None)
        return out

    def _branch(self, item: tuple, paths: Paths) -> tuple[Paths, Paths]:
        """The paths entering the then and else blocks of an `if`."""
        test, condition = item[3], item[5]
        failed_branch = previous = None
        if test is not None and test[1] in self.before:
            index, previous = self.before[test[1]]
            failed_branch = self.failure(test[0], index)
            if self.mark_failed is not None:
                previous = self.mark_failed(previous)
        then_paths: Paths = {}
        else_paths: Paths = {}
        tracked = self.tracked
        for env, mask in paths.items():
            for outcome, into in ((True, then_paths), (False, else_paths)):
                known = pa.learn(condition, outcome, env, tracked) if tracked else env
                if known is None:
                    continue
                states = mask
                if failed_branch == ("then" if outcome else "else"):
                    states = previous
                if known != env:
                    for variable, apply in self.on_null.items():
                        if pa.is_null(known, variable) and not pa.is_null(env, variable):
                            states = apply(states)
                if states:
                    into[known] = into.get(known, 0) | states
        return pa.fold(then_paths), pa.fold(else_paths)

    def _unmatched(self, paths: Paths, variable: str | None, values: tuple[str, ...]) -> Paths:
        """The paths on which a switch runs none of its cases: none when it has a
        default, else those whose value of the variable is none of the cases'."""
        if "" in values:
            return {}
        if variable is None or variable not in self.tracked:
            return paths
        return {env: mask for env, mask in paths.items() if not _matches(env, variable, values)}

    def _case(self, value: str) -> Paths:
        """The paths a `case` label of the innermost switch receives from its start."""
        paths, variable, values = self.switches[-1]
        if variable is None or variable not in self.tracked:
            return paths
        out: Paths = {}
        for env, mask in paths.items():
            if value:
                known = pa.case_entry(env, variable, value, self.tracked)
            else:  # default: not where the path's value is one of the cases
                known = None if _matches(env, variable, values) else env
            if known is not None:
                out[known] = out.get(known, 0) | mask
        return out
