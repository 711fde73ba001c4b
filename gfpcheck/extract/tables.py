"""Ops tables: the functions designated initialisers store in structs.

`static const struct foo_ops foo = { .run = foo_run };` binds foo_run to the
member `run` of `struct foo_ops`.  A pair nested in a member's own braces,
as in block/mq-deadline.c's

    static struct elevator_type mq_deadline = { .ops = { .init_sched = dd_init_sched } };

is recorded against the declared struct with the members in between
(`struct elevator_type`, ("ops",)): the struct that holds the pointer is
only known once linking has every file's struct members.

Tables declared by a token-pasting macro and instantiated at file scope, as
in block/blk-sysfs.c's `QUEUE_RW_ENTRY(queue_requests, "nr_requests");`, are
read by expanding each invocation and parsing the expansion.  Only macros
defined in the same file are expanded: a macro from a header would need the
header's text, and extraction reads one file.  Nor are a macro that expands
to one element of a table written around its invocations (`[0] = PINGROUP(...)`),
one invoked from another macro, or one that pastes no tokens: each needs more
than this one look.  Only the file's function-like #defines are searched,
for `##` first, so a file without such a macro pays a bytes search of its
definitions and nothing else.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from tree_sitter import Node, QueryCursor

from ..facts import Binding
from ..ruleset import Ruleset
from .declarators import base_type, split_arguments, text
from .frontend import facts_query, parser

_COMMENT = re.compile(r"/\*.*?\*/|//.*", re.DOTALL)
# A function-like #define and its logical line, continuations included.
_DEFINE = re.compile(rb"#[ \t]*define[ \t]+([A-Za-z_]\w*)\(([^)]*)\)((?:[^\n]*\\\r?\n)*[^\n]*)")
# `= {` before any other brace and a `.field =` after `{` or `,`: the body
# declares a variable with a designated initialiser (a body that is only
# `{ .f = x }`, an element of a table written around its invocations, is not
# read: its struct is not in it).
_INITIALISED = re.compile(rb"[^{]*=(?:\s|\\)*\{")
_DESIGNATOR = re.compile(rb"[{,](?:\s|\\)*\.\s*[A-Za-z_]\w*\s*=(?!=)")
_CONTINUATION = re.compile(r"\\\r?\n")
_TOKEN = re.compile(r"""(?P<literal>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*')|(?P<paste>\#\#)"""
                    r"""|\#\s*(?P<stringise>[A-Za-z_]\w*)|(?P<word>[A-Za-z_]\w*|\d\w*)""")
_PASTED = re.compile(r"\s*\x00\s*")
# Where a macro's name is not a file-scope invocation: inside a function,
# another macro's body, a struct, an initialiser, a comment or a string.
_NOT_FILE_SCOPE = frozenset({"function_definition", "compound_statement", "preproc_def", "preproc_function_def",
                             "comment", "string_literal", "char_literal", "field_declaration_list",
                             "initializer_list"})
_MAX_INVOCATION = 4096  # bytes an invocation's arguments may span


class _TableMacro(NamedTuple):
    """A function-like macro of the file that declares an ops table."""

    params: tuple[str, ...]
    variadic: bool
    body: str  # spliced onto one line, comments blanked
    end: int  # byte where the definition ends: invocations come after it


def initializer_bindings(src: bytes, pairs, lines: list[int] | None = None) -> list[Binding]:
    """A Binding for each `.field = fn` initializer_pair, typed where a
    declaration or compound literal names the struct; `lines` maps a row of
    `src` to the line reported (an expanded macro's invocation)."""
    out = []
    for pair in pairs:
        value = pair.child_by_field_name("value")
        if value.type == "pointer_expression":
            value = value.child_by_field_name("argument")
        function = text(src, value)
        if function.isupper():
            continue  # a constant, not a function
        fields = _designated_fields(src, pair)
        if not fields:
            continue
        struct, path = _initialized_type(src, pair)
        row = pair.start_point[0]
        # `.attr.show = fn` names the member holding the pointer last
        out.append(Binding(function, lines[row] if lines is not None else row + 1, field=fields[-1],
                           struct=struct, path=(path + tuple(fields[:-1])) if struct else ()))
    return out


def _designated_fields(src: bytes, pair: Node) -> list[str]:
    """Members a pair's designators name, outermost first: `.a[2].b = ` -> [a, b]."""
    out = []
    for designator in pair.children_by_field_name("designator"):
        kind = designator.type
        if kind == "field_designator":
            out.append(text(src, designator).lstrip(".").strip())
        elif kind == "field_identifier":  # the old GNU `member: value`
            out.append(text(src, designator))
    return out


def _initialized_type(src: bytes, pair: Node) -> tuple[str, tuple[str, ...]]:
    """The struct a declaration or compound literal initialises with `pair`
    somewhere inside, and the members of it that enclose the pair; ("", ())
    when nothing names the struct.  Arrays of structs add no member."""
    enclosing: list[str] = []  # innermost first
    node = pair.parent
    while node is not None:
        kind = node.type
        if kind == "initializer_pair":
            enclosing.extend(reversed(_designated_fields(src, node)))
        elif kind != "initializer_list":
            break
        node = node.parent
    if node is None:
        return "", ()
    struct = ""
    if node.type == "init_declarator":
        decl = node.parent
        if decl is not None and decl.type == "declaration":
            struct = base_type(src, decl.child_by_field_name("type"))
    elif node.type == "compound_literal_expression":
        descriptor = node.child_by_field_name("type")
        if descriptor is not None:
            struct = base_type(src, descriptor.child_by_field_name("type"))
    if not struct:
        return "", ()
    return struct, tuple(reversed(enclosing))


