"""Linking: every file's facts in, one Program (resolved calls + call graph) out.

Each call site gets a target saying what it reaches: functions by name
(`static` ones inside their own file first), an allocator, a scope or
transaction API from the rules, the functions bound to a struct's
function-pointer member, the functions a dispatcher macro reaches by key,
or a parameter of the calling function (bound per call site later).
The call graph (networkx) has an edge for every caller/callee pair.

Most functions only make plain calls by name; for them linking reads each
called name once (Function.callees) and never decodes the call sites.
Per-site targets are computed for the functions whose `detail` needs them,
and on demand for any other (Program.targets).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

import networkx as nx

from ..facts import (
    CALL_ARGS,
    CALL_BASE,
    CALL_KIND,
    CALL_NAME,
    CALL_PATH,
    DIRECT,
    FIELD,
    PARAM_NAME,
    PARAM_POINTER,
    PARAM_TYPE,
    FileFacts,
    Function,
    call_sites,
)
from ..ruleset import Ruleset
from .types import TypeIndex

# Target kinds: what a call site reaches (Target.kind).
T_NONE = 0  # nothing known to call
T_FUNC = 1  # functions or macros by name (ids)
T_ALLOC = 2  # an allocator of the rules (api)
T_SCOPE = 3  # a scope API (api)
T_BEGIN = 4  # a begin API (api) that takes a family's context; ids: its definitions
T_END = 5  # an end API (api) that releases it; ids: its definitions
T_INDIRECT = 6  # a function-pointer member or a dispatcher (ids, via, confidence, carries)
T_PARAM = 7  # a parameter of the calling function (param)
T_STOP = 8  # a call that never returns (api); the path ends here

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

class Target(NamedTuple):
    """What one call site reaches."""

    kind: int  # T_*
    ids: tuple[int, ...] = ()  # the functions it can reach (T_FUNC, T_BEGIN, T_END, T_INDIRECT)
    api: str = ""  # the rules API it names (T_ALLOC, T_SCOPE, T_BEGIN, T_END, T_STOP)
    via: str = ""  # T_INDIRECT: how it was resolved ("struct foo_ops.bar", a dispatch key)
    confidence: int = 0  # T_INDIRECT: DISPATCHED, CONFIDENT or NAME_ONLY
    carries: bool = False  # T_INDIRECT: whether the caller's context crosses it to every target
    param: int = -1  # T_PARAM: the index of the parameter called


NONE_TARGET = Target(T_NONE)
_CALLS_BY_TARGET = (T_FUNC, T_BEGIN, T_END)
_CALLS_FUNCTIONS = (*_CALLS_BY_TARGET, T_INDIRECT)  # targets whose second item is the function ids reached


def subsystem(path: str) -> str:
    """`fs/btrfs/inode.c` -> `fs/btrfs`; `fs/dcache.c` -> `fs`."""
    parts = path.split("/")
    return "/".join(parts[:2]) if len(parts) > 2 else "/".join(parts[:-1])


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
    """What linking counts; each field is the field of findings.Stats of that name."""

    functions: int = 0
    macros: int = 0
    call_sites: int = 0
    direct_calls: int = 0
    direct_resolved: int = 0
    indirect_calls: int = 0
    indirect_resolved: int = 0
    call_edges: int = 0
    allocation_sites: int = 0


@dataclass(frozen=True)
class Program:
    """The linked tree.  Function ids index `functions`, `file_of` and `callees`."""

    files: tuple[FileFacts, ...]
    functions: tuple[Function, ...]
    file_of: tuple[int, ...]
    callees: tuple[tuple[int, ...], ...]  # every function each one's calls can reach
    detailed: frozenset[int]  # functions whose call sites are analysed one by one
    graph: nx.DiGraph
    entries: frozenset[int]
    address_taken: frozenset[int]
    handle_params: dict[int, tuple[int, str]]  # id -> (parameter index, handle type)
    invoked_params: dict[int, frozenset[int]]  # id -> parameters it may call
    binding_sites: dict[int, tuple[BindingSite, ...]]  # bound function id -> where it was passed
    resolver: _Resolver
    stats: LinkStats = field(default_factory=LinkStats)

    def path(self, fid: int) -> str:
        return self.files[self.file_of[fid]].path

    def calls(self, fid: int) -> tuple:
        """The function's call sites, decoded once."""
        return self.resolver.calls(fid)

    def targets(self, fid: int) -> tuple:
        """What each of the function's call sites reaches, computed once."""
        return self.resolver.targets(fid)

    def call_to(self, fid: int, callee: int) -> int:
        """The first call of `fid` that can reach `callee`."""
        for index, target in enumerate(self.targets(fid)):
            if target.kind in _CALLS_FUNCTIONS and callee in target.ids:
                return index
        raise ValueError(f"function {fid} has no call that reaches {callee}")


