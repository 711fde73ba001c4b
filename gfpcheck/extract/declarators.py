"""Names and types out of C declarators and type specifiers."""

from __future__ import annotations

import re
from sys import intern

from tree_sitter import Node

_NAME_NODES = frozenset({"identifier", "field_identifier", "type_identifier"})
_WRAPPERS = frozenset({"array_declarator", "attributed_declarator", "init_declarator"})
_IDENT = re.compile(r"[A-Za-z_]\w*")


def text(src: bytes, node: Node) -> str:
    return src[node.start_byte:node.end_byte].decode("utf-8", "replace")


def declarator_name(src: bytes, node: Node | None) -> tuple[str, int, bool]:
    """(name, pointer depth, is a function declarator) of a declarator; name "" if none."""
    pointer = 0
    function = False
    while node is not None:
        kind = node.type
        if kind in _NAME_NODES:
            return text(src, node), pointer, function
        if kind == "pointer_declarator":
            pointer += 1
            node = node.child_by_field_name("declarator")
        elif kind == "function_declarator":
            function = True
            node = node.child_by_field_name("declarator")
        elif kind in _WRAPPERS:
            node = node.child_by_field_name("declarator")
        elif kind == "parenthesized_declarator":
            node = node.named_children[0] if node.named_child_count else None
        else:
            return "", pointer, function
    return "", pointer, function


def base_type(src: bytes, node: Node | None) -> str:
    """`struct foo`, `union bar`, `handle_t`, `int`: the type a specifier names."""
    if node is None:
        return ""
    kind = node.type
    if kind in ("struct_specifier", "union_specifier", "enum_specifier"):
        name = node.child_by_field_name("name")
        keyword = kind.split("_", 1)[0]
        return f"{keyword} {text(src, name)}" if name is not None else ""
    return " ".join(text(src, node).split())


def function_declarator(node: Node | None) -> tuple[Node | None, int]:
    """The function_declarator under a definition's declarator, and how many
    pointer levels the return type has."""
    pointer = 0
    while node is not None and node.type != "function_declarator":
        kind = node.type
        if kind == "pointer_declarator":
            pointer += 1
            node = node.child_by_field_name("declarator")
        elif kind in _WRAPPERS:
            node = node.child_by_field_name("declarator")
        elif kind == "parenthesized_declarator":
            node = node.named_children[0] if node.named_child_count else None
        else:
            return None, pointer
    return node, pointer


def is_identifier(value: str) -> bool:
    return _IDENT.fullmatch(value) is not None


_SPECIAL = re.compile(r"[()\[\]{},\"'\\]")
_NESTING = re.compile(r"[(\[{\"']")


def split_arguments(inner: str) -> list[str]:
    """Split an argument list's inside at top-level commas."""
    if _NESTING.search(inner) is None:
        return inner.split(",") if inner.strip() else []
    out: list[str] = []
    depth = 0
    start = 0
    quote = ""
    escaped = -1
    for m in _SPECIAL.finditer(inner):
        ch = m.group()
        i = m.start()
        if quote:
            if ch == "\\" and i != escaped:
                escaped = i + 1
            elif ch == quote and i != escaped:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(inner[start:i])
            start = i + 1
    out.append(inner[start:])
    return out


_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.DOTALL)


def argument_fact(arg: str) -> str | None:
    """What is kept of one argument: a plain name (`&fn` -> `fn`), interned since
    names recur across millions of calls, or any text mentioning gfp (a mask),
    whitespace-normalised; None for the rest."""
    arg = arg.strip()
    if arg.isidentifier():
        return intern(arg)
    if "/" in arg:
        arg = _COMMENT.sub(" ", arg).strip()
        if arg.isidentifier():
            return intern(arg)
    first = arg[:1]
    if first == "&":
        rest = arg[1:].strip()
        if rest.isidentifier():
            return intern(rest)
    elif first == "(" and arg[-1:] == ")":
        inner = arg[1:-1].strip()
        if inner.isidentifier():
            return intern(inner)
    if "gfp" in arg or "GFP" in arg:
        return " ".join(arg.split())
    return None


_ATTRIBUTE = re.compile(r"__attribute__\s*\(\(.*?\)\)|__counted_by\w*\([^)]*\)", re.DOTALL)
_QUALIFIERS = frozenset({
    "const", "volatile", "restrict", "__restrict", "__restrict__", "register", "__user", "__iomem", "__rcu",
    "__percpu", "__force", "__maybe_unused", "__always_unused", "__unused", "__nocast", "__bitwise",
    "__private", "__kernel", "__ref", "__init", "__initdata", "__read_mostly", "__aligned",
})
_FUNCTION_POINTER = re.compile(r"\(\s*\*\s*(?:const\s+)?([A-Za-z_]\w*)\s*\)")


def parse_parameters(inner: str, line: int) -> tuple[tuple[str, str, int, int], ...]:
    """Parameters of a definition's parameter list, from its text (cheaper than
    walking the nodes): (name, base type, pointer depth, line) each."""
    if not inner or inner.strip() in ("void", ""):
        return ()
    if "/" in inner:
        inner = _COMMENT.sub(" ", inner)
    params = []
    for part in split_arguments(inner):
        if "__attribute__" in part or "__counted_by" in part:
            part = _ATTRIBUTE.sub(" ", part)
        if "(" in part:
            m = _FUNCTION_POINTER.search(part)
            params.append((m.group(1), "", 1, line) if m else ("", "", 0, line))
            continue
        words = part.replace("*", " * ").replace("[", " [ ").split()
        if "[" in words:
            words = words[:words.index("[")]
        words = [w for w in words if w not in _QUALIFIERS]
        if words == ["..."]:
            break
        if len(words) < 2 or not words[-1].isidentifier():
            params.append(("", "", 0, line))  # keeps the later parameters at their index
            continue
        name = words[-1]
        pointer = words.count("*")
        ctype = " ".join(w for w in words[:-1] if w != "*")
        params.append((name, ctype, pointer, line))
    return tuple(params)
