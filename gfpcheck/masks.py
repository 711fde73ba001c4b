"""GFP mask expressions evaluated as bits.

A mask is known bit by bit: `GFP_KERNEL & ~__GFP_FS` has __GFP_FS known clear,
`mapping_gfp_constraint(m, ~__GFP_FS)` too (the mapping's own mask is unknown,
but the AND clears __GFP_FS), and `gfp | __GFP_ZERO` keeps whatever `gfp` is.
Names of bits, masks and mask-returning helpers come from the rules; every
other name is looked up in an environment (a function's parameters and
locals) and is unknown when absent.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

_TOKEN = re.compile(
    r"\s*(?:(?P<num>0[xX][0-9a-fA-F]+|\d+)[uUlL]*|(?P<name>[A-Za-z_]\w*)|(?P<arg>\$\d+|\$\?)"
    r"|(?P<op>\|\||&&|[|&^~!()?:,]))"
)
# `(__force gfp_t)x` and friends: casts carry no bits.
_CAST = re.compile(r"\(\s*(?:__force\s+)?(?:const\s+)?(?:gfp_t|unsigned\s+int|unsigned\s+long|unsigned|int|long)\s*\)")


@dataclass(frozen=True, slots=True)
class Mask:
    """Bits of a mask: `known` says which bits are known, `value` their state."""

    known: int
    value: int

    def __or__(self, other: Mask) -> Mask:
        ones = (self.known & self.value) | (other.known & other.value)
        zeros = (self.known & ~self.value) & (other.known & ~other.value)
        return Mask(ones | zeros, ones)

    def __and__(self, other: Mask) -> Mask:
        ones = (self.known & self.value) & (other.known & other.value)
        zeros = (self.known & ~self.value) | (other.known & ~other.value)
        return Mask(ones | zeros, ones)

    def __xor__(self, other: Mask) -> Mask:
        known = self.known & other.known
        return Mask(known, (self.value ^ other.value) & known)

    def invert(self, universe: int) -> Mask:
        return Mask(self.known, ~self.value & self.known & universe)

    def join(self, other: Mask) -> Mask:
        """The mask when either value is possible (a `?:` or two assignments)."""
        known = self.known & other.known & ~(self.value ^ other.value)
        return Mask(known, self.value & known)

    def is_set(self, bit: int) -> bool:
        return bool(self.known & self.value & bit)

    def is_clear(self, bit: int) -> bool:
        return bool(self.known & ~self.value & bit)


UNKNOWN = Mask(0, 0)


class MaskSyntaxError(ValueError):
    """A mask expression the evaluator cannot read."""


# Parentheses, operators and helper calls nest at most this deep in a mask the
# evaluator reads; real masks nest a few levels.  Deeper text is not a mask it
# can read (and would exhaust Python's stack in a recursive parser).
MAX_NESTING = 48
# Mask helpers (mask_functions) whose templates call helpers, at most this deep:
# a template that calls itself is refused, not followed forever.
MAX_HELPER_DEPTH = 8


def nesting(text: str) -> int:
    """How deep the parentheses of `text` nest."""
    depth = deepest = 0
    for ch in text:
        if ch == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif ch == ")":
            depth -= 1
    return deepest


def _tokens(text: str) -> list[tuple[str, str]]:
    text = _CAST.sub(" ", text)
    out: list[tuple[str, str]] = []
    pos = 0
    end = len(text.rstrip())
    while pos < end:
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise MaskSyntaxError(f"unexpected text at {text[pos:pos + 20]!r}")
        kind = m.lastgroup or "op"
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


class _Parser:
    """Precedence climbing over `?:`, `|`, `^`, `&`, unary `~`, calls and names."""

    def __init__(self, tokens: list[tuple[str, str]], lookup: Callable[[str], Mask],
                 call: Callable[[str, list[Mask]], Mask], args: list[Mask], universe: int):
        self.toks = tokens
        self.i = 0
        self.lookup = lookup
        self.call = call
        self.args = args
        self.universe = universe
        self.depth = 0

    def peek(self) -> str | None:
        return self.toks[self.i][1] if self.i < len(self.toks) else None

    def take(self, want: str | None = None) -> tuple[str, str]:
        if self.i >= len(self.toks):
            raise MaskSyntaxError("unexpected end of mask")
        tok = self.toks[self.i]
        if want is not None and tok[1] != want:
            raise MaskSyntaxError(f"expected {want!r}, found {tok[1]!r}")
        self.i += 1
        return tok

    def parse(self) -> Mask:
        value = self.ternary()
        if self.i != len(self.toks):
            raise MaskSyntaxError(f"unexpected {self.toks[self.i][1]!r}")
        return value

    def ternary(self) -> Mask:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise MaskSyntaxError(f"nested more than {MAX_NESTING} levels deep")
        cond = self.logical()
        if self.peek() == "?":
            self.take("?")
            left = self.ternary()
            self.take(":")
            right = self.ternary()
            cond = left.join(right)
        self.depth -= 1
        return cond

    def logical(self) -> Mask:
        value = self.bitor()
        while self.peek() in ("||", "&&"):
            self.take()
            self.bitor()
            value = UNKNOWN
        return value

    def bitor(self) -> Mask:
        value = self.bitxor()
        while self.peek() == "|":
            self.take()
            value = value | self.bitxor()
        return value

    def bitxor(self) -> Mask:
        value = self.bitand()
        while self.peek() == "^":
            self.take()
            value = value ^ self.bitand()
        return value

    def bitand(self) -> Mask:
        value = self.unary()
        while self.peek() == "&":
            self.take()
            value = value & self.unary()
        return value

    def unary(self) -> Mask:
        invert = False
        unknown = False
        while (tok := self.peek()) in ("~", "!"):  # a loop: `~~~~x` must not recurse
            self.take()
            if tok == "~":
                invert = not invert
            else:
                unknown = True
        value = self.primary()
        if unknown:
            return UNKNOWN
        return value.invert(self.universe) if invert else value

    def primary(self) -> Mask:
        kind, text = self.take()
        if text == "(":
            value = self.ternary()
            self.take(")")
            return value
        if kind == "num":
            return Mask(self.universe, int(text, 0) & self.universe)
        if kind == "arg":
            if text == "$?":
                return UNKNOWN
            index = int(text[1:])
            return self.args[index] if index < len(self.args) else UNKNOWN
        if kind == "name":
            if self.peek() == "(":
                self.take("(")
                call_args: list[Mask] = []
                if self.peek() != ")":
                    call_args.append(self.ternary())
                    while self.peek() == ",":
                        self.take(",")
                        call_args.append(self.ternary())
                self.take(")")
                return self.call(text, call_args)
            return self.lookup(text)
        raise MaskSyntaxError(f"unexpected {text!r}")


class MaskAlgebra:
    """Evaluates mask expressions against the bits, masks and helpers of a rule set."""

    def __init__(self, bits: Mapping[str, int], masks: Mapping[str, str],
                 functions: Mapping[str, str]):
        self.universe = 0
        for bit in bits.values():
            self.universe |= bit
        self.names: dict[str, Mask] = {name: Mask(self.universe, bit) for name, bit in bits.items()}
        self.functions = dict(functions)
        for name, text in masks.items():
            self.names[name] = self.evaluate(text)

    def evaluate(self, text: str, env: Mapping[str, Mask] | None = None,
                 args: list[Mask] | None = None, helpers: tuple[str, ...] = ()) -> Mask:
        """The bits of `text`; names found in neither the rules nor `env` are unknown.
        `helpers` are the mask helpers whose templates are being evaluated.

        Raises MaskSyntaxError when the text is not a mask expression, nests too
        deeply, or calls a helper whose template calls itself.
        """
        env = env or {}

        def lookup(name: str) -> Mask:
            found = self.names.get(name)
            if found is not None:
                return found
            return env.get(name, UNKNOWN)

        def call(name: str, call_args: list[Mask]) -> Mask:
            template = self.functions.get(name)
            if template is None:
                return UNKNOWN
            if name in helpers:
                raise MaskSyntaxError(f"{name}() calls itself (through {' -> '.join(helpers + (name,))})")
            if len(helpers) >= MAX_HELPER_DEPTH:
                raise MaskSyntaxError(f"mask helpers call each other more than {MAX_HELPER_DEPTH} deep")
            return self.evaluate(template, args=call_args, helpers=helpers + (name,))

        return _Parser(_tokens(text), lookup, call, args or [], self.universe).parse()

    def try_evaluate(self, text: str, env: Mapping[str, Mask] | None = None) -> Mask:
        """Like evaluate, but unreadable text is simply unknown."""
        try:
            return self.evaluate(text, env)
        except MaskSyntaxError:
            return UNKNOWN

    def free_names(self, text: str) -> frozenset[str]:
        """Names in `text` that are neither rule masks nor helpers: parameters, locals."""
        try:
            toks = _tokens(text)
        except MaskSyntaxError:
            return frozenset()
        names = set()
        for i, (kind, value) in enumerate(toks):
            if kind != "name" or value in self.names:
                continue
            is_call = i + 1 < len(toks) and toks[i + 1][1] == "("
            if not is_call:
                names.add(value)
        return frozenset(names)

    def is_mask_text(self, text: str) -> bool:
        """True when `text` names at least one rule bit or mask (a literal mask)."""
        try:
            toks = _tokens(text)
        except MaskSyntaxError:
            return False
        return any(kind == "name" and value in self.names for kind, value in toks)
