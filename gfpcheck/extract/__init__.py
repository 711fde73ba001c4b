"""Extraction: one C file's bytes in, its FileFacts out.

`extract_file` is a pure function of (path, bytes, rules): it reads nothing
else, so it runs in worker processes and its result can be cached by content.
One tree-sitter query (queries/facts.scm) finds every node of interest; the
captures are sorted by byte position and dealt to the function whose body
contains them.  This is the hottest code of a whole-kernel scan, so it works
on byte offsets and plain tuples wherever it can.
"""

from __future__ import annotations

import marshal
import re
from bisect import bisect_right
from operator import attrgetter, itemgetter
from sys import intern

from tree_sitter import Node, QueryCursor

from ..facts import (
    DIRECT,
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
    FIELD,
    OTHER,
    Binding,
    FileFacts,
    Function,
    constant,
    empty_facts,
)
from ..kconfig.conditions import apply_config, constant_atom, evaluate
from ..masks import MAX_NESTING, nesting
from ..ruleset import Ruleset
from .declarators import (
    argument_fact,
    base_type,
    declarator_name,
    function_declarator,
    parse_parameters,
    split_arguments,
    text,
)
from .frontend import facts_query, parser
from .macros import macro_calls
from .tables import initializer_bindings, macro_table_bindings

__all__ = ["extract_file"]

_FIELD_PATH = re.compile(r"\s*(->|\.)\s*")
_STATEMENTS = (("if", EV_IF), ("loop", EV_LOOP), ("switch", EV_SWITCH), ("case", EV_CASE),
               ("return", EV_RETURN), ("goto", EV_GOTO), ("label", EV_LABEL), ("break", EV_BREAK),
               ("continue", EV_CONTINUE), ("assign", EV_ASSIGN))
_MAX_CONDITION = 160
# A 0 or 1 standing as an operand of its own (not compared with): a condition
# worth evaluating as a constant, `if (0)` or `if (IS_ENABLED(CONFIG_X) && ...)`
# once a configuration made the macro a number.
_CONSTANT_OPERAND = re.compile(rb"(?<![\w.=<>\[])(?<![=<>] )[01](?![\w.\]])")
# Captures whose order reaches the facts; calls are paired and sorted in
# _call_parts, statements sorted by position with their calls.
_POSITIONAL = ("function", "entry", "entry_body", "call_result", "init_binding", "field_assign", "declaration",
               "struct", "typedef", "macro")


def extract_file(path: str, data: bytes, rules: Ruleset) -> FileFacts:
    """Facts of one file.  Never raises on bad input: a file that cannot be
    parsed at all comes back empty with `problem` saying why."""
    if rules.kconfig is not None:
        data = apply_config(data, rules.kconfig, rules.switches_off(path))
    data = _as_while(data, rules)
    data = _without_attributes(data, rules)
    try:
        tree = parser().parse(data)
    except Exception as exc:  # tree-sitter refuses some inputs outright
        return empty_facts(path, f"parse failed: {exc}")
    return _Extractor(path, data, rules).run(tree.root_node)


def _without_attributes(data: bytes, rules: Ruleset) -> bytes:
    """The source with each use of an attribute macro, its parenthesised
    arguments included, turned into spaces (newlines kept)."""
    pattern = rules.attribute_pattern
    if pattern is None or pattern.search(data) is None:
        return data
    out = bytearray(data)
    for match in pattern.finditer(data):
        depth, end = 0, match.end() - 1
        while end < len(data):
            depth += {40: 1, 41: -1}.get(data[end], 0)  # ( and )
            end += 1
            if depth == 0:
                break
        else:
            continue  # unbalanced: leave it to the parser
        out[match.start():end] = bytes(b if b == 10 else 32 for b in data[match.start():end])
    return bytes(out)


def _as_while(data: bytes, rules: Ruleset) -> bytes:
    """The source with each do-while terminating macro spelled `while` and
    padded with spaces to its length, so positions do not move."""
    pattern = rules.do_while_pattern
    if pattern is None or pattern.search(data) is None:
        return data
    out = bytearray(data)
    for match in pattern.finditer(data):
        start, end = match.span(1)
        out[start:end] = b"while".ljust(end - start)
    return bytes(out)


