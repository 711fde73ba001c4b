"""A function's control flow, rebuilt from its stored events when an analysis needs it.

The tree keeps only what decides which calls run in which context: calls in
evaluation order, branches (with how the condition tests a variable),
loops, switch/case, return, goto and labels.  Only functions whose calls
change the context are ever rebuilt, so this costs nothing for most of a tree.
"""

from __future__ import annotations

import re

from ..facts import (
    EV_BREAK,
    EV_CALL,
    EV_CASE,
    EV_CONTINUE,
    EV_GOTO,
    EV_IF,
    EV_LABEL,
    EV_LOOP,
    EV_RETURN,
    EV_SWITCH,
    Function,
    flow_events,
)
from ..ruleset import Ruleset

# Tree items: tuples whose first element is one of these.
F_CALL = 0  # (F_CALL, call_index)
F_RETURN = 1  # (F_RETURN, number, kind, line, column): numbered in program order, kind RETURN_*
F_GOTO = 2  # (F_GOTO, label)
F_LABEL = 3  # (F_LABEL, label)
F_IF = 4  # (F_IF, then_block, else_block, test, condition)   test: (kind, variable) or None; condition: its text
F_LOOP = 5  # (F_LOOP, body_block)
F_SWITCH = 6  # (F_SWITCH, body_block)
F_CASE = 7  # (F_CASE,)
F_BREAK = 8  # (F_BREAK,)
F_CONTINUE = 9  # (F_CONTINUE,)

# How an `if` condition tests one variable.
TEST_ERR = "err"  # IS_ERR(v)
TEST_NOT_ERR = "noterr"  # !IS_ERR(v)
TEST_NOT = "not"  # !v, v == NULL, v == 0
TEST_TRUTHY = "truthy"  # v, v != 0, v < 0
# The variable of a test on the condition's own call: `if (xfs_trans_alloc(...))`.
CALL_RESULT_TESTED = "()"


# How a return ends the function (F_RETURN's third element).
RETURN_SUCCESS = "success"  # return 0; return handle; (pointer function); return; (void)
RETURN_ERROR = "error"  # return -ENOMEM; return ERR_PTR(err);
RETURN_UNKNOWN = "unknown"  # return ret; in an int function


def build_tree(function: Function, calls: int, rules: Ruleset) -> tuple:
    """The function's top-level block; straight-line code gives its `calls` calls in order."""
    events = flow_events(function)
    if not events:
        return tuple((F_CALL, i) for i in range(calls))
    kinds = _ReturnKinds(function, rules)
    items, _ = _block(events, 0, float("inf"), rules, [0], kinds)
    return tuple(items)


class _ReturnKinds:
    def __init__(self, function: Function, rules: Ruleset):
        self.pointer = function.returns_pointer
        self.void = function.return_type == "void" and not function.returns_pointer
        self.errors = rules.error_returns

    def __call__(self, value: str | None) -> str:
        if value is None:
            return RETURN_UNKNOWN
        if not value:
            return RETURN_SUCCESS if self.void else RETURN_UNKNOWN
        if value.startswith("-") or value == "NULL" and self.pointer:
            return RETURN_ERROR
        m = _WRAPPED.fullmatch(value)
        if m and m.group(1) in self.errors:
            return RETURN_ERROR
        if value == "0" or self.pointer:
            return RETURN_SUCCESS
        return RETURN_UNKNOWN


def _block(events: tuple, i: int, limit: float, rules: Ruleset, returns: list[int], kinds) -> tuple[list, int]:
    items: list = []
    n = len(events)
    while i < n and events[i][0] < limit:
        _key, kind, a, b, c, payload = events[i]
        i += 1
        if kind == EV_CALL:
            items.append((F_CALL, payload))
        elif kind == EV_IF:
            # a: consequence start, b: consequence end, c: statement end
            pre, i = _block(events, i, a, rules, returns, kinds)
            then, i = _block(events, i, b, rules, returns, kinds)
            other, i = _block(events, i, c, rules, returns, kinds)
            items.extend(pre)
            items.append((F_IF, tuple(then), tuple(other), parse_test(payload, rules) if payload else None,
                          " ".join(payload.split()) if payload else None))
        elif kind == EV_LOOP:
            # a: body start, b: body end, c: statement end (a do-while condition follows its body)
            pre, i = _block(events, i, a, rules, returns, kinds)
            body, i = _block(events, i, b, rules, returns, kinds)
            post, i = _block(events, i, c, rules, returns, kinds)
            items.extend(pre)
            items.append((F_LOOP, tuple(body + post)))
        elif kind == EV_SWITCH:
            pre, i = _block(events, i, a, rules, returns, kinds)
            body, i = _block(events, i, c, rules, returns, kinds)
            items.extend(pre)
            items.append((F_SWITCH, tuple(body)))
        elif kind == EV_RETURN:
            pre, i = _block(events, i, c, rules, returns, kinds)
            items.extend(pre)
            returns[0] += 1
            value, line, column = payload
            items.append((F_RETURN, returns[0], kinds(value), line, column))
        elif kind == EV_GOTO:
            items.append((F_GOTO, payload))
        elif kind == EV_LABEL:
            items.append((F_LABEL, payload))
        elif kind == EV_CASE:
            items.append((F_CASE,))
        elif kind == EV_BREAK:
            items.append((F_BREAK,))
        elif kind == EV_CONTINUE:
            items.append((F_CONTINUE,))
    return items, i


