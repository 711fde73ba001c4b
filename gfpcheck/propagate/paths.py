"""What a path knows about the variables its conditions test.

A flow run splits its states by what the path has learnt: `suspend` set to
true before a scope was saved, a handle parameter found NULL, a flag argument
compared with a constant.  A later condition on the same variable then takes
only the branches that path can take, so `if (suspend) save(); ... if
(suspend) restore();` pairs up, and code below `if (trans) { ...; return; }`
runs with `trans` NULL.

Facts are kept only for plain variables (no field accesses, nothing behind a
pointer) and only for those the flow tracks; any write the extraction saw
(`x = f()`, `x++`, `&x` handed to a call) forgets them.  Constants are compared
by their text: two different names are taken as different values (as the
enumerators of one enum, or the macros a switch's cases name, are); a name is
never compared with a number, and a flag test reads only an or of names.
"""

from __future__ import annotations

import re
from functools import lru_cache

from ..facts import constant

# A condition: ("test", variable, op, constant) with op one of TRUTH ("x"),
# EQ ("x == C"), NE, AND_FLAG ("x & C"); or ("not", c), ("and", a, b), ("or", a, b).
TRUTH, EQ, NE, AND_FLAG = "truth", "==", "!=", "&"
Condition = tuple

# A fact: (variable, EQ | NE, constant); an environment: facts sorted by variable,
# at most one per variable.
Env = tuple
NOTHING: Env = ()
MAX_PATHS = 8  # environments kept apart at one point; more are folded into what they share

_NAME = re.compile(r"[A-Za-z_]\w*")
_COMPARE = re.compile(r"(.+?)\s*(==|!=|&)\s*(.+)")


def feature(name: str) -> str:
    """The variable that stands for a feature test (rules: features) in facts."""
    return name + "()"


def is_feature(variable: str) -> bool:
    return variable.endswith("()")


@lru_cache(maxsize=1 << 15)
def parse_condition(text: str, transparent: frozenset[str], features: frozenset[str] = frozenset()) -> Condition | None:
    """The condition of an `if` or a `while`, when it is built from tests of plain
    variables against constants, or of features (`IS_ENCRYPTED(dir)`, a test of
    the variable feature("IS_ENCRYPTED")); None when no part of it is."""
    t = strip_parens(text)
    for op, kind in (("||", "or"), ("&&", "and")):
        parts = split_top(t, op)
        if len(parts) > 1:
            out = parse_condition(parts[0], transparent, features)
            for part in parts[1:]:
                out = _combine(kind, out, parse_condition(part, transparent, features))
            return out
    if t.startswith("!") and not t.startswith("!="):
        inner = parse_condition(t[1:], transparent, features)
        return ("not", inner) if inner is not None else None
    m = re.fullmatch(r"([A-Za-z_]\w*)\s*\((.*)\)", t, re.DOTALL)
    if m and closes_at_end(t[len(m.group(1)):].lstrip()):
        if m.group(1) in transparent:
            return parse_condition(m.group(2), transparent, features)
        if m.group(1) in features:
            return ("test", feature(m.group(1)), TRUTH, "")
    if _NAME.fullmatch(t):
        return None if constant(t) is not None else ("test", t, TRUTH, "")
    m = _COMPARE.fullmatch(t)
    if m is None:
        return None
    left, op, right = strip_parens(m.group(1)), m.group(2), strip_parens(m.group(3))
    if op == "&" and (left.endswith("&") or right.startswith("&")):
        return None  # a && b was split above; anything else with "&&" inside is not ours
    if _NAME.fullmatch(left) and constant(left) is None and constant(right) is not None:
        variable, value = left, constant(right)
    elif _NAME.fullmatch(right) and constant(right) is None and constant(left) is not None:
        variable, value = right, constant(left)
    else:
        return None
    return ("test", variable, op, value)


def _combine(kind: str, a: Condition | None, b: Condition | None) -> Condition | None:
    """`a && b`, `a || b`; a part that is not understood is unknown, which still lets
    the other part decide (`x && <unknown>` is false where x is)."""
    if a is None and b is None:
        return None
    return (kind, a, b)


def evaluate(condition: Condition | None, facts: dict) -> bool | None:
    """True, False, or None when the facts do not decide it."""
    if condition is None:
        return None
    kind = condition[0]
    if kind == "test":
        return _test(facts.get(condition[1]), condition[2], condition[3])
    if kind == "not":
        value = evaluate(condition[1], facts)
        return None if value is None else not value
    a = evaluate(condition[1], facts)
    b = evaluate(condition[2], facts)
    if kind == "and":
        if a is False or b is False:
            return False
        return True if a is True and b is True else None
    if a is True or b is True:
        return True
    return False if a is False and b is False else None