class _Scope:
    """What is gathered for one function body before it becomes a Function."""

    __slots__ = (
        "body_start",
        "calls",
        "column",
        "declarations",
        "end",
        "end_line",
        "entry",
        "events",
        "field_assigns",
        "line",
        "name",
        "node",
        "noreturn",
        "params",
        "return_type",
        "returns_pointer",
        "start",
        "static",
    )

    def __init__(self, node: Node, body: Node):
        self.node = node
        self.start = node.start_byte
        self.end = body.end_byte
        self.body_start = body.start_byte
        self.end_line = body.end_point[0] + 1
        self.events: list[tuple] = []
        self.calls: list[tuple[int, Node, Node]] = []  # (end byte, callee, argument list)
        self.declarations: list[Node] = []
        self.field_assigns: list[Node] = []


class _Extractor:
    def __init__(self, path: str, src: bytes, rules: Ruleset):
        self.path = path
        self.src = src
        self.rules = rules
        self.results: dict[int, str] = {}  # callee start byte -> variable assigned the result
        self.args_cache: dict[bytes, tuple] = {}
        self.constants_cache: dict[bytes, tuple] = {}
        self.masked_args: set[int] = set()  # ids of cached argument tuples holding a mask
        self.special = rules.special_names
        self.mask_names = rules.algebra.names
        self.problem = ""  # why the facts are incomplete, when they are

    # -- driver ------------------------------------------------------------
    def run(self, root: Node) -> FileFacts:
        captures = QueryCursor(facts_query(self.rules)).captures(root)
        # The cursor's order for captures of different patterns depends on the
        # parser's history, not only on the file: facts keep these in source order.
        for name in _POSITIONAL:
            nodes = captures.get(name)
            if nodes:
                nodes.sort(key=_start_end)
        scopes = self._scopes(captures)
        starts = [s.start for s in scopes]
        enclosing = _enclosing(scopes)

        def owners(nodes):
            """(scope or None, node) for each node, by the position of its start."""
            for node in nodes:
                pos = node.start_byte
                i = bisect_right(starts, pos) - 1
                while i >= 0 and pos >= scopes[i].end:
                    i = enclosing[i]
                yield (scopes[i] if i >= 0 else None), node

        src = self.src
        dead = _dead_branches(src, captures.get("if", ()))
        if dead:
            _drop_dead(captures, dead)
        results = self.results
        for node in captures.get("call_result", ()):
            if node.type == "assignment_expression":
                left, right = node.child_by_field_name("left"), node.child_by_field_name("right")
                results[right.start_byte] = src[left.start_byte:left.end_byte].decode("utf-8", "replace")
            else:
                right = node.child_by_field_name("value")
                results[right.start_byte] = declarator_name(src, node.child_by_field_name("declarator"))[0]

        file_calls = []
        for scope, callee, args in self._call_parts(captures):
            pos = callee.start_byte
            i = bisect_right(starts, pos) - 1
            while i >= 0 and pos >= scopes[i].end:
                i = enclosing[i]
            if i < 0:
                file_calls.append((callee, args))
            else:
                scope = scopes[i]
                if pos >= scope.body_start:
                    scope.calls.append((args.end_byte, callee, args))
        for name, kind in _STATEMENTS:
            for scope, node in owners(captures.get(name, ())):
                if scope is not None:
                    scope.events.append(self._statement(kind, node))
        global_declarations = []
        for scope, node in owners(captures.get("declaration", ())):
            if scope is None:
                global_declarations.append(node)
            else:
                scope.declarations.append(node)
        for scope, node in owners(captures.get("field_assign", ())):
            if scope is not None:
                scope.field_assigns.append(node)

        functions = [self._function(scope) for scope in scopes]
        functions.extend(self._macros(captures.get("macro", ())))
        functions.sort(key=lambda f: (f.line, f.column, f.name))
        definitions = captures.get("macro", [])
        if "broken_macro" in captures:
            definitions = sorted(definitions + captures["broken_macro"], key=_start)
        bindings = (initializer_bindings(src, captures.get("init_binding", ())) + self._binder_calls(file_calls)
                    + macro_table_bindings(src, root, definitions, self.rules))
        structs, typedefs = self._types(captures.get("struct", ()), captures.get("typedef", ()))
        return FileFacts(
            path=self.path,
            functions=tuple(functions),
            bindings=tuple(sorted(bindings, key=lambda b: (b.line, b.function, b.field, b.key))),
            structs=structs,
            typedefs=typedefs,
            globals=tuple(sorted(set(self._globals(global_declarations)))),
            arg_names=self._arg_names(),
            error_nodes=int(root.has_error),
            problem=self.problem,
        )

    def _call_parts(self, captures):
        """(None, callee, argument list) of every call.  The query captures both
        parts separately; a callee ends where its argument list begins, which
        pairs them up without asking the tree for each call's children."""
        callees = captures.get("call_fn", [])
        arglists = captures.get("call_args", [])
        callees.sort(key=_start_end)
        arglists.sort(key=_start)
        src = self.src
        paired = len(callees) == len(arglists)
        if paired:
            for callee, args in zip(callees, arglists):
                gap = args.start_byte - callee.end_byte
                if gap < 0 or (gap and src[callee.end_byte:args.start_byte].strip()):
                    paired = False
                    break
        if paired:
            return ((None, c, a) for c, a in zip(callees, arglists))
        return ((None, a.parent.child_by_field_name("function"), a) for a in arglists)

    # -- functions -----------------------------------------------------------
    def _scopes(self, captures) -> list[_Scope]:
        scopes: list[_Scope] = []
        for node in captures.get("function", ()):
            body = node.child_by_field_name("body")
            if body is None:
                continue
            scope = _Scope(node, body)
            if self._definition_header(scope):
                scopes.append(scope)
        entries = sorted(captures.get("entry", ()), key=_start)
        bodies = sorted(captures.get("entry_body", ()), key=_start)
        for stmt, body in zip(entries, bodies):
            scope = _Scope(stmt, body)
            if self._entry_header(scope, stmt):
                scopes.append(scope)
        scopes.sort(key=lambda s: (s.start, -s.end))
        return scopes

    def _definition_header(self, scope: _Scope) -> bool:
        node = scope.node
        src = self.src
        declarator = node.child_by_field_name("declarator")
        type_node = node.child_by_field_name("type")
        if declarator is None:
            return False
        prefix = src[node.start_byte:declarator.start_byte]
        scope.static = b"static" in prefix.split()
        scope.noreturn = b"noreturn" in prefix
        scope.entry = False
        row, col = node.start_point
        scope.line, scope.column = row + 1, col + 1
        fdecl, pointer = function_declarator(declarator)
        if fdecl is None:
            # COMPAT_SYSCALL_DEFINE0(name) { ... } parses as type `MACRO`, declarator `(name)`
            macro = text(src, type_node) if type_node is not None else ""
            pattern = self.rules.name_macros.get(macro)
            name = declarator_name(src, declarator)[0]
            if pattern is None or not name:
                return False
            scope.name = pattern.format(name)
            scope.entry = macro in self.rules.entry_macros
            scope.returns_pointer, scope.return_type, scope.params = False, "long", ()
            return True
        inner = fdecl.child_by_field_name("declarator")
        if inner is not None and inner.type == "function_declarator":
            return False  # a name a macro builds: int CONCATENATE(FAMILY, _register)(void)
        name = declarator_name(src, inner)[0]
        if not name:
            return False
        scope.name = name
        scope.returns_pointer = pointer > 0
        scope.return_type = base_type(src, type_node)
        plist = fdecl.child_by_field_name("parameters")
        scope.params = parse_parameters(text(src, plist)[1:-1], plist.start_point[0] + 1) \
            if plist is not None else ()
        return True

    def _entry_header(self, scope: _Scope, stmt: Node) -> bool:
        src = self.src
        call = stmt.named_children[0]
        macro = text(src, call.child_by_field_name("function"))
        pattern = self.rules.name_macros.get(macro)
        args_node = call.child_by_field_name("arguments")
        if pattern is None or args_node is None:
            return False
        args = [a.strip() for a in split_arguments(text(src, args_node)[1:-1])]
        if not args or not args[0].isidentifier():
            return False
        scope.name = pattern.format(args[0])
        row, col = stmt.start_point
        scope.line, scope.column = row + 1, col + 1
        scope.static, scope.entry, scope.noreturn = False, macro in self.rules.entry_macros, False
        scope.returns_pointer, scope.return_type = False, "long"
        params = []
        for i in range(1, len(args) - 1, 2):
            ctype = args[i].replace("__user", " ").replace("const", " ")
            params.append((args[i + 1], " ".join(ctype.replace("*", " ").split()), ctype.count("*"), scope.line))
        scope.params = tuple(params)
        return True

    def _function(self, scope: _Scope) -> Function:
        scope.calls.sort(key=_first)
        make = self._call
        calls = tuple(make(callee, args) for _end, callee, args in scope.calls)
        flow = b""
        events = _tested_assignments(scope.events, self.src)
        if events:
            events.extend((end, EV_CALL, 0, 0, 0, index) for index, (end, _c, _a) in enumerate(scope.calls))
            events.sort(key=_first)
            flow = marshal.dumps(tuple(events))
        needs_types = bool(scope.field_assigns) or any(c[1] == FIELD for c in calls)
        local_types, mask_locals = self._locals(scope, needs_types) if scope.declarations else ((), ())
        bindings = tuple(b for b in map(self._field_assign, scope.field_assigns) if b is not None)
        callees, counts, detail = self._callees(calls, scope.params, mask_locals)
        return Function(scope.name, scope.line, scope.column, scope.end_line, scope.static, False, scope.entry,
                        scope.noreturn, scope.returns_pointer, scope.return_type, scope.params, callees, counts, detail,
                        marshal.dumps(calls) if calls else b"", flow, local_types, mask_locals, bindings)

    def _callees(self, calls: tuple, params: tuple, mask_locals: tuple) -> tuple[tuple, tuple, bool]:
        """(plain callee names, how often each is called, whether any call needs per-site
        analysis); see facts.Function.  Also records every plain name passed as an argument."""
        special = self.special
        param_names = {p[0] for p in params}
        masked = self.masked_args
        local_masks = {name for name, _values in mask_locals}
        counts: dict[str, int] = {}
        detail = False
        for call in calls:
            name = call[0]
            args = call[4]
            if not detail and args and (id(args) in masked or (local_masks and not local_masks.isdisjoint(args))):
                detail = True
            if call[1] != DIRECT or name in special or name in param_names:
                detail = True
                continue
            counts[name] = counts.get(name, 0) + 1
        names = tuple(sorted(counts))
        return names, tuple(counts[n] for n in names), detail

    def _arg_names(self) -> tuple[str, ...]:
        """Every plain name passed as an argument in the file, sorted."""
        names = set()
        for args in self.args_cache.values():
            names.update(args)
        names.discard(None)
        return tuple(sorted(n for n in names if n.isidentifier()))

    def _arguments(self, inner: bytes) -> tuple:
        """What is kept of a call's arguments (declarators.argument_fact), shared by
        every call with the same argument text; a tuple that holds a mask is noted.
        The arguments that are constants are kept apart (constants_cache)."""
        args = self.args_cache.get(inner)
        if args is None:
            parts = split_arguments(inner.decode("utf-8", "replace"))
            constants = tuple(_constant_argument(a) for a in parts)
            self.constants_cache[inner] = constants if any(constants) else ()
            args = tuple([argument_fact(a) for a in parts])
            if any(a is not None and not a.isidentifier() and nesting(a) > MAX_NESTING for a in args):
                # deeper than any mask the evaluator reads: dropped, and the file counted as degraded
                self.problem = f"nesting too deep: a call argument nested more than {MAX_NESTING} levels is not read"
                args = tuple(None if a is not None and nesting(a) > MAX_NESTING else a for a in args)
            self.args_cache[inner] = args
            masks = self.mask_names
            if any(a is not None and (a in masks or not a.isidentifier()) for a in args):
                self.masked_args.add(id(args))
        return args

    def _call(self, callee: Node, args_node: Node) -> tuple:
        src = self.src
        start = callee.start_byte
        row, col = callee.start_point
        line, column = row + 1, col + 1
        inner = src[args_node.start_byte + 1:args_node.end_byte - 1]
        args = self._arguments(inner) if inner else ()
        constants = self.constants_cache[inner] if inner else ()
        result = self.results.get(start, "")
        kind = callee.type
        if kind == "identifier":
            return (intern(src[start:callee.end_byte].decode("utf-8", "replace")), DIRECT, line, column, args, "",
                    (), result, constants)
        if kind == "field_expression":
            names = _FIELD_PATH.split(text(src, callee))[::2]
            if all(map(str.isidentifier, names[1:])):
                base = names[0] if names[0].isidentifier() else ""
                return (names[-1], FIELD, line, column, args, base, tuple(names[1:-1]), result, constants)
        elif kind == "parenthesized_expression":
            name = text(src, callee)[1:-1].strip().lstrip("*").strip()
            if name.isidentifier():
                return (name, DIRECT, line, column, args, "", (), result, constants)
        return ("", OTHER, line, column, args, "", (), result, constants)

    def _statement(self, kind: int, node: Node) -> tuple:
        """A flow event; see facts.flow_events for the layout."""
        start, end = node.start_byte, node.end_byte
        if kind == EV_IF:
            then = node.child_by_field_name("consequence")
            if then is None:
                return (start, kind, end, end, end, None)
            condition = None
            if then.start_byte - start <= _MAX_CONDITION:
                condition = self.src[start + 2:then.start_byte].decode("utf-8", "replace").strip()
            return (start, kind, then.start_byte, then.end_byte, end, condition)
        if kind == EV_LOOP or kind == EV_SWITCH:
            body = node.child_by_field_name("body")
            if body is None:
                return (start, kind, end, end, end, None)
            subject = None
            if kind == EV_SWITCH and body.start_byte - start <= _MAX_CONDITION:
                subject = self.src[start + 6:body.start_byte].decode("utf-8", "replace").strip()
            return (start, kind, body.start_byte, body.end_byte, end, subject)
        if kind == EV_CASE:
            value = node.child_by_field_name("value")
            return (start, kind, end, end, end, " ".join(text(self.src, value).split()) if value is not None else "")
        if kind == EV_ASSIGN:
            return (start, kind, end, end, end, node)  # read by _tested_assignments
        if kind == EV_GOTO or kind == EV_LABEL:
            label = node.child_by_field_name("label")
            return (start, kind, end, end, end, text(self.src, label) if label is not None else "")
        if kind == EV_RETURN:
            value = None
            if end - start <= _MAX_CONDITION:
                value = " ".join(self.src[start + 6:end].decode("utf-8", "replace").rstrip(";").split())
            row, col = node.start_point
            return (start, kind, end, end, end, (value, row + 1, col + 1))
        return (start, kind, end, end, end, None)

    # -- declarations --------------------------------------------------------
    def _locals(self, scope: _Scope, needs_types: bool):
        src = self.src
        mask_types = self.rules.mask_types
        types: list[tuple[str, str]] = []
        masks: dict[str, list[str]] = {}
        for decl in scope.declarations:
            type_node = decl.child_by_field_name("type")
            ctype = base_type(src, type_node)
            is_mask = ctype in mask_types
            if not is_mask and not needs_types:
                continue
            for d in decl.children_by_field_name("declarator"):
                name, pointer, function = declarator_name(src, d)
                if not name or function:
                    continue
                if is_mask:
                    assigned = masks.setdefault(name, [])
                    if d.type == "init_declarator":
                        value = d.child_by_field_name("value")
                        if value is not None:
                            assigned.append(" ".join(text(src, value).split()))
                elif pointer or type_node.type != "type_identifier":
                    types.append((name, ctype))
        if masks:
            self._mask_assignments(scope, masks)
        return tuple(types), tuple((n, tuple(v)) for n, v in masks.items())

    def _mask_assignments(self, scope: _Scope, masks: dict[str, list[str]]) -> None:
        """`gfp = ...`, `gfp |= ...` on the function's mask-typed locals."""
        src = self.src
        body = scope.node.child_by_field_name("body") if scope.node.type == "function_definition" \
            else scope.node.next_named_sibling
        stack = [body]
        while stack:
            node = stack.pop()
            if node is None:
                continue
            if node.type == "assignment_expression":
                left = node.child_by_field_name("left")
                if left is not None and left.type == "identifier":
                    name = text(src, left)
                    if name in masks:
                        op = text(src, node.child_by_field_name("operator")).strip()
                        value = " ".join(text(src, node.child_by_field_name("right")).split())
                        if op == "=":
                            masks[name].append(value)
                        elif op in ("|=", "&=", "^="):
                            masks[name].append(f"{name} {op[0]} ({value})")
            stack.extend(node.named_children)

    def _globals(self, declarations: list[Node]):
        src = self.src
        for decl in declarations:
            type_node = decl.child_by_field_name("type")
            ctype = base_type(src, type_node)
            if not ctype:
                continue
            for d in decl.children_by_field_name("declarator"):
                name, pointer, function = declarator_name(src, d)
                if name and not function and (pointer or type_node.type != "type_identifier"):
                    yield (name, ctype)

    def _types(self, struct_nodes, typedef_nodes):
        src = self.src
        structs: dict[str, dict[str, str]] = {}
        for node in struct_nodes:
            fields = structs.setdefault(base_type(src, node), {})
            self._fields(node.child_by_field_name("body"), fields)
        typedefs: dict[str, str] = {}
        for node in typedef_nodes:
            type_node = node.child_by_field_name("type")
            if type_node is None:
                continue
            ctype = base_type(src, type_node)
            for d in node.children_by_field_name("declarator"):
                alias, pointer, function = declarator_name(src, d)
                if not alias or function or pointer:
                    continue
                if not ctype and type_node.type in ("struct_specifier", "union_specifier"):
                    # typedef struct { ... } alias;  the alias is the struct's only name
                    self._fields(type_node.child_by_field_name("body"), structs.setdefault(alias, {}))
                    typedefs[alias] = alias
                elif ctype and ctype != alias:
                    typedefs[alias] = ctype
        return (tuple(sorted((s, tuple(sorted(f.items()))) for s, f in structs.items() if f)),
                tuple(sorted(typedefs.items())))

    def _fields(self, body: Node | None, fields: dict[str, str]) -> None:
        if body is None:
            return
        src = self.src
        for member in body.named_children:
            if member.type != "field_declaration":
                continue
            type_node = member.child_by_field_name("type")
            if type_node is None:
                continue
            declarators = member.children_by_field_name("declarator")
            if not declarators and type_node.type in ("struct_specifier", "union_specifier"):
                self._fields(type_node.child_by_field_name("body"), fields)  # anonymous member
                continue
            if type_node.type not in ("struct_specifier", "union_specifier", "type_identifier"):
                continue
            ctype = base_type(src, type_node)
            if not ctype:
                continue
            for d in declarators:
                name, _, function = declarator_name(src, d)
                if name and not function:
                    fields[name] = ctype

    # -- bindings ------------------------------------------------------------
    def _field_assign(self, node: Node) -> Binding | None:
        src = self.src
        right = node.child_by_field_name("right")
        if right.type == "pointer_expression":
            right = right.child_by_field_name("argument")
        function = text(src, right)
        if function.isupper():
            return None
        names = _FIELD_PATH.split(text(src, node.child_by_field_name("left")))[::2]
        if not all(map(str.isidentifier, names[1:])):
            return None
        base = names[0] if names[0].isidentifier() else ""
        return Binding(function, node.start_point[0] + 1, field=names[-1], base=base,
                       path=tuple(names[1:-1]))

    def _binder_calls(self, calls) -> list[Binding]:
        binders = self.rules.binders
        if not binders:
            return []
        src = self.src
        out = []
        for callee, args_node in calls:
            if callee.type != "identifier":
                continue
            binder = binders.get(text(src, callee))
            if binder is None:
                continue
            args = [a.strip() for a in split_arguments(text(src, args_node)[1:-1])]
            if binder.function_arg >= len(args):
                continue
            function = args[binder.function_arg].lstrip("&").strip()
            if not function.isidentifier():
                continue
            try:
                key = binder.key.format(*args)
            except IndexError:
                continue
            out.append(Binding(function, callee.start_point[0] + 1, key=key))
        return out

    def _macros(self, nodes) -> list[Function]:
        src = self.src
        out = []
        for node in nodes:
            name_node = node.child_by_field_name("name")
            value = node.child_by_field_name("value")
            if name_node is None or value is None:
                continue
            row, col = value.start_point
            line, column = row + 1, col + 1
            calls = macro_calls(text(src, value), line, column)
            if not calls:
                continue
            params_node = node.child_by_field_name("parameters")
            params = tuple((text(src, p), "", 0, line)
                           for p in (params_node.named_children if params_node is not None else ())
                           if p.type == "identifier")
            callees, counts, detail = self._callees(calls, params, ())
            out.append(Function(text(src, name_node), node.start_point[0] + 1, 1,
                                node.end_point[0] + 1, False, True, False, False, False, "", params, callees, counts,
                                detail,
                                marshal.dumps(calls), b"", (), (), ()))
        return out


