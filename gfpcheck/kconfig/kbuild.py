"""Which .c files Kbuild compiles under a configuration.

Every top-level directory of the tree is taken as reached (the top Makefile
names them through variables of its own), and the architecture's Makefile
adds the directories it lists in `core-y`, `libs-y`, `drivers-y`.  In a
reached directory its Kbuild file (else its Makefile) is read the way make
reads it, as far as object lists go: assignments (`:=`, `=`, `+=`, `?=`),
`$(CONFIG_X)` and other variables expanded, `ifeq`/`ifneq`/`ifdef`/`ifndef`
decided, and the usual text functions (`addprefix`, `patsubst`, ...).  Then
`obj-y`, `obj-m`, `lib-y` and `subdir-y` say what is built: `foo.o` is
`foo.c` unless `foo-y`, `foo-objs` or `foo-m` lists its parts, `dir/` is a
directory entered.  A reached directory with neither file is read whole.  A
.c file no object names is still built when a built .c file includes it
(`#include "fair.c"`).

Each built file also gets its unit, the object it is linked into: `btrfs`
for every part of `btrfs-y`, `dm-cache` for dm-cache-target.c and
dm-cache-metadata.c but not for dm-bufio.c; a file that is an object of its
own belongs to its directory's unit (block/, mm/).  A report is grouped at
the call where its chain leaves the unit that took the context.
"""

from __future__ import annotations

import marshal
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from .conditions import apply_config
from .dotconfig import KernelConfig

_ASSIGN = re.compile(r"^(?:export\s+|override\s+)?((?:\$[({][^)}]*[)}]|[^\s=:+?#$])+)\s*(:{1,3}=|\+=|\?=|=)\s*(.*)$")
_CONDITIONAL = re.compile(r"^(ifeq|ifneq|ifdef|ifndef)\b\s*(.*)$")
_INCLUDE_C = re.compile(rb'^[ \t]*#[ \t]*include[ \t]*"([^"\n]+\.c)"', re.M)
_DASH_D = re.compile(r"-D\s*([A-Za-z_]\w*)")  # a macro defined on the compiler's command line
_OBJECT_LISTS = ("obj-y", "obj-m", "lib-y", "lib-m", "subdir-y", "subdir-m")
_ROOT_LISTS = ("core-y", "libs-y", "drivers-y", "head-y", "init-y", "net-y", "virt-y")
_PART_SUFFIXES = ("-y", "-objs", "-m")


@dataclass(frozen=True)
class BuiltSet:
    """What a configuration builds: .c files Kbuild names, and directories it reads
    whole (no Makefile there to say)."""

    files: frozenset[str]
    whole: frozenset[str]  # root-relative directories, "/"-terminated
    makefiles: int  # Makefiles and Kbuild files read
    units: tuple[tuple[str, str], ...] = ()  # (.c file, the object it is linked into), by file
    defines: frozenset[tuple[str, str]] = frozenset()  # (directory, NAME) for each -DNAME in its Makefiles

    def builds(self, rel: str) -> bool:
        return rel in self.files or rel[:rel.rfind("/") + 1] in self.whole


class Inputs:
    """What one evaluation of Kbuild read: each file with its stamp (None when it
    was not there) and each directory's subdirectories.  When all are as they
    were, the evaluation would give the same BuiltSet (`unchanged`)."""

    def __init__(self, root: Path):
        self.root = root
        self.files: dict[str, tuple[int, ...] | None] = {}
        self.directories: dict[str, tuple[str, ...]] = {}

    def file(self, path: Path) -> None:
        self.files[str(path)] = _stamp(path)

    def listing(self, directory: str, names: list[str]) -> None:
        self.directories[directory] = tuple(names)

    def dump(self) -> tuple:
        return (self.files, self.directories)

    def unchanged(self) -> bool:
        return (all(_stamp(Path(path)) == stamp for path, stamp in self.files.items())
                and all(tuple(_subdirectories(self.root, d)) == names for d, names in self.directories.items()))


