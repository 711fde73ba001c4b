"""What a kernel configuration makes of a source file's conditionals.

`#if`/`#ifdef`/`#elif`/`#else` branches the configuration rules out are
blanked, byte for byte (newlines kept, so every position stays where it
was): a header's `#else` stub then stands in for a definition the build
does not have.  `IS_ENABLED(CONFIG_X)` and its kin become `1` or `0`, padded
to the same length, so `if (IS_ENABLED(CONFIG_X))` is a constant the
extractor can prune.  A condition that names anything but CONFIG_ symbols
and numbers (an include guard, `MODULE`, `__KERNEL__`) is unknown, and an
unknown condition keeps every branch, as a scan without a configuration
does.  Two kinds of other names are known to be undefined: a file's own
switch whose `#define` it keeps commented out (`//#define INTERNAL_VERIFY`)
and never defines, and a build switch (rules: build_switches, `DEBUG`) that
only the file itself or its Makefile's `-D` could define, when neither does.

`evaluate` is the three-valued evaluator both use: True, False, or None for
unknown; `&&` and `||` decide whenever one side does.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .dotconfig import KernelConfig

Atom = Callable[[str, tuple[str, ...] | None], int | None]  # (name, call arguments or None) -> value

_TOKEN = re.compile(r"\s*(?:(0[xX][0-9a-fA-F]+|\d+)[uUlL]*|([A-Za-z_]\w*)|(\|\||&&|==|!=|<=|>=|<<|>>|[!()<>,])"
                    r"|(\S))")
_COMPARE = {"==": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
            ">": lambda a, b: a > b, "<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b}
_CONFIG_MACROS = ("IS_ENABLED", "IS_BUILTIN", "IS_MODULE", "IS_REACHABLE")
_CONFIG_CALL = re.compile(rb"\b(IS_ENABLED|IS_BUILTIN|IS_MODULE|IS_REACHABLE)\s*\(\s*(CONFIG_\w+)\s*\)")
_DIRECTIVE = re.compile(rb"^[ \t]*#[ \t]*(ifdef|ifndef|if|elifdef|elifndef|elif|else|endif)\b", re.M)
_NOT_NEWLINE = re.compile(rb"[^\n]")
_COMMENT = re.compile(r"/\*.*?(\*/|$)|//.*", re.S)
_DEFINE = re.compile(rb"^[ \t]*#[ \t]*define[ \t]+(\w+)", re.M)
_COMMENTED_DEFINE = re.compile(rb"^[ \t]*(?://|/\*)[ \t]*#[ \t]*define[ \t]+(\w+)", re.M)


def evaluate(expression: str, atom: Atom) -> int | None:
    """The value of a C or preprocessor condition, None when it depends on
    anything `atom` cannot tell."""
    parser = _Parser(_tokens(expression), atom)
    try:
        value = parser.disjunction()
    except _Unparsable:
        return None
    return value if parser.at_end() else None


class _Unparsable(Exception):
    pass


def _tokens(expression: str) -> list[str]:
    out = []
    pos = 0
    n = len(expression)
    while pos < n:
        match = _TOKEN.match(expression, pos)
        if match is None:
            break  # trailing blanks
        pos = match.end()
        out.append(match.group(match.lastindex or 0))
    return out


class _Parser:
    """Recursive descent over ||, &&, comparisons, ! and parentheses.  An operand
    it cannot read (arithmetic, member access, a cast) is skipped up to the next
    `&&`, `||` or closing parenthesis and counts as unknown."""

    def __init__(self, tokens: list[str], atom: Atom):
        self.tokens = tokens
        self.pos = 0
        self.atom = atom

    def at_end(self) -> bool:
        return self.pos >= len(self.tokens)

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        if self.pos >= len(self.tokens):
            raise _Unparsable
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def disjunction(self) -> int | None:
        value = self.conjunction()
        while self.peek() == "||":
            self.pos += 1
            right = self.conjunction()
            if value is not None and value != 0 or right is not None and right != 0:
                value = 1
            elif value is None or right is None:
                value = None
            else:
                value = 0
        return value

    def conjunction(self) -> int | None:
        value = self.operand()
        while self.peek() == "&&":
            self.pos += 1
            right = self.operand()
            if value == 0 or right == 0:
                value = 0
            elif value is None or right is None:
                value = None
            else:
                value = 1
        return value

    def operand(self) -> int | None:
        value = self.comparison()
        if self.peek() not in (None, "&&", "||", ")", ","):
            self.skip_operand()
            return None
        return value

    def skip_operand(self) -> None:
        depth = 0
        while self.pos < len(self.tokens):
            token = self.tokens[self.pos]
            if depth == 0 and token in ("&&", "||", ")", ","):
                return
            if token == "(":
                depth += 1
            elif token == ")":
                depth -= 1
            self.pos += 1

    def comparison(self) -> int | None:
        value = self.unary()
        op = self.peek()
        if op in _COMPARE:
            self.pos += 1
            right = self.unary()
            if value is None or right is None:
                return None
            return int(_COMPARE[op](value, right))
        return value

    def unary(self) -> int | None:
        token = self.take()
        if token == "!":
            value = self.unary()
            return None if value is None else int(value == 0)
        if token == "(":
            value = self.disjunction()
            if self.take() != ")":
                raise _Unparsable
            return value
        if token[0].isdigit():
            return int(token, 0) if not token.startswith("0") or token == "0" or token[1] in "xX" else int(token, 8)
        if token[0].isalpha() or token[0] == "_":
            if token == "defined":
                return self.defined()
            if self.peek() == "(":
                return self.atom(token, self.arguments())
            return self.atom(token, None)
        raise _Unparsable

    def defined(self) -> int | None:
        parenthesised = self.peek() == "("
        if parenthesised:
            self.pos += 1
        name = self.take()
        if parenthesised and self.take() != ")":
            raise _Unparsable
        return self.atom("defined", (name,))

    def arguments(self) -> tuple[str, ...]:
        self.pos += 1  # "("
        args: list[str] = []
        current: list[str] = []
        depth = 0
        while True:
            token = self.take()
            if token == "(":
                depth += 1
            elif token == ")":
                if depth == 0:
                    break
                depth -= 1
            elif token == "," and depth == 0:
                args.append(" ".join(current))
                current = []
                continue
            current.append(token)
        args.append(" ".join(current))
        return tuple(args)


def preprocessor_atom(config: KernelConfig, undefined: frozenset[str] = frozenset()) -> Atom:
    """How `#if` reads a name under `config`: CONFIG_ symbols as autoconf.h defines
    them (`=m` defines CONFIG_X_MODULE, not CONFIG_X), the names in `undefined`
    as undefined, anything else unknown."""

    def atom(name: str, args: tuple[str, ...] | None) -> int | None:
        if name == "defined":
            if args and args[0] in undefined:
                return 0
            return _defined(config, args[0]) if args else None
        if args is not None:
            if name in _CONFIG_MACROS and len(args) == 1 and args[0].startswith("CONFIG_"):
                return config_macro(config, name, args[0])
            return None
        if name in undefined:
            return 0
        if not name.startswith("CONFIG_"):
            return None
        if not _defined(config, name):
            return 0  # an undefined name in #if is 0
        value = config.value(name)
        if value == "y" or value is None:  # CONFIG_X_MODULE
            return 1
        try:
            return int(value, 0)
        except ValueError:
            return None

    return atom


def config_macro(config: KernelConfig, macro: str, symbol: str) -> int:
    """IS_ENABLED and kin.  IS_REACHABLE of a module is taken as reachable: the
    caller may itself be part of a module."""
    value = config.value(symbol)
    if macro == "IS_BUILTIN":
        return int(value == "y")
    if macro == "IS_MODULE":
        return int(value == "m")
    return int(value in ("y", "m"))


def _defined(config: KernelConfig, name: str) -> int | None:
    if not name.startswith("CONFIG_"):
        return None
    value = config.value(name)
    if value is not None:
        return int(value != "m")
    return int(name.endswith("_MODULE") and config.value(name[:-7]) == "m")


def constant_atom(name: str, args: tuple[str, ...] | None) -> int | None:
    """C conditions after `apply_config`: only numbers are known."""
    return None


def apply_config(data: bytes, config: KernelConfig, switches: frozenset[str] = frozenset()) -> bytes:
    """`data` with the branches `config` rules out blanked and its IS_ENABLED()
    family turned into constants; same length, same line breaks.  `switches`
    are build switches no Makefile defines for this file: undefined unless the
    file defines them."""
    has_directives = b"#" in data and (b"if" in data)
    has_macros = b"IS_" in data
    if not has_directives and not has_macros:
        return data
    out = bytearray(data)
    if has_directives:
        _blank_dead_branches(out, preprocessor_atom(config, undefined_names(data, switches)))
    if has_macros:
        for match in _CONFIG_CALL.finditer(out):
            value = config_macro(config, match.group(1).decode(), match.group(2).decode())
            start, end = match.span()
            out[start:end] = str(value).encode().ljust(end - start)
    return bytes(out)


def undefined_names(data: bytes, switches: frozenset[str] = frozenset()) -> frozenset[str]:
    """Names this file's conditionals may take as undefined: `switches` and the
    switches whose `#define` the file keeps commented out, less any it defines."""
    off = set(switches)
    if b"define" in data:
        off.update(name.decode() for name in _COMMENTED_DEFINE.findall(data))
        if off:
            off.difference_update(name.decode() for name in _DEFINE.findall(data))
    return frozenset(off)


class _Group:
    """One #if ... #endif: whether its enclosing text is live, whether a branch was
    certainly taken, and whether the current branch is."""

    __slots__ = ("outer", "taken", "live")

    def __init__(self, outer: bool):
        self.outer = outer
        self.taken = False
        self.live = True


def _blank_dead_branches(out: bytearray, atom: Atom) -> None:
    stack: list[_Group] = []
    live = True
    since = 0  # where the text after the last directive starts
    source = bytes(out)
    for match in _DIRECTIVE.finditer(source):
        start = match.start()
        if not live:
            _blank(out, since, start)
        end = _line_end(source, match.end(1))
        since = end
        word = match.group(1).decode()
        if word in ("if", "ifdef", "ifndef"):
            group = _Group(live)
            stack.append(group)
            _enter(group, _condition(word, source[match.end(1):end], atom))
        elif word == "endif":
            if stack:
                live = stack.pop().outer
            if not live:
                _blank(out, start, end)
            continue
        elif stack:  # elif, elifdef, elifndef, else
            value = 1 if word == "else" else _condition(word[2:], source[match.end(1):end], atom)
            _enter(stack[-1], value)
        else:
            continue
        group = stack[-1]
        if not group.outer:
            _blank(out, start, end)
        live = group.outer and group.live
    if not live:
        _blank(out, since, len(out))


def _enter(group: _Group, value: int | None) -> None:
    """Move `group` to its next branch, whose condition has `value`."""
    if group.taken or value == 0:
        group.live = False
        return
    group.live = True
    if value is not None:
        group.taken = True


def _condition(word: str, rest: bytes, atom: Atom) -> int | None:
    text = _COMMENT.sub(" ", rest.decode("utf-8", "replace").replace("\\\n", " ")).strip()
    if word in ("ifdef", "ifndef"):
        name = text.split()[0] if text.split() else ""
        value = atom("defined", (name,)) if name else None
        if value is None or word == "ifdef":
            return value
        return int(value == 0)
    return evaluate(text, atom)


def _line_end(data: bytes, pos: int) -> int:
    """Where the line holding `pos` ends, a backslash-newline joining two into one."""
    n = len(data)
    end = data.find(b"\n", pos)
    while end > 0 and data[end - 1] == 0x5C:  # "\\"
        end = data.find(b"\n", end + 1)
    return n if end == -1 else end


def _blank(out: bytearray, start: int, end: int) -> None:
    if start < end:
        out[start:end] = _NOT_NEWLINE.sub(b" ", bytes(out[start:end]))
