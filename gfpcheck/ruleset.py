"""Kernel API knowledge loaded from rules/*.yaml into one frozen Ruleset.

Each YAML file is validated against schema/rules.schema.json as it is read;
a problem is reported as a RuleError naming the file and the key.  Files are
merged in name order, directories in the order given: a later entry with the
same name replaces an earlier one, so an extra rules directory can override
the bundled rules without editing them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .files import read_regular
from .kconfig.dotconfig import KernelConfig
from .masks import Mask, MaskAlgebra, MaskSyntaxError


class RuleError(Exception):
    """A rules file that cannot be used; the message names the file and key."""


@dataclass(frozen=True, slots=True)
class Allocator:
    name: str
    gfp_arg: int | None
    implied: str | None


@dataclass(frozen=True, slots=True)
class ScopeApi:
    name: str
    kind: str  # "nofs" | "noio"
    op: str  # "open" | "close"


@dataclass(frozen=True, slots=True)
class Family:
    """A context family: where an allocation must not let reclaim recurse.

    `unsafe` are the GFP bits whose presence with direct reclaim is unsafe
    while the context holds; `scopes` the scope kinds whose open scope clears
    them at run time; `entries` the ops fields (struct, field) whose
    implementations start in the context; `habits` path prefixes where a mask
    clearing the bits is a habit with another reason, not a belief that the
    context holds."""

    name: str  # fs, io
    held: str  # what is held, as a chain says "returns with ... held": "a transaction handle"
    begins: str  # what a begin API does, as a chain says it: "takes a transaction handle"
    mask: str  # the explicit mask that says the context holds: "NOFS"
    unsafe: tuple[str, ...]
    scopes: frozenset[str]
    entries: tuple[tuple[str, str], ...] = ()
    habits: tuple[str, ...] = ()
    through_ops: bool = True  # whether a held context crosses calls through ops tables and callbacks
    # Families whose held context a callee is not entered with while this one is
    # held: every mask unsafe for them is unsafe here too, so their checks would
    # only repeat this family's findings below it, one report per root cause.
    covers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TransactionBegin:
    name: str
    handle_type: str  # the object the API acts on (a handle type, or e.g. struct request_queue)
    result: str  # "handle" | "status" | "none"
    family: str = "fs"


@dataclass(frozen=True, slots=True)
class Binder:
    macro: str
    key: str
    function_arg: int


@dataclass(frozen=True, slots=True)
class EntryContexts:
    """Where code starts besides system calls (rules/entry_contexts.yaml)."""

    clean: tuple[tuple[str, str], ...] = ()  # ops fields (struct, field) entered in a clean context
    clean_callbacks: tuple[tuple[str, int], ...] = ()  # (API, argument) whose function is entered clean
    reclaim: tuple[tuple[str, str], ...] = ()  # ops fields that can run from reclaim or writeback


# The binder key under which clean_macros register the functions they name.
CLEAN_ENTRY_KEY = "entry-context:clean"


@dataclass(frozen=True, slots=True)
class Dispatcher:
    macro: str
    key: str


@dataclass(frozen=True)
class Ruleset:
    """Everything the analysis knows about kernel APIs; treat as read-only."""

    bits: dict[str, int]
    roles: dict[str, str]
    masks: dict[str, str]
    mask_types: frozenset[str]
    opportunistic: frozenset[str]
    mask_functions: dict[str, str]
    allocators: dict[str, Allocator]
    scopes: dict[str, ScopeApi]
    scope_clears: dict[str, tuple[str, ...]]  # scope kind -> the GFP bits an open scope clears
    families: tuple[Family, ...]
    handle_types: dict[str, str]  # type -> its name; a pointer parameter of the type implies its family's context
    handle_family: dict[str, str]  # type -> family
    begin: dict[str, TransactionBegin]
    end: dict[str, int]  # API -> index of its handle argument
    end_family: dict[str, str]  # API -> family
    error_pointer_checks: frozenset[str]
    transparent_checks: frozenset[str]
    error_returns: frozenset[str]
    entry_macros: dict[str, str]  # macro -> name pattern; what it defines is a clean entry point
    define_macros: dict[str, str]  # macro -> name pattern; what it defines is an ordinary function
    do_while_macros: frozenset[str]  # macros standing for `while (...)` at the end of a do-while
    attribute_macros: frozenset[str]  # attributes with arguments (`__aligned(8)`): blanked before parsing
    build_switches: frozenset[str]  # macros only a file's own #define or its Makefile's -D defines (DEBUG)
    noreturn: frozenset[str]
    release: frozenset[str]  # functions that give memory back: a context is not followed into them
    task_switch: frozenset[str]  # the scheduler: what runs below it runs for another task
    # condition -> ops struct: the test holds only for objects of a subsystem that binds that struct
    features: dict[str, str]
    # condition -> subsystems: the test holds only for objects of these (hugetlb folios: mm, fs/hugetlbfs)
    features_only_in: dict[str, frozenset[str]]
    # condition -> CONFIG_ option: the test is false in a build without it
    features_config: dict[str, str]
    binders: dict[str, Binder]
    dispatchers: dict[str, Dispatcher]
    entry_contexts: EntryContexts
    field_dispatchers: dict[str, str]
    digest: str
    sources: tuple[str, ...] = field(default=())
    # The kernel configuration being scanned, when one is: what the build
    # contains is part of what the analysis knows (and of every cache key).
    kconfig: KernelConfig | None = None
    # With a configuration: (directory, name) for each build switch a Makefile
    # there passes with -D, under whatever condition.
    makefile_defines: frozenset[tuple[str, str]] = frozenset()

    @cached_property
    def feature_tests(self) -> frozenset[str]:
        return frozenset(self.features) | frozenset(self.features_only_in) | frozenset(self.features_config)

    def with_kconfig(self, kconfig: KernelConfig | None,
                     makefile_defines: frozenset[tuple[str, str]] = frozenset()) -> Ruleset:
        """These rules for a tree built with `kconfig`, whose Makefiles pass the
        build switches `makefile_defines` with -D."""
        if kconfig is None:
            return self
        defined = "\0".join(f"{d}:{n}" for d, n in sorted(makefile_defines))
        digest = hashlib.sha256(f"{self.digest}\0{kconfig.digest}\0{defined}".encode()).hexdigest()
        return replace(self, kconfig=kconfig, makefile_defines=makefile_defines, digest=digest)

    def switches_off(self, path: str) -> frozenset[str]:
        """The build switches no Makefile defines for `path`: those of its directory
        and every directory above it (subdir-ccflags reach down)."""
        if not self.build_switches:
            return frozenset()
        parts = path.split("/")[:-1]
        above = {"/".join(parts[:i]) + "/" for i in range(len(parts) + 1)}
        return frozenset(n for n in self.build_switches
                         if not any((d, n) in self.makefile_defines for d in above))

    @cached_property
    def attribute_pattern(self) -> re.Pattern[bytes] | None:
        """One of the attribute_macros followed by `(`; the name is group 1."""
        return _names_pattern(rb"\b", self.attribute_macros)

    @cached_property
    def do_while_pattern(self) -> re.Pattern[bytes] | None:
        """`}` followed on its line by one of the do_while_macros and `(`; the name is group 1."""
        return _names_pattern(rb"\}[ \t]*", self.do_while_macros)

    @cached_property
    def name_macros(self) -> dict[str, str]:
        """Every macro that defines a function, with the pattern of its name."""
        return {**self.define_macros, **self.entry_macros}

    @cached_property
    def algebra(self) -> MaskAlgebra:
        return MaskAlgebra(self.bits, self.masks, self.mask_functions)

    @cached_property
    def family_by_name(self) -> dict[str, Family]:
        return {family.name: family for family in self.families}

    @cached_property
    def scope_kinds(self) -> tuple[str, ...]:
        """Every scope kind, in the order the rules first name them."""
        kinds = list(self.scope_clears) + [api.kind for api in self.scopes.values()]
        for family in self.families:
            kinds.extend(sorted(family.scopes))
        return tuple(dict.fromkeys(kinds))

    def bits_of(self, names) -> int:
        bits = 0
        for name in names:
            bits |= self.bits[name]
        return bits

    def unsafe_bits(self, family: Family) -> int:
        bits = 0
        for name in family.unsafe:
            bits |= self.bits[name]
        return bits

    @property
    def fs_bit(self) -> int:
        return self.bits[self.roles["fs"]]


    @property
    def reclaim_bit(self) -> int:
        return self.bits[self.roles["direct_reclaim"]]

    @cached_property
    def special_names(self) -> frozenset[str]:
        """Names a call site must be analysed for itself, not just followed."""
        return frozenset(self.allocators) | frozenset(self.scopes) | frozenset(self.begin) | \
            frozenset(self.end) | frozenset(self.dispatchers) | self.noreturn

    @property
    def opportunistic_bits(self) -> int:
        bits = 0
        for name in self.opportunistic:
            bits |= self.bits[name]
        return bits

    def implied_mask(self, allocator: Allocator) -> Mask:
        assert allocator.implied is not None
        return self.algebra.names[allocator.implied]

    def __getstate__(self) -> dict[str, Any]:
        # cached_property values are rebuilt in worker processes
        state = dict(self.__dict__)
        for name in ("algebra", "special_names", "family_by_name", "scope_kinds", "do_while_pattern", "name_macros",
                     "attribute_pattern"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


def default_rules_dir() -> Path:
    """The bundled rules: gfpcheck/rules inside an installed package (the wheel
    carries them there), else rules/ beside the package in a source checkout."""
    package = Path(__file__).resolve().parent
    installed = package / "rules"
    return installed if installed.is_dir() else package.parent / "rules"


def _schema() -> dict[str, Any]:
    text = resources.files("gfpcheck").joinpath("schema/rules.schema.json").read_text()
    return json.loads(text)


def _where(path: Path, error: jsonschema.ValidationError) -> str:
    key = ""
    for part in error.absolute_path:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return f"{path}: {key or '(top level)'}: {error.message}"


def _read(path: Path, validator: jsonschema.Draft202012Validator) -> dict[str, Any]:
    data = read_regular(path)
    if data is None:
        raise RuleError(f"{path}: cannot read rules file (missing, unreadable or not a regular file)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RuleError(f"{path}: cannot read rules file: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except RecursionError:
        raise RuleError(f"{path}: not a rules file: values nested too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "?"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RuleError(f"{path}: {where}: invalid YAML: {problem}") from None
    if data is None:
        return {}
    try:
        errors = sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    except RecursionError:
        raise RuleError(f"{path}: not a rules file: values nested too deeply") from None
    if errors:
        raise RuleError(_where(path, errors[0]))
    return data


def _rule_files(dirs: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for directory in dirs:
        if not directory.is_dir():
            raise RuleError(f"{directory}: rules directory not found; pass an existing directory with --rules")
        found = sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml"))
        if not found:
            raise RuleError(f"{directory}: no rules files (*.yaml) in this rules directory; "
                            f"check the path given with --rules or in the settings")
        files.extend(found)
    return files


def _names_pattern(before: bytes, names: frozenset[str]) -> re.Pattern[bytes] | None:
    """`before`, one of `names` (group 1) and `(`; None when there are no names."""
    if not names:
        return None
    alternatives = b"|".join(re.escape(name.encode()) for name in sorted(names))
    return re.compile(before + rb"(" + alternatives + rb")[ \t]*\(")


def load_rules(dirs: Iterable[Path] | None = None) -> Ruleset:
    """Load, validate and merge every rules file; raises RuleError on any problem."""
    dirs = list(dirs) if dirs is not None else [default_rules_dir()]
    validator = jsonschema.Draft202012Validator(_schema())
    merged: dict[str, Any] = {}
    origin: dict[str, Path] = {}
    files = _rule_files(dirs)
    for path in files:
        data = _read(path, validator)
        for section, value in data.items():
            origin.setdefault(section, path)
            if isinstance(value, dict):
                merged.setdefault(section, {}).update(value)
            else:
                merged.setdefault(section, []).extend(value)
    digest = hashlib.sha256(json.dumps(merged, sort_keys=True).encode()).hexdigest()
    ruleset = _build(merged, digest, tuple(str(p) for p in files))
    _check(ruleset, origin)
    return ruleset


def _by_name(items: list[dict[str, Any]], key: str = "name") -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        out[item[key]] = item
    return out


def _build(data: dict[str, Any], digest: str, sources: tuple[str, ...]) -> Ruleset:
    checks = data.get("failure_checks", {})
    contexts = data.get("entry_contexts", {})
    return Ruleset(
        bits=dict(data.get("bits", {})),
        roles=dict(data.get("roles", {})),
        masks=dict(data.get("masks", {})),
        mask_types=frozenset(data.get("mask_types", [])),
        opportunistic=frozenset(data.get("opportunistic", [])),
        mask_functions={n: d["value"] for n, d in _by_name(data.get("mask_functions", [])).items()},
        allocators={n: Allocator(n, d.get("gfp_arg"), d.get("implied"))
                    for n, d in _by_name(data.get("allocators", [])).items()},
        scopes={n: ScopeApi(n, d["kind"], d["op"]) for n, d in _by_name(data.get("scopes", [])).items()},
        scope_clears={kind: tuple(bits) for kind, bits in data.get("scope_kinds", {}).items()},
        families=tuple(Family(n, d["held"], d["begins"], d["mask"], tuple(d["unsafe"]), frozenset(d["neutralised_by"]),
                              tuple((normalize_type(e["struct"]), e["field"]) for e in d.get("entries", [])),
                              tuple(d.get("habits", [])), d.get("through_ops", True),
                              tuple(d.get("covers", [])))
                       for n, d in _by_name(data.get("families", [])).items()),
        handle_types={normalize_type(d["type"]): d.get("name", d["type"])
                      for d in data.get("handle_types", [])},
        handle_family={normalize_type(d["type"]): d.get("family", "fs") for d in data.get("handle_types", [])},
        begin={n: TransactionBegin(n, normalize_type(d.get("object") or d["handle_type"]), d["result"], d.get("family", "fs"))
               for n, d in _by_name(data.get("begin", [])).items()},
        end={n: d.get("handle_arg", 0) for n, d in _by_name(data.get("end", [])).items()},
        end_family={n: d.get("family", "fs") for n, d in _by_name(data.get("end", [])).items()},
        error_pointer_checks=frozenset(checks.get("error_pointer", [])),
        transparent_checks=frozenset(checks.get("transparent", [])),
        error_returns=frozenset(checks.get("error_returns", [])),
        entry_macros={d["macro"]: d["name"] for d in data.get("entry_macros", [])},
        define_macros={d["macro"]: d["name"] for d in data.get("define_macros", [])},
        do_while_macros=frozenset(data.get("do_while_macros", [])),
        attribute_macros=frozenset(data.get("attribute_macros", [])),
        build_switches=frozenset(data.get("build_switches", [])),
        noreturn=frozenset(data.get("noreturn", [])),
        release=frozenset(data.get("release", [])),
        task_switch=frozenset(data.get("task_switch", [])),
        features={f["test"]: normalize_type(f["implemented_by"]) for f in data.get("features", [])
                  if "implemented_by" in f},
        features_only_in={f["test"]: frozenset(f["only_in"]) for f in data.get("features", []) if "only_in" in f},
        features_config={f["test"]: f["config"] for f in data.get("features", []) if "config" in f},
        binders={**{d["macro"]: Binder(d["macro"], CLEAN_ENTRY_KEY, d["function_arg"])
                    for d in contexts.get("clean_macros", [])},
                 **{n: Binder(n, d["key"], d["function_arg"])
                    for n, d in _by_name(data.get("binders", []), "macro").items()}},
        entry_contexts=EntryContexts(
            clean=tuple((normalize_type(d["struct"]), d["field"]) for d in contexts.get("clean", [])),
            clean_callbacks=tuple((d["function"], d["arg"]) for d in contexts.get("clean_callbacks", [])),
            reclaim=tuple((normalize_type(d["struct"]), d["field"]) for d in contexts.get("reclaim", []))),
        dispatchers={n: Dispatcher(n, d["key"]) for n, d in _by_name(data.get("dispatchers", []), "macro").items()},
        field_dispatchers={d["parent_field"]: d["key"] for d in data.get("field_dispatchers", [])},
        digest=digest,
        sources=sources,
    )


def normalize_type(text: str) -> str:
    """`struct  foo` -> `struct foo`; the form types are compared in."""
    return " ".join(text.split())


def _check(rules: Ruleset, origin: dict[str, Path]) -> None:
    """Cross-file consistency the schema cannot express."""
    def where(section: str) -> str:
        return str(origin.get(section, "rules"))

    for role in ("fs", "io", "direct_reclaim"):
        name = rules.roles.get(role)
        if name is None:
            raise RuleError(f"{where('roles')}: roles.{role}: missing; name the GFP bit that plays this role")
        if name not in rules.bits:
            raise RuleError(f"{where('roles')}: roles.{role}: {name!r} is not a bit defined under bits")
    try:
        algebra = rules.algebra
    except MaskSyntaxError as exc:
        raise RuleError(f"{where('masks')}: masks: {exc}") from None
    for name, template in rules.mask_functions.items():
        try:
            algebra.evaluate(template)
        except MaskSyntaxError as exc:
            raise RuleError(f"{where('mask_functions')}: mask_functions.{name}: {exc}") from None
    for name in rules.opportunistic:
        if name not in rules.bits:
            raise RuleError(f"{where('opportunistic')}: opportunistic: {name!r} is not a bit defined under bits")
    for allocator in rules.allocators.values():
        if allocator.implied is not None and allocator.implied not in algebra.names:
            raise RuleError(f"{where('allocators')}: allocators.{allocator.name}.implied: "
                            f"{allocator.implied!r} is not a known mask")
    for kind, bits in rules.scope_clears.items():
        for bit in bits:
            if bit not in rules.bits:
                raise RuleError(f"{where('scope_kinds')}: scope_kinds.{kind}: {bit!r} is not a bit defined under bits")
    for api in rules.scopes.values():
        if api.kind not in rules.scope_clears:
            raise RuleError(f"{where('scopes')}: scopes.{api.name}.kind: {api.kind!r} is not listed under "
                            f"scope_kinds")
    families = rules.family_by_name
    for family in rules.families:
        for kind in family.scopes:
            if kind not in rules.scope_clears:
                raise RuleError(f"{where('families')}: families.{family.name}.neutralised_by: {kind!r} is not "
                                f"listed under scope_kinds")
        for bit in family.unsafe:
            if bit not in rules.bits:
                raise RuleError(f"{where('families')}: families.{family.name}.unsafe: {bit!r} is not a bit "
                                f"defined under bits")
        for covered in family.covers:
            if covered not in families or covered == family.name:
                raise RuleError(f"{where('families')}: families.{family.name}.covers: {covered!r} is not "
                                f"another family declared under families")
    for section, entries in (("handle_types", rules.handle_family), ("begin", {b.name: b.family for b in
                                                                               rules.begin.values()}),
                             ("end", rules.end_family)):
        for name, family in entries.items():
            if family not in families:
                raise RuleError(f"{where(section)}: {section}.{name}.family: {family!r} is not a family "
                                f"declared under families")
    for begin in rules.begin.values():
        if begin.result == "handle" and begin.handle_type not in rules.handle_types:
            raise RuleError(f"{where('begin')}: begin.{begin.name}.object: "
                            f"{begin.handle_type!r} is returned as a handle but not listed under handle_types")
    for section in ("entry_macros", "define_macros"):
        for macro, pattern in getattr(rules, section).items():
            if re.search(r"\{(?!0\})", pattern):
                raise RuleError(f"{where(section)}: {section}.{macro}.name: only {{0}} may be used")