def dump_built(built: BuiltSet, inputs: Inputs) -> bytes:
    """Bytes for the cache: what Kbuild builds, and what it was read from."""
    return marshal.dumps((tuple(built.files), tuple(built.whole), built.makefiles, built.units,
                          tuple(built.defines), inputs.dump()))


def load_built(blob: bytes | None, root: Path) -> BuiltSet | None:
    """What `dump_built` stored, when everything it was read from is as it was;
    else None."""
    if blob is None:
        return None
    try:
        files, whole, makefiles, units, defines, (read, listed) = marshal.loads(blob)
        inputs = Inputs(root)
        inputs.files, inputs.directories = dict(read), dict(listed)
        if not inputs.unchanged():
            return None
        return BuiltSet(frozenset(files), frozenset(whole), makefiles, tuple(map(tuple, units)),
                        frozenset(map(tuple, defines)))
    except (ValueError, EOFError, TypeError, OSError):
        return None


def _stamp(path: Path) -> tuple[int, ...] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino, info.st_mode)


def built_sources(root: Path, config: KernelConfig, arch: str, sources: Iterable[str],
                  read: Callable[[str], bytes | None], skip: Callable[[str], bool],
                  inputs: Inputs | None = None) -> BuiltSet:
    """The .c files among `sources` (root-relative) that Kbuild builds under `config`.
    `read` gives a source's bytes (for `#include "x.c"`); `skip` says which
    directories the scan leaves out anyway; `inputs`, when given, records what
    was read."""
    inputs = inputs if inputs is not None else Inputs(root)
    walker = _Walker(root, config, arch, skip, inputs)
    walker.walk()
    candidates = sorted(s for s in sources if s.endswith(".c"))
    built = {s for s in candidates if s in walker.files}
    whole = frozenset(walker.whole)

    def recorded(rel: str) -> bytes | None:
        inputs.file(root / rel)
        return read(rel)

    _add_included(candidates, built, whole, recorded, config, walker.units)
    units = tuple(sorted((rel, walker.units[rel]) for rel in built if rel in walker.units))
    return BuiltSet(frozenset(built), whole, walker.makefiles, units, frozenset(walker.defines))


def _add_included(candidates: list[str], built: set[str], whole: frozenset[str],
                  read: Callable[[str], bytes | None], config: KernelConfig, units: dict[str, str]) -> None:
    """Add the .c files a built .c file includes, transitively, where the include
    is not in a branch the configuration leaves out (mballoc.c includes its KUnit
    tests under `#ifdef CONFIG_EXT4_KUNIT_TESTS`); each is in its includer's unit."""
    left = {rel for rel in candidates if rel not in built and rel[:rel.rfind("/") + 1] not in whole}
    if not left:
        return
    directories = {rel.rpartition("/")[0] for rel in left}
    work = [rel for rel in sorted(built) if rel.rpartition("/")[0] in directories]
    seen = set(work)
    while work:
        rel = work.pop()
        data = read(rel)
        if not data or b'.c"' not in data:
            continue
        data = apply_config(data, config)
        here = rel.rpartition("/")[0]
        for match in _INCLUDE_C.finditer(data):
            target = os.path.normpath(os.path.join(here, match.group(1).decode("utf-8", "replace")))
            if target in left:
                left.discard(target)
                built.add(target)
                if rel in units:
                    units[target] = units[rel]
                if target not in seen:
                    seen.add(target)
                    work.append(target)