def link(files: Iterable[FileFacts], rules: Ruleset) -> Program:
    """Resolve every call of every file; files must come sorted by path."""
    return _Linker(tuple(files), rules).run()


class _Resolver:
    """Names, types and bindings of the whole tree; resolves call sites on demand."""

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
        self._calls: list[tuple | None] = [None] * len(functions)
        self._targets: list[tuple | None] = [None] * len(functions)
        # Targets of plain calls by name: one table for names a file does not
        # define itself (the same in every file), one per file for those it does.
        self.global_targets: dict[str, tuple] = {}
        self.local_targets: list[dict[str, tuple]] = [{} for _ in files]
        self._index_names()
        self._index_bindings()

    # -- names ---------------------------------------------------------------
    def _index_names(self) -> None:
        functions_by_name: dict[str, list[int]] = defaultdict(list)
        macros_by_name: dict[str, list[int]] = defaultdict(list)
        local: list[dict[str, tuple[int, ...]]] = []  # per file: name -> its definitions there
        fid = 0
        for facts in self.files:
            header = facts.path.endswith(".h")
            here: dict[str, tuple[int, ...]] = {}
            for function in facts.functions:
                name = function.name
                here[name] = here.get(name, ()) + (fid,)
                if function.macro:
                    macros_by_name[name].append(fid)
                elif not function.static or header:
                    # a static function in a header is visible to every file that includes it
                    functions_by_name[name].append(fid)
                fid += 1
            local.append(here)
        self.local = local
        self.functions_by_name = {k: tuple(v) for k, v in functions_by_name.items()}
        self.macros_by_name = {k: tuple(v) for k, v in macros_by_name.items()}
        self.function_names = frozenset(f.name for f in self.functions if not f.macro)

    def resolve(self, name: str, file_index: int) -> tuple[int, ...]:
        """Definitions a name means in a file: its own file's first, then global
        functions, then macros defined elsewhere."""
        return (self.local[file_index].get(name) or self.functions_by_name.get(name)
                or self.macros_by_name.get(name) or ())

    def function_ids(self, name: str, file_index: int) -> tuple[int, ...]:
        """Like resolve, but only real functions: what a function pointer can hold."""
        if name not in self.function_names:
            return ()
        return tuple(fid for fid in self.resolve(name, file_index) if not self.functions[fid].macro)

    def by_name(self, name: str, file_index: int) -> tuple:
        """The target of a plain call `name(...)` made in a file."""
        if name in self.local[file_index]:
            table = self.local_targets[file_index]
        else:
            table = self.global_targets
        target = table.get(name)
        if target is None:
            target = table[name] = self._name_target(name, file_index)
        return target

    def _name_target(self, name: str, file_index: int) -> tuple:
        rules = self.rules
        if name in rules.transparent_checks:
            # likely(), WARN_ON(): their value is their argument, whose calls are call
            # sites of their own; what a configuration defines them as is never followed
            return NONE_TARGET
        if name in rules.release or name in rules.task_switch:
            # kvfree(), put_page(): what they allocate serves special objects only
            # (vfree() of a VM_FLUSH_RESET_PERMS area); an ordinary caller never gets
            # there.  __schedule(): what runs next runs for another task.
            return NONE_TARGET
        if name in rules.allocators:
            return Target(T_ALLOC, api=name)
        if name in rules.scopes:
            return Target(T_SCOPE, api=name)
        if name in rules.begin:
            return Target(T_BEGIN, self.resolve(name, file_index), name)
        if name in rules.end:
            return Target(T_END, self.resolve(name, file_index), name)
        ids = self.resolve(name, file_index)
        if name in rules.noreturn or (ids and all(self.functions[i].noreturn for i in ids)):
            return Target(T_STOP, api=name)
        if ids:
            return Target(T_FUNC, ids)
        return NONE_TARGET

    # -- bindings --------------------------------------------------------------
    def _index_bindings(self) -> None:
        by_member: dict[tuple[str, str], set[int]] = defaultdict(set)
        by_field: dict[str, set[int]] = defaultdict(set)
        by_key: dict[str, set[int]] = defaultdict(set)
        taken: set[int] = set()
        types = self.types

        def add(binding, file_index: int, struct: str) -> None:
            ids = self.function_ids(binding.function, file_index)
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
                struct = binding.struct
                if struct and binding.path:
                    # `.ops = { .init_sched = fn }`: the pointer is a member of the member's struct
                    struct = types.member_path(types.canonical(struct), binding.path)
                add(binding, file_index, struct)
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
    def calls(self, fid: int) -> tuple:
        calls = self._calls[fid]
        if calls is None:
            calls = call_sites(self.functions[fid])
            self._calls[fid] = calls
        return calls

    def targets(self, fid: int) -> tuple:
        targets = self._targets[fid]
        if targets is None:
            targets = self._site_targets(fid)
            self._targets[fid] = targets
        return targets

    def _site_targets(self, fid: int) -> tuple:
        function = self.functions[fid]
        file_index = self.file_of[fid]
        params = {p[PARAM_NAME]: i for i, p in enumerate(function.params) if p[PARAM_NAME]}
        dispatchers = self.rules.dispatchers
        out = []
        for call in self.calls(fid):
            name = call[CALL_NAME]
            kind = call[CALL_KIND]
            if kind == DIRECT:
                if name in params:
                    out.append(Target(T_PARAM, param=params[name]))
                elif name in dispatchers:
                    out.append(self._dispatch(dispatchers[name].key, call[CALL_ARGS], name))
                else:
                    out.append(self.by_name(name, file_index))
            elif kind == FIELD:
                out.append(self._field_call(function, file_index, call))
            else:
                out.append(NONE_TARGET)
        return tuple(out)

    def _dispatch(self, key_format: str, args: tuple, macro: str) -> tuple:
        try:
            key = key_format.format(*(a or "" for a in args))
        except (IndexError, KeyError):
            return NONE_TARGET
        ids = self.by_key.get(key, ())
        if not ids:
            return NONE_TARGET
        return Target(T_INDIRECT, ids, via=f"{macro}() dispatch of {key}", confidence=DISPATCHED, carries=True)

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
        if path:
            key_format = self.rules.field_dispatchers.get(path[-1])
            if key_format is not None:
                key = key_format.format(field=member)
                ids = self.by_key.get(key, ())
                if ids:
                    return Target(T_INDIRECT, ids, via=f"->{path[-1]}.{member} dispatch of {key}",
                                  confidence=DISPATCHED, carries=True)
                return NONE_TARGET
        struct = ""
        if call[CALL_BASE]:
            types = self.types
            struct = types.member_path(types.variable(function, call[CALL_BASE]), path)
        if struct:
            ids = self.by_member.get((struct, member), ())
            if ids:
                return Target(T_INDIRECT, ids, via=f"{struct}.{member}", confidence=CONFIDENT,
                              carries=self._carries(file_index, ids))
            # No table of this struct was read (built in a header's macro, or at run time through
            # a base of unknown type): the member's name is all that is left to go by.
        ids = self.by_field.get(member, ())
        if ids and len(ids) <= MAX_NAME_ONLY_TARGETS:
            return Target(T_INDIRECT, ids, via=f"->{member} (member name only)", confidence=NAME_ONLY)
        return NONE_TARGET


