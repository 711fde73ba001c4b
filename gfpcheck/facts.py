"""What extraction knows about one source file: plain, immutable, picklable data.

Extraction is per file and never looks at another file; everything that needs
the whole tree (which function a name means, what a field call reaches) is
decided later by linking.

A kernel tree yields millions of call sites, so the two most numerous records
are plain tuples read through the index constants below.  A function's call
sites and control flow stay encoded until an analysis asks for them: the
whole-tree stages work from `callees` (each plainly called name, once) and
only decode the functions whose `detail` says a call needs more than its
name.  `encode` and `decode` turn a FileFacts into bytes and back (marshal:
fast, and exact for these types); the bytes are what the cache stores and
workers send.
"""

from __future__ import annotations

import marshal
import re
from typing import NamedTuple

# -- call sites: (name, kind, line, column, args, base, path, result, constants) --
CALL_NAME = 0  # called identifier; for FIELD calls the field; "" for OTHER
CALL_KIND = 1
CALL_LINE = 2
CALL_COLUMN = 3
CALL_ARGS = 4  # per argument: its text where it may matter (a name, or gfp text), else None
CALL_BASE = 5  # FIELD: variable the access starts from ("" when not a plain name)
CALL_PATH = 6  # FIELD: fields between the base and the called field
CALL_RESULT = 7  # variable the result is assigned to, ""
CALL_CONSTANTS = 8  # per argument: its text when constant() reads it (3, NULL, A | B), else None; () when none is
CallSite = tuple

DIRECT = 0  # name(...): a function, a macro, a parameter holding a function
FIELD = 1  # base->path.name(...): a function pointer in a struct
OTHER = 2  # (*table[i])(...), f()(...): nothing to resolve

# -- parameters: (name, type, pointer, line) -----------------------------------
PARAM_NAME = 0
PARAM_TYPE = 1  # base type: "struct btrfs_trans_handle", "handle_t", "gfp_t"
PARAM_POINTER = 2  # levels of indirection: 1 for `handle_t *h`
PARAM_LINE = 3
Param = tuple


class Binding(NamedTuple):
    """A function stored where an indirect call can find it.

    `.field = fn` in an initializer of `struct` (nested in members' braces,
    `.ops = { .field = fn }`, `path` names those members: the struct holding
    the pointer is reached from `struct` through them at linking);
    `base->path.field = fn` at run time (struct unknown until linking types
    `base`); or `BINDER(..., fn)` with a dispatch `key`.
    """

    function: str
    line: int
    field: str = ""
    struct: str = ""
    base: str = ""
    path: tuple[str, ...] = ()
    key: str = ""


class Function(NamedTuple):
    """A function definition, or a function-like macro whose body calls something."""

    name: str
    line: int
    column: int
    end_line: int
    static: bool
    macro: bool
    entry: bool  # defined through an entry macro (SYSCALL_DEFINEn)
    noreturn: bool  # marked __noreturn where it is defined
    returns_pointer: bool
    return_type: str
    params: tuple[Param, ...]
    # Plain calls by name, each name once (sorted), and how often each is called:
    # calls to something other than a rules API, with no mask among their arguments.
    callees: tuple[str, ...]
    callee_counts: tuple[int, ...]
    # Some call needs per-site analysis: a rules API (allocator, scope,
    # transaction, dispatcher, noreturn), a call through a member or a
    # parameter, or an argument that is a mask.
    detail: bool
    calls: bytes  # every call site in evaluation order, marshal-encoded (see call_sites)
    # Statements that shape control flow, marshal-encoded (see flow_events);
    # b"" when the body is straight-line code.
    flow: bytes
    locals: tuple[tuple[str, str], ...]  # (name, base type) of struct-typed locals
    mask_locals: tuple[tuple[str, tuple[str, ...]], ...]  # mask-typed local -> expressions assigned
    bindings: tuple[Binding, ...]  # x->f = fn inside the body