class _Walker:
    def __init__(self, root: Path, config: KernelConfig, arch: str, skip: Callable[[str], bool], inputs: Inputs):
        self.root = root
        self.inputs = inputs
        self.config = config
        self.arch = arch
        self.skip = skip
        self.files: set[str] = set()
        self.whole: set[str] = set()
        self.units: dict[str, str] = {}  # file -> "dir/stem" of the composite object it is part of
        self.defines: set[tuple[str, str]] = set()
        self.makefiles = 0

    def walk(self) -> None:
        queue = [name + "/" for name in self.subdirectories("") if name != "arch"]
        arch_dir = f"arch/{self.arch}/"
        self.inputs.file(self.root / arch_dir)
        if (self.root / arch_dir).is_dir():
            queue.append(arch_dir)
            variables = self.read_makefile(arch_dir, "Makefile")
            if variables is not None:
                for name in _ROOT_LISTS:
                    queue.extend(_directory(entry) for entry in variables.get(name, "").split() if entry.endswith("/"))
        done: set[str] = set()
        while queue:
            directory = queue.pop()
            if directory in done or self.skip(directory):
                continue
            done.add(directory)
            queue.extend(self.visit(directory))

    def visit(self, directory: str) -> list[str]:
        """The directories `directory`'s Kbuild file enters; records its files."""
        variables = None
        for name in ("Kbuild", "Makefile"):
            variables = self.read_makefile(directory, name)
            if variables is not None:
                break
        if variables is None:
            self.whole.add(directory)
            return [directory + name + "/" for name in self.subdirectories(directory)]
        entered = []
        for listed in _OBJECT_LISTS:
            for entry in variables.get(listed, "").split():
                if entry.endswith("/"):
                    entered.append(_directory(directory + entry))
                elif entry.endswith(".o"):
                    self.add_object(directory, entry[:-2], variables, 0, None)
        return entered

    def add_object(self, directory: str, stem: str, variables: dict[str, str], depth: int,
                   unit: str | None) -> None:
        parts = " ".join(variables.get(stem + suffix, "") for suffix in _PART_SUFFIXES).split()
        if parts and depth < 8:
            for part in parts:
                if part.endswith(".o") and part[:-2] != stem:
                    self.add_object(directory, part[:-2], variables, depth + 1, unit or directory + stem)
            return
        path = os.path.normpath(directory + stem + ".c")
        self.files.add(path)
        if unit is not None:
            self.units.setdefault(path, unit)

    def subdirectories(self, directory: str) -> list[str]:
        names = _subdirectories(self.root, directory)
        self.inputs.listing(directory, names)
        return names

    def read_makefile(self, directory: str, name: str) -> dict[str, str] | None:
        path = self.root / directory / name
        self.inputs.file(path)
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
        self.makefiles += 1
        self.defines.update((directory, name) for name in _DASH_D.findall(text))
        return _Makefile(self.config, self.arch, self.root, self.inputs).run(text)


def _directory(path: str) -> str:
    return os.path.normpath(path) + "/"


def _subdirectories(root: Path, directory: str) -> list[str]:
    try:
        with os.scandir(root / directory if directory else root) as scan:
            return sorted(e.name for e in scan if e.is_dir(follow_symlinks=False) and not e.name.startswith("."))
    except OSError:
        return []


