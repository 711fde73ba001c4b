"""Calls inside the body of a function-like macro.

`#define ext4_journal_start(inode, type, nblocks) __ext4_journal_start(...)`
is followed like a function: the macro becomes a node of the call graph whose
calls are found by scanning the body text (tree-sitter leaves it unparsed).
An argument that is exactly one of the macro's parameters keeps that name,
so masks and callbacks passed through the macro are followed.
"""

from __future__ import annotations

import re

from ..facts import DIRECT
from .declarators import argument_fact, split_arguments

_CALL = re.compile(r"(?<![\w.>#])([A-Za-z_]\w*)\s*\(")
_PASTE = re.compile(r"\w*\s*##\s*\w*")
_STRING = re.compile(r'"(?:\\.|[^"\\])*"')
_NOT_CALLS = frozenset({
    "if", "while", "for", "switch", "return", "sizeof", "typeof", "__typeof__", "__typeof",
    "do", "defined", "__builtin_expect", "__builtin_constant_p", "_Generic", "__attribute__",
    "asm", "__asm__", "volatile", "__volatile__", "alignof", "__alignof__", "_Static_assert",
    "static_assert", "offsetof", "__stringify", "case",
})


def macro_calls(body: str, line: int, column: int) -> tuple[tuple, ...]:
    """Calls found in a macro body, in textual order; `line`/`column` locate the body's start."""
    if not body or "(" not in body:
        return ()
    body = body.replace("\\\n", " \n")  # same length: positions still map to lines
    if '"' in body:
        body = _STRING.sub('""', body)
    if "##" in body:
        body = _PASTE.sub(" ", body)
    calls: list[tuple] = []
    for match in _CALL.finditer(body):
        name = match.group(1)
        if name in _NOT_CALLS:
            continue
        inner = _balanced(body, match.end())
        if inner is None:
            continue
        args = tuple(argument_fact(a) for a in split_arguments(inner))
        start = match.start(1)
        newlines = body.count("\n", 0, start)
        col = start - body.rfind("\n", 0, start) if newlines else column + start
        calls.append((name, DIRECT, line + newlines, col, args, "", (), "", ()))
    return tuple(calls)


def _balanced(body: str, start: int) -> str | None:
    """Text from `start` to the parenthesis that closes the one before it."""
    depth = 1
    i = start
    n = len(body)
    while i < n:
        ch = body[i]
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return body[start:i]
        i += 1
    return None
