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

from ..facts import CALL_RESULT
from .flowtree import (
    CALL_RESULT_TESTED,
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


class FlowResult(NamedTuple):
    sites: tuple[int, ...]  # per call index: states the call can start in
    exits: int  # states at any return
    final: int  # states on the way out through the last return (or the end of the body)
    returns: dict[int, int]  # per return (numbered as flowtree numbers them): states there
    end: int  # states falling off the end of the body


def run_flow(tree: tuple, calls: tuple, entry: int, transfer: Transfer, failure: Failure,
             mark_failures: bool = False, void: bool = False,
             mark_failed: Callable[[int], int] | None = None) -> FlowResult:
    """States at every call of a function entered in the states of `entry` (a bitmask).

    With `mark_failures`, states on the failure branch of a context-changing call
    are marked by `mark_failed` (State.failed), so a summary can tell failure
    paths from the rest."""
    run = _Run(calls, transfer, failure, mark_failed if mark_failures else None)
    end = run.block(tree, entry)
    return FlowResult(tuple(run.sites), run.exits | end, _final(run, end, void), run.returns, end)


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
        "pending",
        "returns",
        "sites",
        "switches",
        "transfer",
    )

    def __init__(self, calls: tuple, transfer: Transfer, failure: Failure,
                 mark_failed: Callable[[int], int] | None):
        self.calls = calls
        self.transfer = transfer
        self.failure = failure
        self.mark_failed = mark_failed
        self.sites = [0] * len(calls)
        self.exits = 0
        self.returns: dict[int, int] = {}  # return number -> states
        self.kinds: dict[int, str] = {}  # return number -> RETURN_* kind
        self.pending: dict[str, int] = {}  # label -> states of the gotos that jump to it
        self.before: dict[str, tuple[int, int]] = {}  # variable -> (call index, states before that call)
        self.breaks: list[int] = []
        self.continues: list[int] = []
        self.switches: list[int] = []

    def block(self, items: tuple, mask: int) -> int:
        for item in items:
            op = item[0]
            if op == F_LABEL:
                mask |= self.pending.pop(item[1], 0)
                continue
            if op == F_CASE:
                if self.switches:
                    mask |= self.switches[-1]
                continue
            if not mask:
                continue  # unreachable until a label or case
            if op == F_CALL:
                index = item[1]
                self.sites[index] |= mask
                after = self.transfer(index, mask)
                if after != mask:
                    variable = self.calls[index][CALL_RESULT]
                    if variable:
                        self.before[variable] = (index, mask)
                    self.before[CALL_RESULT_TESTED] = (index, mask)
                else:
                    self.before.pop(CALL_RESULT_TESTED, None)
                mask = after
            elif op == F_IF:
                then_mask = else_mask = mask
                test = item[3]
                if test is not None and test[1] in self.before:
                    index, previous = self.before[test[1]]
                    failed = self.failure(test[0], index)
                    if self.mark_failed is not None:
                        previous = self.mark_failed(previous)
                    if failed == "then":
                        then_mask = previous
                    elif failed == "else":
                        else_mask = previous
                mask = self.block(item[1], then_mask) | self.block(item[2], else_mask)
            elif op == F_RETURN:
                self.exits |= mask
                self.returns[item[1]] = self.returns.get(item[1], 0) | mask
                self.kinds[item[1]] = item[2]
                mask = 0
            elif op == F_GOTO:
                self.pending[item[1]] = self.pending.get(item[1], 0) | mask
                mask = 0
            elif op == F_LOOP:
                self.breaks.append(0)
                self.continues.append(0)
                head = mask
                for _ in range(_LOOP_ROUNDS):
                    out = self.block(item[1], head)
                    widened = head | out | self.continues[-1]
                    if widened == head:
                        break
                    head = widened
                self.continues.pop()
                mask = head | self.breaks.pop()
            elif op == F_SWITCH:
                self.breaks.append(0)
                self.switches.append(mask)
                out = self.block(item[1], 0)
                mask = out | self.breaks.pop() | self.switches.pop()
            elif op == F_BREAK:
                if self.breaks:
                    self.breaks[-1] |= mask
                mask = 0
            elif op == F_CONTINUE:
                if self.continues:
                    self.continues[-1] |= mask
                mask = 0
        return mask