class _Makefile:
    """The variables a Makefile leaves set, as far as plain assignments and
    conditionals make them."""

    def __init__(self, config: KernelConfig, arch: str, root: Path, inputs: Inputs):
        self.config = config
        self.root = root
        self.inputs = inputs
        self.included = 0
        self.variables: dict[str, str] = {"SRCARCH": arch, "ARCH": arch, "srctree": ".", "src": ".", "obj": "."}

    def run(self, text: str) -> dict[str, str]:
        active = [True]  # per open conditional: is its current branch taken
        decided = []  # per open conditional: was a branch already taken
        in_define = False
        for line in _lines(text):
            stripped = line.strip()
            if in_define:
                in_define = stripped != "endef"
                continue
            if line.startswith("\t") or not stripped or stripped.startswith("#"):
                continue
            word = stripped.split(None, 1)[0]
            if word == "define":
                in_define = True
                continue
            if word in ("include", "-include", "sinclude") and active[-1]:
                self.include(stripped.split(None, 1)[1] if " " in stripped else "")
                continue
            conditional = _CONDITIONAL.match(stripped)
            if conditional:
                outer = active[-1]
                value = outer and self.condition(conditional.group(1), conditional.group(2))
                active.append(value)
                decided.append(value or not outer)
                continue
            if word == "else":
                if len(active) > 1:
                    outer = active[-2]
                    rest = _CONDITIONAL.match(stripped[4:].strip())
                    value = outer and not decided[-1] and (rest is None or self.condition(rest.group(1), rest.group(2)))
                    active[-1] = value
                    decided[-1] = decided[-1] or value
                continue
            if word == "endif":
                if len(active) > 1:
                    active.pop()
                    decided.pop()
                continue
            if not active[-1]:
                continue
            assignment = _ASSIGN.match(stripped)
            if assignment:
                self.assign(*assignment.groups())
        return self.variables

    def include(self, names: str) -> None:
        """Read an included Makefile in place (`include $(srctree)/virt/kvm/Makefile.kvm`)."""
        for name in self.expand(_strip_comment(names)).split():
            path = (self.root / name).resolve()
            if self.included >= 8 or not path.is_relative_to(self.root.resolve()):
                continue
            self.inputs.file(path)
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            self.included += 1
            self.run(text)

    def assign(self, name: str, op: str, value: str) -> None:
        name = self.expand(name).strip()
        if not name or " " in name:
            return
        value = _strip_comment(value)
        if op == "+=":
            old = self.variables.get(name, "")
            self.variables[name] = (old + " " + self.expand(value)).strip()
        elif op == "?=":
            self.variables.setdefault(name, self.expand(value))
        else:
            self.variables[name] = self.expand(value)

    def condition(self, kind: str, text: str) -> bool:
        text = _strip_comment(text).strip()
        if kind in ("ifdef", "ifndef"):
            name = self.expand(text).strip()
            defined = bool(self.lookup(name))
            return defined if kind == "ifdef" else not defined
        pair = _pair(text)
        if pair is None:
            return kind == "ifeq"  # unreadable: take the branch that ifeq would not skip
        left, right = (self.expand(side).strip() for side in pair)
        return (left == right) == (kind == "ifeq")

    def lookup(self, name: str) -> str:
        if name.startswith("CONFIG_"):
            return self.config.value(name) or ""
        return self.variables.get(name, "")

    def expand(self, text: str) -> str:
        if "$" not in text:
            return text
        out = []
        i = 0
        n = len(text)
        while i < n:
            ch = text[i]
            if ch != "$" or i + 1 >= n:
                out.append(ch)
                i += 1
                continue
            nxt = text[i + 1]
            if nxt in "({":
                close = _closing(text, i + 1)
                if close is None:
                    break
                out.append(self.reference(text[i + 2:close]))
                i = close + 1
            elif nxt == "$":
                out.append("$")
                i += 2
            else:
                out.append(self.lookup(nxt))
                i += 2
        return "".join(out)

    def reference(self, inner: str) -> str:
        head, _, rest = inner.partition(" ")
        function = _FUNCTIONS.get(head)
        if function is None or not rest:
            return self.lookup(self.expand(inner).strip())
        args = _split_args(rest, 3 if head in ("patsubst", "subst", "if") else 2 if head in _TWO_ARGS else 1)
        return function(self, args)


def _pair(text: str) -> tuple[str, str] | None:
    if text.startswith("("):
        close = _closing(text, 0)
        if close is None:
            return None
        parts = _split_args(text[1:close], 2)
        return (parts[0], parts[1]) if len(parts) == 2 else None
    quoted = re.fullmatch(r"""(["'])(.*?)\1\s+(["'])(.*?)\3""", text)
    return (quoted.group(2), quoted.group(4)) if quoted else None