def callee_ids(targets: tuple) -> tuple[int, ...]:
    """Every function the given call targets can reach, each once, in call order."""
    out: list[int] = []
    for target in targets:
        if target.kind in _CALLS_FUNCTIONS:
            out += target.ids
    return tuple(dict.fromkeys(out))


class _Linker:
    def __init__(self, files: tuple[FileFacts, ...], rules: Ruleset):
        self.files = files
        self.rules = rules
        self.resolver = _Resolver(files, rules)
        self.stats = LinkStats()

    def run(self) -> Program:
        resolver = self.resolver
        functions = resolver.functions
        stats = self.stats
        callees: list[tuple[int, ...]] = []
        detailed: set[int] = set()
        known = resolver.global_targets
        by_name = resolver.by_name
        fid = macros = plain_calls = plain_resolved = 0
        for file_index, facts in enumerate(self.files):
            defined = resolver.local[file_index]
            known_here = resolver.local_targets[file_index]
            for function in facts.functions:
                macros += function.macro
                if function.detail:
                    detailed.add(fid)
                    targets = resolver.targets(fid)
                    callees.append(callee_ids(targets))
                    self._count_sites(resolver.calls(fid), targets)
                else:
                    # Only plain calls: read from the callee names, never decoding the sites.
                    # The names come sorted and unique, and a name only ever means
                    # definitions of that name: the ids are in a stable order, each once.
                    out: list[int] = []
                    for name, count in zip(function.callees, function.callee_counts):
                        target = (known_here.get(name) if name in defined else known.get(name)) \
                            or by_name(name, file_index)
                        plain_calls += count
                        kind = target.kind
                        if kind == T_FUNC:
                            plain_resolved += count
                            out += target.ids
                        elif kind == T_STOP:
                            plain_resolved += count
                            detailed.add(fid)  # a call that never returns ends paths: its flow matters
                    callees.append(tuple(out))
                fid += 1
        stats.macros = macros
        stats.functions = len(functions) - macros
        stats.call_sites += plain_calls
        stats.direct_calls += plain_calls
        stats.direct_resolved += plain_resolved
        graph = _graph(callees)
        invoked, binding_sites = self._callbacks(graph)
        succ = graph.succ
        bound_edges = sorted({(site.caller, bound) for bound, sites in binding_sites.items() for site in sites
                              if bound not in succ[site.caller]})
        graph.add_edges_from(bound_edges)
        stats.call_edges = sum(map(len, callees)) + len(bound_edges)  # each row lists a callee once
        entries = frozenset(fid for fid, f in enumerate(functions) if f.entry)
        return Program(
            files=self.files, functions=tuple(functions), file_of=tuple(resolver.file_of),
            callees=tuple(callees), detailed=frozenset(detailed), graph=graph, entries=entries,
            address_taken=frozenset(resolver.taken | self._passed()), handle_params=self._handle_params(),
            invoked_params=invoked, binding_sites=binding_sites, resolver=resolver, stats=stats,
        )

    def _count_sites(self, calls: tuple, targets: tuple) -> None:
        stats = self.stats
        dispatchers = self.rules.dispatchers
        for call, target in zip(calls, targets, strict=True):
            kind = target.kind
            stats.call_sites += 1
            indirect = call[CALL_KIND] != DIRECT or kind == T_PARAM or call[CALL_NAME] in dispatchers
            if indirect:
                stats.indirect_calls += 1
            else:
                stats.direct_calls += 1
            if kind != T_NONE:
                if indirect:
                    stats.indirect_resolved += 1
                else:
                    stats.direct_resolved += 1
            if kind == T_ALLOC:
                stats.allocation_sites += 1

    # -- parameters holding functions ------------------------------------------------
    def _callbacks(self, graph: nx.DiGraph):
        """Parameters each function may call (itself or by passing them on), and where
        a function is passed to such a parameter.  Found from the functions that call a
        parameter, back through their callers only."""
        resolver = self.resolver
        functions = resolver.functions
        invoked: dict[int, set[int]] = defaultdict(set)
        for fid in sorted(fid for fid, f in enumerate(functions) if f.detail):
            for target in resolver.targets(fid):
                if target.kind == T_PARAM:
                    invoked[fid].add(target.param)
        queue = sorted(invoked)
        while queue:
            callee = queue.pop()
            for caller in sorted(graph.pred[callee]):
                params = {p[PARAM_NAME]: i for i, p in enumerate(functions[caller].params) if p[PARAM_NAME]}
                if not params:
                    continue
                for call, target in zip(resolver.calls(caller), resolver.targets(caller), strict=True):
                    if target.kind not in _CALLS_BY_TARGET or callee not in target.ids:
                        continue
                    for arg in invoked[callee]:
                        text = call[CALL_ARGS][arg] if arg < len(call[CALL_ARGS]) else None
                        if text in params and params[text] not in invoked[caller]:
                            invoked[caller].add(params[text])
                            queue.append(caller)
        sites: dict[int, list[BindingSite]] = defaultdict(list)
        for callee in sorted(invoked):
            for caller in sorted(graph.pred[callee]):
                file_index = resolver.file_of[caller]
                params = {p[PARAM_NAME] for p in functions[caller].params}
                for index, (call, target) in enumerate(zip(resolver.calls(caller), resolver.targets(caller),
                                                           strict=True)):
                    if target.kind not in _CALLS_BY_TARGET or callee not in target.ids:
                        continue
                    args = call[CALL_ARGS]
                    for arg in sorted(invoked[callee]):
                        text = args[arg] if arg < len(args) else None
                        if not text or text in params:
                            continue
                        for bound in resolver.function_ids(text, file_index):
                            sites[bound].append(BindingSite(caller, index, callee, arg, bound))
        return ({fid: frozenset(p) for fid, p in invoked.items() if p},
                {k: tuple(v) for k, v in sorted(sites.items())})

    def _passed(self) -> set[int]:
        """Every function whose address is passed as an argument somewhere."""
        resolver = self.resolver
        names = resolver.function_names
        out: set[int] = set()
        for file_index, facts in enumerate(self.files):
            for name in names.intersection(facts.arg_names):
                out.update(resolver.function_ids(name, file_index))
        return out

    def _handle_params(self) -> dict[int, tuple[int, str]]:
        """The first parameter of each function whose type is a handle type or a typedef of one."""
        handle_types = self.rules.handle_types
        types = self.resolver.types
        canonical = {types.canonical(t): t for t in handle_types}
        known = {t: t for t in handle_types}
        for alias in types.typedefs:
            handle = canonical.get(types.canonical(alias))
            if handle is not None:
                known.setdefault(alias, handle)
        out = {}
        for fid, function in enumerate(self.resolver.functions):
            for index, param in enumerate(function.params):
                if param[PARAM_POINTER] == 1 and param[PARAM_TYPE] in known:
                    out[fid] = (index, known[param[PARAM_TYPE]])
                    break
        return out


