"""A function's control flow, rebuilt from its stored events when an analysis needs it.

The tree keeps only what decides which calls run in which context: calls in
evaluation order, branches (with how the condition tests a variable),
loops, switch/case, return, goto and labels.  Only functions whose calls
change the context are ever rebuilt, so this costs nothing for most of a tree.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from ..facts import (
    EV_ASSIGN,
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
    constant,
    flow_events,
)
from ..ruleset import Ruleset
from .paths import closes_at_end, parse_condition, split_top, strip_parens, variables

# Tree items: tuples whose first element is one of these.
F_CALL = 0  # (F_CALL, call_index)
# (F_RETURN, number, kind, line, column, by_call): numbered in program order, kind RETURN_*;
# by_call: the value is what a call in the return statement made (`return f(...);`)
F_RETURN = 1
F_GOTO = 2  # (F_GOTO, label)
F_LABEL = 3  # (F_LABEL, label)
# (F_IF, then_block, else_block, test, condition, parsed)   test: (kind, variable) or None;
# condition: its text; parsed: paths.parse_condition of it, or None
F_IF = 4
F_LOOP = 5  # (F_LOOP, body_block)
# (F_SWITCH, body_block, variable or None, case values)   a switch on a plain variable names it;
# its case values include "" when it has a default
F_SWITCH = 6
F_CASE = 7  # (F_CASE, value)   "" for default
F_BREAK = 8  # (F_BREAK,)
F_CONTINUE = 9  # (F_CONTINUE,)
F_ASSIGN = 10  # (F_ASSIGN, variable, value)   value: a constant or a variable's name as written, or None

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
            condition = " ".join(payload.split()) if payload else None
            parsed = parse_condition(condition, rules.transparent_checks, rules.feature_tests) if condition else None
            items.append((F_IF, tuple(then), tuple(other), parse_test(payload, rules) if payload else None,
                          condition, parsed))
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
            subject = strip_parens(payload) if payload else ""
            cases = tuple(item[1] for item in body if item[0] == F_CASE)
            items.append((F_SWITCH, tuple(body), subject if subject.isidentifier() else None, cases))
        elif kind == EV_RETURN:
            pre, i = _block(events, i, c, rules, returns, kinds)
            items.extend(pre)
            returns[0] += 1
            value, line, column = payload
            items.append((F_RETURN, returns[0], kinds(value), line, column, _made_by_call(value)))
        elif kind == EV_GOTO:
            items.append((F_GOTO, payload))
        elif kind == EV_LABEL:
            items.append((F_LABEL, payload))
        elif kind == EV_CASE:
            items.append((F_CASE, payload or ""))
        elif kind == EV_ASSIGN:
            items.append((F_ASSIGN, payload[0], payload[1]))
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


def items(tree: tuple) -> Iterator[tuple]:
    """Every item of a flow tree, those in the blocks of ifs, loops and switches too."""
    stack = [tree]
    while stack:
        for item in stack.pop():
            yield item
            op = item[0]
            if op == F_IF:
                stack.extend((item[1], item[2]))
            elif op == F_LOOP or op == F_SWITCH:
                stack.append(item[1])


def tests(tree: tuple) -> dict[str, int]:
    """How many `if` conditions and switches test each variable."""
    out: dict[str, int] = {}
    for item in items(tree):
        if item[0] == F_IF:
            for name in variables(item[5]):
                out[name] = out.get(name, 0) + 1
        elif item[0] == F_SWITCH and item[2]:
            out[item[2]] = out.get(item[2], 0) + 1
    return out


def tracked_variables(tree: tuple) -> frozenset[str]:
    """The variables whose value a path should remember: those tested by two
    conditions or more, or tested once and given a constant somewhere (a value set
    on one path and read later), since a single test learns nothing it can use."""
    constants = {item[1] for item in items(tree)
                 if item[0] == F_ASSIGN and item[2] is not None and constant(item[2]) is not None}
    return frozenset(name for name, count in tests(tree).items() if count > 1 or name in constants)


def aliases(tree: tuple, name: str) -> set[str]:
    """The variables the function sets to `name` (`trans = trans_in;`), and `name`."""
    return {name} | {item[1] for item in items(tree) if item[0] == F_ASSIGN and item[2] == name}


def _made_by_call(value: str | None) -> bool:
    m = _WRAPPED.fullmatch(value) if value else None
    return m is not None and closes_at_end(value[len(m.group(1)):].lstrip())


def returns_by_call(tree: tuple) -> frozenset[int]:
    """The numbers of the returns whose value a call in the statement made."""
    return frozenset(item[1] for item in items(tree) if item[0] == F_RETURN and item[5])


def return_places(tree: tuple) -> dict[int, tuple[int, int]]:
    """(line, column) of each return of a flow tree, by its number."""
    return {item[1]: (item[3], item[4]) for item in items(tree) if item[0] == F_RETURN}


_WRAPPED = re.compile(r"([A-Za-z_]\w*)\s*\((.*)\)", re.DOTALL)
_COMPARE = re.compile(r"([A-Za-z_]\w*)\s*(<|!=|==)\s*(0|NULL)")


def parse_test(condition: str, rules: Ruleset) -> tuple[str, str] | None:
    """How an `if` condition tests a single variable, when it is that simple.

    `(IS_ERR(trans))` -> (err, trans); `(unlikely(!h))` -> (not, h);
    `(error)` -> (truthy, error).  Wrappers such as unlikely() are the rules'
    `failure_checks.transparent`; error-pointer tests their `error_pointer`.
    """
    t = strip_parens(condition)
    if "&&" in t or "||" in t:
        return _error_comparison(t, rules)
    while True:
        m = _WRAPPED.fullmatch(t)
        if m and m.group(1) in rules.transparent_checks:
            t = strip_parens(m.group(2))
            continue
        break
    if _ERRNO_TEST.fullmatch(t):
        return _error_comparison(t, rules)
    negate = t.startswith("!")
    if negate:
        t = strip_parens(t[1:])
    if t.isidentifier():
        return (TEST_NOT if negate else TEST_TRUTHY, t)
    m = _WRAPPED.fullmatch(t)
    if m and m.group(1) in rules.error_pointer_checks and m.group(2).strip().isidentifier():
        return (TEST_NOT_ERR if negate else TEST_ERR, m.group(2).strip())
    if m and closes_at_end(t[len(m.group(1)):].lstrip()):
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
    for conjunct in split_top(t, "&&"):
        conjunct = strip_parens(conjunct)
        names = set()
        for disjunct in split_top(conjunct, "||"):
            disjunct = strip_parens(disjunct)
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