def _closing(text: str, open_at: int) -> int | None:
    opener = text[open_at]
    closer = ")" if opener == "(" else "}"
    depth = 0
    for i in range(open_at, len(text)):
        if text[i] == opener:
            depth += 1
        elif text[i] == closer:
            depth -= 1
            if depth == 0:
                return i
    return None


def _split_args(text: str, count: int) -> list[str]:
    """`text` split at its first `count - 1` top-level commas."""
    parts = []
    depth = 0
    start = 0
    for i, ch in enumerate(text):
        if ch in "({":
            depth += 1
        elif ch in ")}":
            depth -= 1
        elif ch == "," and depth == 0 and len(parts) < count - 1:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _pattern(pattern: str, word: str) -> str | None:
    """The stem `word` matches `pattern` (with one %) with, or None."""
    if "%" not in pattern:
        return "" if word == pattern else None
    prefix, _, suffix = pattern.partition("%")
    if word.startswith(prefix) and word.endswith(suffix) and len(word) >= len(prefix) + len(suffix):
        return word[len(prefix):len(word) - len(suffix)]
    return None


def _patsubst(m: _Makefile, args: list[str]) -> str:
    if len(args) < 3:
        return ""
    pattern, replacement = m.expand(args[0]).strip(), m.expand(args[1]).strip()
    out = []
    for word in m.expand(args[2]).split():
        stem = _pattern(pattern, word)
        out.append(word if stem is None else replacement.replace("%", stem, 1))
    return " ".join(out)


def _filter(keep: bool):
    def apply(m: _Makefile, args: list[str]) -> str:
        if len(args) < 2:
            return ""
        patterns = m.expand(args[0]).split()
        words = m.expand(args[1]).split()
        return " ".join(w for w in words if any(_pattern(p, w) is not None for p in patterns) == keep)
    return apply


def _if(m: _Makefile, args: list[str]) -> str:
    if m.expand(args[0]).strip():
        return m.expand(args[1]) if len(args) > 1 else ""
    return m.expand(args[2]) if len(args) > 2 else ""


_FUNCTIONS: dict[str, Callable[[_Makefile, list[str]], str]] = {
    "addprefix": lambda m, a: " ".join(m.expand(a[0]).strip() + w for w in m.expand(a[1]).split()) if len(a) > 1 else "",
    "addsuffix": lambda m, a: " ".join(w + m.expand(a[0]).strip() for w in m.expand(a[1]).split()) if len(a) > 1 else "",
    "patsubst": _patsubst,
    "subst": lambda m, a: m.expand(a[2]).replace(m.expand(a[0]), m.expand(a[1])) if len(a) > 2 else "",
    "filter": _filter(True),
    "filter-out": _filter(False),
    "if": _if,
    "strip": lambda m, a: " ".join(m.expand(a[0]).split()),
    "sort": lambda m, a: " ".join(sorted(set(m.expand(a[0]).split()))),
    "firstword": lambda m, a: (m.expand(a[0]).split() or [""])[0],
    "notdir": lambda m, a: " ".join(w.rpartition("/")[2] for w in m.expand(a[0]).split()),
    # Anything that runs a program or reads the build's state is empty here.
    "shell": lambda m, a: "",
    "call": lambda m, a: "",
    "wildcard": lambda m, a: "",
    "foreach": lambda m, a: "",
}
_TWO_ARGS = frozenset({"addprefix", "addsuffix", "filter", "filter-out", "foreach"})


def _strip_comment(text: str) -> str:
    cut = text.find("#")
    return text if cut < 0 else text[:cut]


def _lines(text: str) -> Iterable[str]:
    """Logical lines: a backslash at the end joins the next line."""
    pending = ""
    for raw in text.splitlines():
        if raw.endswith("\\"):
            pending += raw[:-1] + " "
            continue
        yield pending + raw
        pending = ""
    if pending:
        yield pending