def _test(fact: tuple[str, str] | None, op: str, value: str) -> bool | None:
    if fact is None:
        return None
    relation, known = fact
    if op == TRUTH:
        if relation == EQ:
            return known != "0" if _numeric(known) else None
        return True if known == "0" else None
    if op == EQ or op == NE:
        if relation == EQ:
            # Different names are taken as different values, as enumerators and the
            # macros a switch's cases name are; a name against a number is unknown.
            if known == value:
                same = True
            elif _numeric(known) == _numeric(value):
                same = False
            else:
                return None
        elif known == value:
            same = False
        else:
            return None
        return same if op == EQ else not same
    # x & FLAG
    if relation != EQ:
        return None
    if known == "0":
        return False
    if _numeric(known) and _numeric(value):
        return bool(int(known) & int(value))
    if not _numeric(known) and not _numeric(value) and "|" not in value and value in known.split("|"):
        return True
    return None


def _numeric(value: str) -> bool:
    return value[:1].isdigit() or value[:1] == "-"


def learn(condition: Condition | None, outcome: bool, env: Env, tracked: frozenset[str]) -> Env | None:
    """The environment on the branch where `condition` is `outcome`; None when the
    path cannot take that branch."""
    if condition is None:
        return env
    facts = dict((v, (r, c)) for v, r, c in env)
    value = evaluate(condition, facts)
    if value is not None:
        return env if value == outcome else None
    if not _learn(condition, outcome, facts, tracked):
        return None
    return tuple(sorted((v, r, c) for v, (r, c) in facts.items()))


def _learn(condition: Condition | None, outcome: bool, facts: dict, tracked: frozenset[str]) -> bool:
    """Add to `facts` what the condition being `outcome` says; False on a contradiction."""
    if condition is None:
        return True
    value = evaluate(condition, facts)
    if value is not None:
        return value == outcome
    kind = condition[0]
    if kind == "not":
        return _learn(condition[1], not outcome, facts, tracked)
    if kind == "and" or kind == "or":
        a, b = condition[1], condition[2]
        if (kind == "and") == outcome:  # both parts have this outcome
            return _learn(a, outcome, facts, tracked) and _learn(b, outcome, facts, tracked)
        # one part has the outcome: known only when the other is decided against it
        if evaluate(a, facts) is (not outcome):
            return _learn(b, outcome, facts, tracked)
        if evaluate(b, facts) is (not outcome):
            return _learn(a, outcome, facts, tracked)
        return True
    _test_kind, variable, op, constant_value = condition
    if variable not in tracked:
        return True
    if op == TRUTH:
        facts[variable] = (NE, "0") if outcome else (EQ, "0")
    elif op == EQ or op == NE:
        if (op == EQ) == outcome:
            facts[variable] = (EQ, constant_value)
        elif variable not in facts:
            facts[variable] = (NE, constant_value)
    return True


def assign(env: Env, variable: str, value: str | None) -> Env:
    """The environment after `variable = value` (a constant, another variable, or
    None: a value not known)."""
    out = [fact for fact in env if fact[0] != variable]
    if value is not None:
        known = constant(value)
        if known is not None:
            out.append((variable, EQ, known))
        else:  # another variable: what the path knows of it
            out.extend((variable, relation, c) for v, relation, c in env if v == value)
        out.sort()
    return tuple(out)


def forget(env: Env, variable: str) -> Env:
    return tuple(fact for fact in env if fact[0] != variable) if any(f[0] == variable for f in env) else env


def is_null(env: Env, variable: str) -> bool:
    return (variable, EQ, "0") in env


def case_entry(env: Env, variable: str, value: str, tracked: frozenset[str]) -> Env | None:
    """The environment entering `case value:` of `switch (variable)`; None when the
    path's value of the variable is another."""
    known = constant(value)
    if known is None:
        return env
    return learn(("test", variable, EQ, known), True, env, tracked)


def fold(paths: dict[Env, int]) -> dict[Env, int]:
    """At most MAX_PATHS environments: past that, one with the facts all share."""
    if len(paths) <= MAX_PATHS:
        return paths
    common = set(next(iter(paths)))
    mask = 0
    for env, states in paths.items():
        common &= set(env)
        mask |= states
    return {tuple(sorted(common)): mask}


def variables(condition: Condition | None) -> set[str]:
    """The variables a parsed condition tests."""
    if condition is None:
        return set()
    if condition[0] == "test":
        return {condition[1]}
    if condition[0] == "not":
        return variables(condition[1])
    return variables(condition[1]) | variables(condition[2])


def strip_parens(t: str) -> str:
    t = t.strip()
    while t.startswith("(") and t.endswith(")") and closes_at_end(t):
        t = t[1:-1].strip()
    return t


def closes_at_end(t: str) -> bool:
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


def split_top(t: str, operator: str) -> list[str]:
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