class CallGraph(nx.DiGraph):
    """The call graph: a networkx DiGraph over function ids.  Its edges carry no
    attributes (what a call site reaches is in Program.targets), so the millions
    of them share one empty attribute dict; never set edge attributes on it.

    Only its adjacency (succ, pred) is read: networkx's degree and node views
    refer back to the graph, and that cycle would leave millions of dicts to
    the cyclic collector instead of freeing them with the program."""

    edge_attr_dict_factory = staticmethod(lambda: _NO_ATTRIBUTES)


_NO_ATTRIBUTES: dict = {}


def _graph(rows: list[tuple[int, ...]]) -> CallGraph:
    """The graph with an edge from each function to each of its callees.

    Filled through the adjacency attributes networkx lets a subclass set
    (`_adj` and `_pred` are descriptors that keep the cached views right):
    add_edges_from would spend most of the link stage checking millions of
    edges one at a time."""
    succ = {caller: dict.fromkeys(row, _NO_ATTRIBUTES) for caller, row in enumerate(rows)}
    pred: dict[int, dict[int, dict]] = {node: {} for node in range(len(rows))}
    for caller, row in enumerate(rows):
        for callee in row:
            pred[callee][caller] = _NO_ATTRIBUTES
    graph = CallGraph()
    graph._node = {node: {} for node in range(len(rows))}
    graph._adj = succ
    graph._pred = pred
    return graph