def macro_table_bindings(src: bytes, root: Node, definitions, rules: Ruleset) -> list[Binding]:
    """Bindings of the tables that file-scope invocations of the file's own
    token-pasting macros declare, each on the line of its invocation.
    `definitions` are the file's function-like #define nodes in source order;
    one with no `##` costs one bytes search of its own text."""
    macros = _table_macros(src, definitions)
    if not macros:
        return []
    expansions: list[str] = []
    lines: list[int] = []
    for name, line, args in _invocations(src, root, macros):
        macro = macros[name]
        expanded = _expand(macro.body, macro.params, macro.variadic, args)
        if expanded is not None:
            expansions.append(expanded.replace("\n", " ") + ";")
            lines.append(line)
    if not expansions:
        return []
    # One expansion a line: a node's row says which invocation it came from.
    expanded_src = "\n".join(expansions).encode("utf-8", "replace")
    tree = parser().parse(expanded_src)
    pairs = QueryCursor(facts_query(rules)).captures(tree.root_node).get("init_binding", [])
    pairs.sort(key=lambda n: (n.start_byte, n.end_byte))
    return initializer_bindings(expanded_src, pairs, lines)


def _table_macros(src: bytes, definitions) -> dict[bytes, _TableMacro]:
    """Each function-like macro, by name, whose body pastes tokens and declares
    a variable with a designated initialiser; the first definition of a name wins."""
    out: dict[bytes, _TableMacro] = {}
    for node in definitions:
        start, end = node.start_byte, node.end_byte
        if src.find(b"##", start, end) < 0:
            continue
        match = _DEFINE.search(src, start, end)
        if match is None or match.group(1) in out:
            continue
        body = match.group(3)
        if _INITIALISED.match(body) is None or _DESIGNATOR.search(body) is None:
            continue
        params = match.group(2).decode("utf-8", "replace")
        names = [p.strip() for p in params.split(",")] if params.strip() else []
        variadic = bool(names) and names[-1] == "..."
        if variadic:
            names.pop()
        if not all(map(str.isidentifier, names)):
            continue  # GNU `args...` and the like: not expanded
        # spliced first, as the preprocessor does: a // comment runs to the end of the body
        one_line = _CONTINUATION.sub(" ", body.decode("utf-8", "replace"))
        out[match.group(1)] = _TableMacro(tuple(names), variadic, _COMMENT.sub(" ", one_line), match.end())
    return out


def _invocations(src: bytes, root: Node, macros: dict[bytes, _TableMacro]):
    """(macro name, line, arguments) of each invocation at file scope after the definition."""
    pattern = re.compile(rb"(?<![\w#.>])(" + b"|".join(map(re.escape, sorted(macros))) + rb")\s*\(")
    line, counted = 1, 0
    for match in pattern.finditer(src):
        name = match.group(1)
        start = match.start(1)
        if start < macros[name].end or not _at_file_scope(root, start, match.end(1)):
            continue
        inner = _parenthesised(src, match.end() - 1)
        if inner is None:
            continue
        line += src.count(b"\n", counted, start)
        counted = start
        yield name, line, [a.strip() for a in split_arguments(inner)]


def _at_file_scope(root: Node, start: int, end: int) -> bool:
    """Whether the text at start..end stands outside every function, struct,
    initialiser, #define, comment and string: where a table may be declared."""
    node = root.descendant_for_byte_range(start, end)
    while node is not None:
        if node.type in _NOT_FILE_SCOPE:
            return False
        node = node.parent
    return True


def _parenthesised(src: bytes, start: int) -> str | None:
    """The text inside the parentheses opening at `start`, or None when they do
    not close within _MAX_INVOCATION bytes."""
    depth = 0
    quote = 0
    i = start
    end = min(len(src), start + _MAX_INVOCATION)
    while i < end:
        ch = src[i]
        if quote:
            if ch == 0x5C:  # a backslash escapes the next byte
                i += 1
            elif ch == quote:
                quote = 0
        elif ch == 0x22 or ch == 0x27:
            quote = ch
        elif ch == 0x28:
            depth += 1
        elif ch == 0x29:
            depth -= 1
            if depth == 0:
                return src[start + 1:i].decode("utf-8", "replace")
        i += 1
    return None


def _expand(body: str, params: tuple[str, ...], variadic: bool, args: list[str]) -> str | None:
    """The macro body with `args` substituted and `##` pasted; `#param` becomes
    an empty string (names and modes are not what a binding needs).  None when
    the arguments do not fit the parameters."""
    if len(args) < len(params) or (len(args) > len(params) and not variadic):
        return None
    values = dict(zip(params, args))
    if variadic:
        values["__VA_ARGS__"] = ", ".join(args[len(params):])
    out = []
    last = 0
    for match in _TOKEN.finditer(body):
        out.append(body[last:match.start()])
        last = match.end()
        kind = match.lastgroup
        if kind == "word":
            out.append(values.get(match.group(), match.group()))
        elif kind == "paste":
            out.append("\x00")
        elif kind == "stringise" and match.group("stringise") in values:
            out.append('""')
        else:
            out.append(match.group())
    out.append(body[last:])
    return _PASTED.sub("", "".join(out))