def call_guards(tree: tuple) -> dict[int, str]:
    """For each call under an `if`, the condition of the innermost one, as written
    (`!(...)` in its else branch); calls under no `if` are left out."""
    guards: dict[int, str] = {}
    stack: list[tuple[tuple, str | None]] = [(tree, None)]
    while stack:
        block, guard = stack.pop()
        for item in block:
            op = item[0]
            if op == F_CALL:
                if guard is not None:
                    guards[item[1]] = guard
            elif op == F_IF:
                condition = item[4]
                stack.append((item[1], condition))
                stack.append((item[2], f"!({condition})" if condition is not None else None))
            elif op in (F_LOOP, F_SWITCH):
                stack.append((item[1], guard))
    return guards


def return_places(tree: tuple) -> dict[int, tuple[int, int]]:
    """(line, column) of each return of a flow tree, by its number."""
    places: dict[int, tuple[int, int]] = {}
    stack = [tree]
    while stack:
        for item in stack.pop():
            op = item[0]
            if op == F_RETURN:
                places[item[1]] = (item[3], item[4])
            elif op == F_IF:
                stack.extend((item[1], item[2]))
            elif op in (F_LOOP, F_SWITCH):
                stack.append(item[1])
    return places


_WRAPPED = re.compile(r"([A-Za-z_]\w*)\s*\((.*)\)", re.DOTALL)
_COMPARE = re.compile(r"([A-Za-z_]\w*)\s*(<|!=|==)\s*(0|NULL)")


def parse_test(condition: str, rules: Ruleset) -> tuple[str, str] | None:
    """How an `if` condition tests a single variable, when it is that simple.

    `(IS_ERR(trans))` -> (err, trans); `(unlikely(!h))` -> (not, h);
    `(error)` -> (truthy, error).  Wrappers such as unlikely() are the rules'
    `failure_checks.transparent`; error-pointer tests their `error_pointer`.
    """
    t = _strip_parens(condition)
    if "&&" in t or "||" in t:
        return _error_comparison(t, rules)
    while True:
        m = _WRAPPED.fullmatch(t)
        if m and m.group(1) in rules.transparent_checks:
            t = _strip_parens(m.group(2))
            continue
        break
    if _ERRNO_TEST.fullmatch(t):
        return _error_comparison(t, rules)
    negate = t.startswith("!")
    if negate:
        t = _strip_parens(t[1:])
    if t.isidentifier():
        return (TEST_NOT if negate else TEST_TRUTHY, t)
    m = _WRAPPED.fullmatch(t)
    if m and m.group(1) in rules.error_pointer_checks and m.group(2).strip().isidentifier():
        return (TEST_NOT_ERR if negate else TEST_ERR, m.group(2).strip())
    if m and _closes_at_end(t[len(m.group(1)):].lstrip()):
        return (TEST_NOT if negate else TEST_TRUTHY, CALL_RESULT_TESTED)
    if negate:
        return None
    m = _COMPARE.fullmatch(t)
    if m:
        var, op, value = m.groups()
        if op in ("<", "!=") and value == "0":
            return (TEST_TRUTHY, var)
        if op == "==":
            return (TEST_NOT, var)
    return None


_ERRNO_TEST = re.compile(r"([A-Za-z_]\w*)\s*==\s*-E[A-Z0-9]+|PTR_ERR\s*\(\s*([A-Za-z_]\w*)\s*\)\s*==\s*-E[A-Z0-9]+")


def _error_comparison(t: str, rules: Ruleset) -> tuple[str, str] | None:
    """`(error == -EDQUOT || error == -ENOSPC) && !retried`: true only when `error` is
    an error, so the branch taken is a failure of the call that set it."""
    for conjunct in _split_top(t, "&&"):
        conjunct = _strip_parens(conjunct)
        names = set()
        for disjunct in _split_top(conjunct, "||"):
            disjunct = _strip_parens(disjunct)
            m = _ERRNO_TEST.fullmatch(disjunct)
            if m:
                names.add(m.group(1) or m.group(2))
                continue
            w = _WRAPPED.fullmatch(disjunct)
            if w and w.group(1) in rules.error_pointer_checks and w.group(2).strip().isidentifier():
                names.add(w.group(2).strip())
                continue
            names = set()
            break
        if len(names) == 1:
            return (TEST_ERR, names.pop())
    return None


def _split_top(t: str, operator: str) -> list[str]:
    """Split at `operator` outside parentheses."""
    parts = []
    depth = 0
    start = 0
    i = 0
    while i < len(t):
        ch = t[i]
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0 and t.startswith(operator, i):
            parts.append(t[start:i])
            start = i + len(operator)
            i = start
            continue
        i += 1
    parts.append(t[start:])
    return parts


def _strip_parens(t: str) -> str:
    t = t.strip()
    while t.startswith("(") and t.endswith(")") and _closes_at_end(t):
        t = t[1:-1].strip()
    return t


def _closes_at_end(t: str) -> bool:
    """True when the "(" at t[0] is closed by the ")" at t[-1]."""
    depth = 0
    for i, ch in enumerate(t):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i == len(t) - 1
    return False