class FileFacts(NamedTuple):
    path: str  # relative to the scanned root, "/" separators
    functions: tuple[Function, ...]
    bindings: tuple[Binding, ...]  # file-scope initializers and binder macros
    structs: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]  # struct -> ((field, type), ...)
    typedefs: tuple[tuple[str, str], ...]  # alias -> type
    globals: tuple[tuple[str, str], ...]  # variable -> type
    arg_names: tuple[str, ...]  # every plain name passed as a call argument, sorted (function pointers among them)
    error_nodes: int  # 1 when the parse has ERROR or MISSING nodes
    problem: str = ""  # why the file was degraded or skipped, "" when fine


def empty_facts(path: str, problem: str) -> FileFacts:
    """Facts of a file that could not be read or parsed."""
    return FileFacts(path, (), (), (), (), (), (), 0, problem)


# -- flow events ----------------------------------------------------------------
# Function.flow decodes to a tuple of events (key, kind, a, b, c, payload),
# sorted by key: a call's key is its end byte (inner calls finish first), a
# statement's its start byte.  a/b/c are the byte boundaries of the
# statement's parts (see propagate.flowtree) and payload the call index,
# the label, an `if` condition's text, a `switch` subject's text, a `case`
# value's text ("" for default), for a `return` (what it returns, its line,
# its column), and for an assignment to a variable some condition tests
# (the variable, the constant or variable assigned, or None: any other value,
# `x++`, `&x`).
EV_CALL = 0
EV_RETURN = 1
EV_GOTO = 2
EV_LABEL = 3
EV_IF = 4
EV_LOOP = 5
EV_SWITCH = 6
EV_CASE = 7
EV_BREAK = 8
EV_CONTINUE = 9
EV_ASSIGN = 10


def call_sites(function: Function) -> tuple[CallSite, ...]:
    """The function's call sites, decoded."""
    return marshal.loads(function.calls) if function.calls else ()


def flow_events(function: Function) -> tuple:
    """The function's statement and call events, or () for straight-line code."""
    return marshal.loads(function.flow) if function.flow else ()


def encode(facts: FileFacts) -> bytes:
    """Bytes for the cache and for workers to hand back; `decode` inverts it."""
    functions = tuple(tuple(f[:-1]) + (tuple(map(tuple, f.bindings)),) for f in facts.functions)
    plain = (facts.path, functions, tuple(map(tuple, facts.bindings)), facts.structs, facts.typedefs,
             facts.globals, facts.arg_names, facts.error_nodes, facts.problem)
    return marshal.dumps(plain)


def decode(data: bytes) -> FileFacts:
    """Inverse of encode; raises ValueError (or EOFError, TypeError) on bytes it did not make."""
    path, functions, bindings, structs, typedefs, globals_, arg_names, error_nodes, problem = marshal.loads(data)
    new = tuple.__new__
    return FileFacts(
        path,
        # most functions bind nothing: their tuple is the Function as it stands
        tuple(new(Function, f[:-1] + (tuple(new(Binding, b) for b in f[-1]),)) if f[-1] else new(Function, f)
              for f in functions),
        tuple(new(Binding, b) for b in bindings),
        structs, typedefs, globals_, arg_names, error_nodes, problem,
    )


# -- constants as C writes them ------------------------------------------------
_NUMBER = re.compile(r"(-?)(0[xX][0-9a-fA-F]+|\d+)[uUlL]*")
_FLAGS = re.compile(r"[A-Z][A-Z0-9_]*(?:\s*\|\s*[A-Z][A-Z0-9_]*)*")


def constant(text: str) -> str | None:
    """The constant a text spells, normalised: "0" for 0, NULL and false, decimal for
    numbers (C's octal 0644 too), sorted "A|B" for an or of macro names; None when
    it is not one."""
    text = text.strip()
    if text in ("NULL", "false"):
        return "0"
    if text == "true":
        return "1"
    m = _NUMBER.fullmatch(text)
    if m:
        digits = m.group(2)
        if len(digits) > 1 and digits[0] == "0" and digits[1] not in "xX":  # C octal: 0644
            if not set(digits) <= set("01234567"):
                return None
            return str(int(m.group(1) + digits, 8))
        return str(int(m.group(1) + digits, 0))
    if _FLAGS.fullmatch(text):
        return "|".join(sorted(part.strip() for part in text.split("|")))
    return None