_first = itemgetter(0)


_start = attrgetter("start_byte")
_start_end = attrgetter("start_byte", "end_byte")


def _dead_branches(src: bytes, ifs) -> list[tuple[int, int]]:
    """Byte ranges of the branches a constant condition never takes: the body of
    `if (0)`, the else of `if (1)`, sorted, none inside another."""
    ranges = []
    for node in ifs:
        condition = node.child_by_field_name("condition")
        if condition is None or condition.end_byte - condition.start_byte > _MAX_CONDITION:
            continue
        cond = src[condition.start_byte:condition.end_byte]
        if _CONSTANT_OPERAND.search(cond) is None:
            continue
        value = evaluate(cond.decode("utf-8", "replace"), constant_atom)
        if value is None:
            continue
        branch = node.child_by_field_name("consequence") if value == 0 else node.child_by_field_name("alternative")
        if branch is not None:
            ranges.append((branch.start_byte, branch.end_byte))
    ranges.sort()
    outer: list[tuple[int, int]] = []
    for start, end in ranges:
        if outer and start < outer[-1][1]:
            continue
        outer.append((start, end))
    return outer


_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")


def _assigned(node: Node) -> tuple[Node, Node | None]:
    """The variable a write names, and the value written (None: `x++`, `&x`, `x |= v`)."""
    kind = node.type
    if kind == "init_declarator":
        name, value = node.child_by_field_name("declarator"), node.child_by_field_name("value")
        while name.type == "pointer_declarator":
            name = name.child_by_field_name("declarator")
        return name, value
    if kind == "assignment_expression":
        operator = node.child_by_field_name("operator")
        value = node.child_by_field_name("right") if operator is None or operator.type == "=" else None
        return node.child_by_field_name("left"), value
    return node.child_by_field_name("argument"), None


