"""Linking: every file's facts in, one Program (resolved calls + call graph) out.

Each call site gets a Target saying what it reaches: functions by name
(`static` ones inside their own file first), an allocator, a scope or
transaction API from the rules, the functions bound to a struct's
function-pointer member, the functions a dispatcher macro reaches by key,
or a parameter of the calling function (bound per call site later).
The call graph (networkx) has an edge for every caller/callee pair.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable

import networkx as nx

from ..facts import (CALL_ARGS, CALL_BASE, CALL_KIND, CALL_NAME, CALL_PATH, DIRECT, FIELD, PARAM_NAME,
                     PARAM_POINTER, PARAM_TYPE, FileFacts, Function)
from ..ruleset import Ruleset, normalize_type
from .types import TypeIndex

# Target kinds: a target is a tuple whose first element is one of these.
T_NONE = 0  # (T_NONE,): nothing known to call
T_FUNC = 1  # (T_FUNC, ids): functions or macros by name
T_ALLOC = 2  # (T_ALLOC, allocator_name)
T_SCOPE = 3  # (T_SCOPE, scope_api_name)
T_BEGIN = 4  # (T_BEGIN, ids, api_name): takes a transaction handle; ids: its definitions
T_END = 5  # (T_END, ids, api_name): releases it
T_INDIRECT = 6  # (T_INDIRECT, ids, via, confidence, carries): function-pointer member or dispatcher
T_PARAM = 7  # (T_PARAM, index): calls its own parameter
T_STOP = 8  # (T_STOP, name): never returns; the path ends here

# How sure an indirect edge is.
DISPATCHED = 3  # a rules dispatcher: every target registered under the key runs
CONFIDENT = 2  # typed struct member: one of the implementations runs
NAME_ONLY = 1  # member name matched, struct type unknown

# A member name bound in more structs than this is not resolved without a type.
MAX_NAME_ONLY_TARGETS = 8
# A call through a struct member carries the caller's context (a held handle,
# an open scope) only to a few implementations in the caller's own subsystem:
# otherwise which implementation runs depends on an object the analysis cannot
# follow (fs/dcache.c calling d_op->d_iput reaches every filesystem's, but a
# btrfs dentry only ever has btrfs's).  A rules dispatcher, which calls every
# target, always carries it.
MAX_CONTEXT_TARGETS = 4


def subsystem(path: str) -> str:
    """`fs/btrfs/inode.c` -> `fs/btrfs`; `fs/dcache.c` -> `fs`."""
    parts = path.split("/")
    return "/".join(parts[:2]) if len(parts) > 2 else "/".join(parts[:-1])

NONE_TARGET = (T_NONE,)


@dataclass(frozen=True)
class BindingSite:
    """`f(..., fn, ...)` where the callee ends up calling the parameter `fn` was passed in."""

    caller: int
    call: int  # call index in the caller
    callee: int
    arg: int
    function: int


@dataclass
class LinkStats:
    functions: int = 0
    macros: int = 0
    call_sites: int = 0
    direct_calls: int = 0
    direct_resolved: int = 0
    indirect_calls: int = 0
    indirect_resolved: int = 0
    call_edges: int = 0


@dataclass(frozen=True)
class Program:
    """The linked tree.  Function ids index `functions`, `file_of` and `targets`."""

    files: tuple[FileFacts, ...]
    functions: tuple[Function, ...]
    file_of: tuple[int, ...]
    targets: tuple[tuple[tuple, ...], ...]  # per function, per call site
    graph: nx.DiGraph
    entries: frozenset[int]
    address_taken: frozenset[int]
    handle_params: dict[int, tuple[int, str]]  # id -> (parameter index, handle type)
    invoked_params: dict[int, frozenset[int]]  # id -> parameters it may call
    binding_sites: dict[int, tuple[BindingSite, ...]]  # bound function id -> where it was passed
    stats: LinkStats = field(default_factory=LinkStats)

    def path(self, fid: int) -> str:
        return self.files[self.file_of[fid]].path


def link(files: Iterable[FileFacts], rules: Ruleset) -> Program:
    """Resolve every call site of every file; files must come sorted by path."""
    return _Linker(tuple(files), rules).run()


class _Linker:
    def __init__(self, files: tuple[FileFacts, ...], rules: Ruleset):
        self.files = files
        self.rules = rules
        self.types = TypeIndex(files)
        functions: list[Function] = []
        file_of: list[int] = []
        for index, facts in enumerate(files):
            functions.extend(facts.functions)
            file_of.extend([index] * len(facts.functions))
        self.functions = functions
        self.file_of = file_of
        self.stats = LinkStats()
        self._index_names()

    # -- names ---------------------------------------------------------------
    def _index_names(self) -> None:
        local: dict[tuple[int, str], list[int]] = defaultdict(list)
        functions_by_name: dict[str, list[int]] = defaultdict(list)
        macros_by_name: dict[str, list[int]] = defaultdict(list)
        for fid, function in enumerate(self.functions):
            file_index = self.file_of[fid]
            local[(file_index, function.name)].append(fid)
            if function.macro:
                macros_by_name[function.name].append(fid)
                self.stats.macros += 1
            else:
                self.stats.functions += 1
                # a static function in a header is visible to every file that includes it
                if not function.static or self.files[file_index].path.endswith(".h"):
                    functions_by_name[function.name].append(fid)
        self.local = {k: tuple(v) for k, v in local.items()}
        self.functions_by_name = {k: tuple(v) for k, v in functions_by_name.items()}
        self.macros_by_name = {k: tuple(v) for k, v in macros_by_name.items()}

    def resolve(self, name: str, file_index: int) -> tuple[int, ...]:
        """Definitions a name means in a file: its own file's first, then global
        functions, then macros defined elsewhere."""
        return (self.local.get((file_index, name)) or self.functions_by_name.get(name)
                or self.macros_by_name.get(name) or ())

    def _function_ids(self, name: str, file_index: int) -> tuple[int, ...]:
        """Like resolve, but only real functions: what a function pointer can hold."""
        return tuple(fid for fid in self.resolve(name, file_index) if not self.functions[fid].macro)

    # -- bindings --------------------------------------------------------------
    def _index_bindings(self) -> None:
        by_member: dict[tuple[str, str], set[int]] = defaultdict(set)
        by_field: dict[str, set[int]] = defaultdict(set)
        by_key: dict[str, set[int]] = defaultdict(set)
        taken: set[int] = set()
        types = self.types

        def add(binding, file_index: int, struct: str) -> None:
            ids = self._function_ids(binding.function, file_index)
            if not ids:
                return
            taken.update(ids)
            if binding.key:
                by_key[binding.key].update(ids)
                return
            if struct:
                by_member[(types.canonical(struct), binding.field)].update(ids)
            by_field[binding.field].update(ids)

        for file_index, facts in enumerate(self.files):
            for binding in facts.bindings:
                add(binding, file_index, binding.struct)
        for fid, function in enumerate(self.functions):
            for binding in function.bindings:
                struct = ""
                if binding.base:
                    struct = types.member_path(types.variable(function, binding.base), binding.path)
                add(binding, self.file_of[fid], struct)
        self.by_member = {k: tuple(sorted(v)) for k, v in by_member.items()}
        self.by_field = {k: tuple(sorted(v)) for k, v in by_field.items()}
        self.by_key = {k: tuple(sorted(v)) for k, v in by_key.items()}
        self.taken = taken

    # -- call sites --------------------------------------------------------------
    def run(self) -> Program:
        self._index_bindings()
        targets = []
        stats = self.stats
        for fid, function in enumerate(self.functions):
            file_index = self.file_of[fid]
            params = {p[PARAM_NAME]: i for i, p in enumerate(function.params) if p[PARAM_NAME]}
            row = []
            for call in function.calls:
                stats.call_sites += 1
                target = self._target(function, file_index, params, call)
                row.append(target)
            targets.append(tuple(row))
        self.targets = targets
        invoked = self._invoked_params()
        binding_sites, passed = self._binding_sites(invoked)
        graph = self._graph(binding_sites)
        entries = frozenset(fid for fid, f in enumerate(self.functions) if f.entry)
        return Program(
            files=self.files, functions=tuple(self.functions), file_of=tuple(self.file_of),
            targets=tuple(targets), graph=graph, entries=entries,
            address_taken=frozenset(self.taken | passed), handle_params=self._handle_params(),
            invoked_params=invoked, binding_sites=binding_sites, stats=stats,
        )

    def _target(self, function: Function, file_index: int, params: dict[str, int], call: tuple) -> tuple:
        rules = self.rules
        name = call[CALL_NAME]
        kind = call[CALL_KIND]
        stats = self.stats
        if kind == DIRECT:
            if name in params:
                stats.indirect_calls += 1
                stats.indirect_resolved += 1
                return (T_PARAM, params[name])
            if name in rules.allocators:
                stats.direct_calls += 1
                stats.direct_resolved += 1
                return (T_ALLOC, name)
            if name in rules.scopes:
                stats.direct_calls += 1
                stats.direct_resolved += 1
                return (T_SCOPE, name)
            if name in rules.begin:
                stats.direct_calls += 1
                stats.direct_resolved += 1
                return (T_BEGIN, self.resolve(name, file_index), name)
            if name in rules.end:
                stats.direct_calls += 1
                stats.direct_resolved += 1
                return (T_END, self.resolve(name, file_index), name)
            dispatcher = rules.dispatchers.get(name)
            if dispatcher is not None:
                stats.indirect_calls += 1
                return self._dispatch(dispatcher.key, call[CALL_ARGS], name)
            stats.direct_calls += 1
            ids = self.resolve(name, file_index)
            if name in rules.noreturn or (ids and all(self.functions[i].noreturn for i in ids)):
                stats.direct_resolved += 1
                return (T_STOP, name)
            if ids:
                stats.direct_resolved += 1
                return (T_FUNC, ids)
            return NONE_TARGET
        if kind == FIELD:
            stats.indirect_calls += 1
            return self._field_call(function, file_index, call)
        return NONE_TARGET

    def _dispatch(self, key_format: str, args: tuple, macro: str) -> tuple:
        try:
            key = key_format.format(*(a or "" for a in args))
        except (IndexError, KeyError):
            return NONE_TARGET
        ids = self.by_key.get(key, ())
        if not ids:
            return NONE_TARGET
        self.stats.indirect_resolved += 1
        return (T_INDIRECT, ids, f"{macro}() dispatch of {key}", DISPATCHED, True)

    def _carries(self, file_index: int, ids: tuple[int, ...]) -> bool:
        """Whether a typed member call passes the caller's context on (MAX_CONTEXT_TARGETS):
        few implementations, all in the calling file's own subsystem."""
        if len(ids) > MAX_CONTEXT_TARGETS:
            return False
        home = subsystem(self.files[file_index].path)
        return all(subsystem(self.files[self.file_of[i]].path) == home for i in ids)

    def _field_call(self, function: Function, file_index: int, call: tuple) -> tuple:
        member = call[CALL_NAME]
        path = call[CALL_PATH]
        stats = self.stats
        if path:
            key_format = self.rules.field_dispatchers.get(path[-1])
            if key_format is not None:
                key = key_format.format(field=member)
                ids = self.by_key.get(key, ())
                if ids:
                    stats.indirect_resolved += 1
                    return (T_INDIRECT, ids, f"->{path[-1]}.{member} dispatch of {key}", DISPATCHED, True)
                return NONE_TARGET
        struct = ""
        if call[CALL_BASE]:
            types = self.types
            struct = types.member_path(types.variable(function, call[CALL_BASE]), path)
        if struct:
            ids = self.by_member.get((struct, member), ())
            if ids:
                stats.indirect_resolved += 1
                return (T_INDIRECT, ids, f"{struct}.{member}", CONFIDENT, self._carries(file_index, ids))
            return NONE_TARGET
        ids = self.by_field.get(member, ())
        if ids and len(ids) <= MAX_NAME_ONLY_TARGETS:
            stats.indirect_resolved += 1
            return (T_INDIRECT, ids, f"->{member} (member name only)", NAME_ONLY, False)
        return NONE_TARGET

    # -- parameters holding functions -----------------------------------------------
    def _invoked_params(self) -> dict[int, frozenset[int]]:
        """Parameters each function may call, itself or by passing them on."""
        invoked: dict[int, set[int]] = defaultdict(set)
        forwards: list[tuple[int, int, tuple[int, ...], int]] = []  # (fid, param, callees, arg)
        for fid, function in enumerate(self.functions):
            params = {p[PARAM_NAME]: i for i, p in enumerate(function.params) if p[PARAM_NAME]}
            if not params:
                continue
            for call, target in zip(function.calls, self.targets[fid]):
                if target[0] == T_PARAM:
                    invoked[fid].add(target[1])
                elif target[0] == T_FUNC:
                    for arg, text in enumerate(call[CALL_ARGS]):
                        if text in params:
                            forwards.append((fid, params[text], target[1], arg))
        changed = True
        while changed:
            changed = False
            for fid, param, callees, arg in forwards:
                if param in invoked.get(fid, ()):
                    continue
                if any(arg in invoked.get(callee, ()) for callee in callees):
                    invoked[fid].add(param)
                    changed = True
        return {fid: frozenset(p) for fid, p in invoked.items() if p}

    def _binding_sites(self, invoked: dict[int, frozenset[int]]):
        """Where a function is passed to a parameter its callee calls; and every
        function whose address is passed anywhere (its callers are not all known)."""
        sites: dict[int, list[BindingSite]] = defaultdict(list)
        passed: set[int] = set()
        for fid, function in enumerate(self.functions):
            file_index = self.file_of[fid]
            params = {p[PARAM_NAME] for p in function.params}
            for index, (call, target) in enumerate(zip(function.calls, self.targets[fid])):
                for arg, text in enumerate(call[CALL_ARGS]):
                    if not text or text in params:
                        continue
                    ids = self._function_ids(text, file_index)
                    if not ids:
                        continue
                    passed.update(ids)
                    if target[0] not in (T_FUNC, T_BEGIN, T_END):
                        continue
                    for callee in target[1]:
                        if arg in invoked.get(callee, ()):
                            for bound in ids:
                                sites[bound].append(BindingSite(fid, index, callee, arg, bound))
        return {k: tuple(v) for k, v in sites.items()}, passed

    def _handle_params(self) -> dict[int, tuple[int, str]]:
        handle_types = self.rules.handle_types
        canonical = {self.types.canonical(t): t for t in handle_types}
        out = {}
        for fid, function in enumerate(self.functions):
            for index, param in enumerate(function.params):
                if param[PARAM_POINTER] != 1:
                    continue
                ctype = normalize_type(param[PARAM_TYPE])
                found = ctype if ctype in handle_types else canonical.get(self.types.canonical(ctype))
                if found:
                    out[fid] = (index, found)
                    break
        return out

    # -- graph ---------------------------------------------------------------------
    def _graph(self, binding_sites: dict[int, tuple[BindingSite, ...]]) -> nx.DiGraph:
        edges: dict[tuple[int, int], str] = {}
        for fid, row in enumerate(self.targets):
            for target in row:
                kind = target[0]
                if kind == T_FUNC or kind == T_BEGIN or kind == T_END:
                    for callee in target[1]:
                        edges.setdefault((fid, callee), "call")
                elif kind == T_INDIRECT:
                    for callee in target[1]:
                        edges.setdefault((fid, callee), "indirect")
        for bound, sites in binding_sites.items():
            for site in sites:
                edges.setdefault((site.caller, bound), "callback")
        graph = nx.DiGraph()
        graph.add_nodes_from(range(len(self.functions)))
        graph.add_edges_from((u, v, {"kind": k}) for (u, v), k in edges.items())
        self.stats.call_edges = graph.number_of_edges()
        return graph