def _assignment(src: bytes, value: Node | None) -> str | None:
    """The value of a write when it is a constant or another variable, else None."""
    if value is None:
        return None
    written = " ".join(text(src, value).split())
    return written if constant(written) is not None or _IDENTIFIER.fullmatch(written) else None


def _constant_argument(argument: str) -> str | None:
    """An argument as written, whitespace-normalised, when it is a constant (3, NULL,
    A | B); None for the rest, which most are."""
    argument = argument.strip()
    first = argument[:1]
    if not (first.isdigit() or first.isupper() or first in "-tf"):
        return None
    argument = " ".join(argument.split())
    return argument if constant(argument) is not None else None


def _tested_assignments(events: list, src: bytes) -> list:
    """The events, with writes to variables that a condition reads as (variable,
    value) and the other writes left out."""
    if not any(e[1] == EV_ASSIGN for e in events):
        return events
    tested = set()
    for e in events:
        if (e[1] == EV_IF or e[1] == EV_SWITCH) and e[5]:
            tested.update(name.encode() for name in _IDENTIFIER.findall(e[5]))
    out = []
    for e in events:
        if e[1] == EV_ASSIGN:
            name, value = _assigned(e[5])
            if src[name.start_byte:name.end_byte] not in tested:
                continue
            e = (*e[:5], (text(src, name), _assignment(src, value)))
        out.append(e)
    return out


def _drop_dead(captures: dict, dead: list[tuple[int, int]]) -> None:
    """Remove from `captures` every node that starts inside a dead branch."""
    starts = [start for start, _ in dead]

    def alive(node: Node) -> bool:
        i = bisect_right(starts, node.start_byte) - 1
        return i < 0 or node.start_byte >= dead[i][1]

    for name in ("call_fn", "call_args", "call_result", "field_assign", "init_binding") + tuple(n for n, _ in _STATEMENTS):
        nodes = captures.get(name)
        if nodes:
            captures[name] = [n for n in nodes if alive(n)]


def _enclosing(scopes: list[_Scope]) -> list[int]:
    """For each scope (sorted by start), the index of the scope around it, or -1."""
    out = []
    stack: list[int] = []
    for i, scope in enumerate(scopes):
        while stack and scopes[stack[-1]].end <= scope.start:
            stack.pop()
        out.append(stack[-1] if stack else -1)
        stack.append(i)
    return out
