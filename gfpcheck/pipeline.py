"""The one place the stages are wired together.

discover files -> key them by content -> extract facts per file (cached,
parallel) -> link into one program and call graph -> propagate contexts ->
checks make findings.  A tree whose every file key was seen before gets the
stored result of that scan; one whose changed files only moved gets an
earlier result with its places moved (reuse.py).  The CLI calls `scan` and
hands the result to a reporter; nothing here prints.
"""

from __future__ import annotations

import gc
import hashlib
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

from . import __version__
from .cache import PackCache, code_digest, combined_key, salt
from .checks import Analysis, run_checks
from .checks.evidence import CONFIDENCE_ORDER
from .discover import (
    DEFAULT_ARCH,
    DEFAULT_EXCLUDES,
    DEFAULT_MAX_SIZE,
    SOURCE_SUFFIXES,
    Skipped,
    SourceFile,
    arch_excludes,
    discover,
    excluded,
)
from .extract.frontend import grammar_version
from .extract.runner import (
    STAMPS,
    ExtractStats,
    Keyed,
    Source,
    StampIndex,
    cache_for,
    cached_facts,
    extract_all,
    fact_cache,
    facts_of,
    key_in_workers,
    key_sources,
    read_source,
)
from .facts import FileFacts
from .findings import Finding, Stats
from .kconfig import BuiltSet, KernelConfig, built_sources
from .kconfig.kbuild import Inputs, dump_built, load_built
from .link import link
from .propagate.contexts import Contexts
from .propagate.effects import Effects
from .propagate.origins import Origins
from .reuse import Layout, Results, Stored
from .ruleset import Ruleset, load_rules


@dataclass(frozen=True)
class ScanOptions:
    paths: tuple[Path, ...]
    root: Path
    rules_dirs: tuple[Path, ...] | None = None
    jobs: int = 0  # 0: every core
    excludes: tuple[str, ...] = DEFAULT_EXCLUDES
    max_file_size: int = DEFAULT_MAX_SIZE
    min_confidence: str = "medium"  # findings below this are counted, not reported
    arch: str = DEFAULT_ARCH  # the one arch/ directory read; ALL_ARCHES for every one
    cache_dir: Path | None = None  # None: nothing is read from or written to a cache
    # Root-relative paths whose content is given in memory (a patch applied
    # without touching the tree); None removes the file.
    overrides: tuple[tuple[str, bytes | None], ...] = ()
    # The kernel configuration the tree is built with: files Kbuild would not
    # compile are not read, and conditionals it decides are pruned.
    kconfig: KernelConfig | None = None
    # Hand the whole analysis back in ScanResult.analysis instead of freeing it:
    # for a caller that exits right after, which saves seconds on a whole tree.
    keep_analysis: bool = False
    # Use the stored result of a scan of the same tree; False analyses again (for
    # questions asked of the analysis itself, as `gfpcheck why` asks).
    reuse_result: bool = True


@dataclass(frozen=True)
class ScanResult:
    findings: tuple[Finding, ...]
    stats: Stats
    skipped: tuple[Skipped, ...] = field(default=())
    degraded: tuple[Skipped, ...] = field(default=())
    # The facts, program and propagation behind the findings, with keep_analysis
    # (None when the stored result was reused).
    analysis: Analysis | None = field(default=None, repr=False, compare=False)


class Progress:
    """Callbacks a front end may pass to watch a scan; all optional."""

    def __init__(self, start: Callable[[str, int], None] | None = None,
                 advance: Callable[[int], None] | None = None, done: Callable[[], None] | None = None):
        self.start = start or (lambda stage, total: None)
        self.advance = advance or (lambda n: None)
        self.done = done or (lambda: None)


def scan(options: ScanOptions, progress: Progress | None = None, rules: Ruleset | None = None) -> ScanResult:
    """Run every stage over the tree; raises RuleError or DiscoveryError on unusable input."""
    # A whole tree is millions of small tuples and no reference cycles: the cyclic
    # collector would only rescan them over and over.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _scan(options, progress, rules)
    finally:
        if options.keep_analysis:
            # The analysis handed back was made with the collector off, so all of it
            # is young: the first collection would walk every object.  Reference
            # counting still frees it when it is dropped.
            gc.freeze()
        if collecting:
            gc.enable()


def _scan(options: ScanOptions, progress: Progress | None, rules: Ruleset | None) -> ScanResult:
    progress = progress or Progress()
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[stage] = round(seconds.get(stage, 0) + now - clock, 3)
        clock = now

    rules = rules or load_rules(options.rules_dirs)
    sources, skipped, built = _scan_sources(options)
    units = built.units if built is not None else ()
    defines = built.defines if built is not None else frozenset()
    rules = rules.with_kconfig(options.kconfig, frozenset(d for d in defines if d[1] in rules.build_switches))
    lap("discover")
    salted = facts_salt(rules)
    tree = _key(sources, salted, options, rules, progress, lap)
    keyed = tree.keyed
    results = Results(cache_for(options.cache_dir, RESULTS))
    # Findings depend on all of gfpcheck's code, facts only on the extractor's.
    result_key = combined_key([f"{k.source.path}\0{k.key}\0{k.problem}" for k in keyed]
                              + [f"{path}\0{unit}" for path, unit in units],
                              salt(salted.hex(), code_digest()))
    lap("key")
    stored = results.get(result_key) if options.reuse_result else None
    layout = Layout(result_key, {k.source.path: k.key for k in keyed})
    tree_key = combined_key([os.path.realpath(options.root), *layout.files, *(f"{p}\0{u}" for p, u in units)],
                            salt("layout", salted.hex(), code_digest()))
    moved = 0
    if stored is None and options.reuse_result:
        facts = fact_cache(options.cache_dir)
        try:
            stored, moved = results.carry_over(tree_key, layout, _facts_then_and_now(tree, rules, facts))
        finally:
            if facts is not None:
                facts.close()
        lap("move")
        if stored is not None:
            results.put(result_key, stored)
    analysis = None
    if stored is not None:
        if tree.started:
            progress.done()
        every, stats, degraded = stored
        stats = replace(stats, cache={"result_reused": 1, "facts_reused": len(keyed) - len(tree.fresh),
                                      "files_extracted": len(tree.fresh), "files_moved": moved})
    else:
        every, stats, degraded, analysis = _analyse(tree, rules, options, progress, salted, lap, units)
        results.put(result_key, Stored(every, stats, degraded))
    results.remember(tree_key, layout)
    floor = CONFIDENCE_ORDER[options.min_confidence]
    findings = [f for f in every if CONFIDENCE_ORDER[f.confidence] >= floor]
    stats = replace(
        stats,
        files_skipped=dict(sorted(Counter(_reason(s.reason) for s in skipped).items())),
        findings_below_confidence=len(every) - len(findings),
        seconds=seconds,
    )
    return ScanResult(tuple(findings), stats, tuple(skipped), degraded,
                      analysis if options.keep_analysis else None)


RESULTS = "results"  # the cache's kind for whole-scan results


def scan_sources(options: ScanOptions) -> tuple[list[Source], list[Skipped]]:
    """The files a scan reads, as discovered with the files given in memory applied."""
    sources, skipped, _ = _scan_sources(options)
    return sources, skipped


def _scan_sources(options: ScanOptions) -> tuple[list[Source], list[Skipped], BuiltSet | None]:
    """The files a scan reads, what was skipped, and what Kbuild says of them
    (None without a configuration)."""
    excludes = options.excludes + arch_excludes(options.root, options.arch)
    files, skipped = discover(list(options.paths), options.root, excludes, options.max_file_size)
    unbuilt: set[str] = set()
    built = None
    if options.kconfig is not None:
        files, unbuilt, built = _built(files, options, excludes)
        skipped = sorted(skipped + [Skipped(path, NOT_BUILT) for path in unbuilt], key=lambda s: s.path)
    sources = [Source(f.path, f.location, stamp=f.stamp) for f in files]
    if not options.overrides:
        return sources, skipped, built
    scanned = [_relative_dir(path, options.root) for path in options.paths]

    def admitted(path: str, data: bytes) -> bool:
        """Whether discovery would have read this file, had it been on disk."""
        return (path.endswith(SOURCE_SUFFIXES) and len(data) <= options.max_file_size
                and not excluded(path, excludes) and path not in unbuilt
                and any(prefix is not None and (prefix == "" or path.startswith(prefix + "/") or path == prefix)
                        for prefix in scanned))

    return _with_overrides(sources, options.overrides, admitted), skipped, built


NOT_BUILT = "not built with this configuration"


def _built(files: list[SourceFile], options: ScanOptions,
           excludes: tuple[str, ...]) -> tuple[list[SourceFile], set[str], BuiltSet]:
    """`files` less the .c files Kbuild would not compile, those left out, and
    what Kbuild says of the tree."""
    locations = {f.path: f.location for f in files}

    def read(rel: str) -> bytes | None:
        return read_source(locations[rel])[0] if rel in locations else None

    built = _kbuild(options, excludes, locations, read)
    kept, unbuilt = [], set()
    for f in files:
        # Kbuild starts in the top-level directories: a file at the root or outside it is not its to judge.
        if f.path.endswith(".c") and "/" in f.path and not f.path.startswith("/") and not built.builds(f.path):
            unbuilt.add(f.path)
        else:
            kept.append(f)
    return kept, unbuilt, built


KBUILD = "kbuild"  # the cache's kind for what Kbuild builds, with what it was read from


def _kbuild(options: ScanOptions, excludes: tuple[str, ...], locations: dict[str, str],
            read: Callable[[str], bytes | None]) -> BuiltSet:
    """What Kbuild builds of the tree, as stored by the last scan when every
    Makefile, included .c file and directory listing it read is as it was."""
    cache = cache_for(options.cache_dir, KBUILD)
    key = combined_key([os.path.realpath(options.root), options.arch, options.kconfig.digest, *excludes,
                        *sorted(locations)], salt(KBUILD, code_digest()))
    if cache is not None:
        stored = load_built(cache.get(key), options.root)
        if stored is not None:
            return stored
        cache.discard(key)
    inputs = Inputs(options.root)
    built = built_sources(options.root, options.kconfig, options.arch, locations, read,
                          lambda directory: excluded(directory, excludes), inputs)
    if cache is not None:
        cache.put(key, dump_built(built, inputs))
    return built


def _relative_dir(path: Path, root: Path) -> str | None:
    """A scanned path relative to the root ("" for the root), None when outside it."""
    try:
        rel = Path(os.path.abspath(path)).relative_to(os.path.abspath(root)).as_posix()
    except ValueError:
        return None
    return "" if rel == "." else rel


def facts_salt(rules: Ruleset) -> bytes:
    """What every file's fact key shares: what extraction depends on besides the file."""
    return salt(__version__, code_digest("extract"), grammar_version(), rules.digest)


def tree_facts(options: ScanOptions, rules: Ruleset | None = None) -> list[FileFacts]:
    """Every file's facts, through the same discovery and cache a scan uses
    (for measurements and tools that look at what was extracted)."""
    rules = rules or load_rules(options.rules_dirs)
    salted = facts_salt(rules)
    return _extract(_key(scan_sources(options)[0], salted, options, rules, Progress(), lambda stage: None),
                    rules, options, salted)[0]


# With this many files to read for their keys (a cold scan, a tree checked out
# anew), the workers key them as they read them to extract.
DEFER_KEYS_AT = 256


class _KeyedTree(NamedTuple):
    keyed: list[Keyed]  # every source with its key, or the reason it cannot be read
    fresh: dict[int, FileFacts]  # facts extracted while keying, by index (see key_in_workers)
    started: bool  # whether keying started the extraction's progress


def _key(sources: list[Source], salted: bytes, options: ScanOptions, rules: Ruleset, progress: Progress,
         lap: Callable[[str], None]) -> _KeyedTree:
    """Every source keyed, through the tree's stamp index when there is a cache."""
    index = StampIndex(cache_for(options.cache_dir, STAMPS), os.path.realpath(options.root), salted)
    keyed = key_sources(sources, salted, index.known, defer_at=DEFER_KEYS_AT)
    lap("key")
    fresh: dict[int, FileFacts] = {}
    started = any(not k.key and not k.problem for k in keyed)
    if started:
        progress.start("extract", len(keyed))
        fresh = key_in_workers(keyed, rules, _processes(options), fact_cache(options.cache_dir), salted,
                               progress.advance)
        lap("extract")
    index.update(keyed)
    return _KeyedTree(keyed, fresh, started)


def max_processes() -> int:
    """The most extraction processes a scan starts: twice the cores.  More only
    fork and hold memory (one per file on a small tree) without going faster."""
    return 2 * (os.cpu_count() or 1)


def _processes(options: ScanOptions) -> int:
    return min(options.jobs or os.cpu_count() or 1, max_processes())


def _extract(tree: _KeyedTree, rules: Ruleset, options: ScanOptions, salted: bytes,
             advance: Callable[[int], None] | None = None) -> tuple[list[FileFacts], ExtractStats]:
    return extract_all(tree.keyed, rules, _processes(options), fact_cache(options.cache_dir), salted, advance,
                       tree.fresh)


def _analyse(tree: _KeyedTree, rules: Ruleset, options: ScanOptions, progress: Progress, salted: bytes,
             lap: Callable[[str], None],
             units: tuple[tuple[str, str], ...]) -> tuple[list[Finding], Stats, tuple[Skipped, ...], Analysis]:
    """Every finding of the tree, whatever its confidence, the tree's figures, and the analysis."""
    keyed = tree.keyed
    if not tree.started:
        progress.start("extract", len(keyed))
    facts, extracted = _extract(tree, rules, options, salted, progress.advance)
    progress.done()
    lap("extract")
    program = link(facts, rules)
    lap("link")
    origins = Origins(program, rules)
    effects = Effects(program, rules, origins)
    contexts = Contexts(program, effects)
    lap("propagate")
    analysis = Analysis(program, rules, origins, effects, contexts, units)
    every = fingerprint(run_checks(analysis))
    lap("check")
    degraded = tuple(Skipped(f.path, f.problem) for f in facts if f.problem)
    stats = Stats(
        files=len(keyed),
        files_with_parse_errors=sum(1 for f in facts if f.error_nodes),
        files_degraded=dict(sorted(Counter(_reason(s.reason) for s in degraded).items())),
        **asdict(program.stats),  # functions, calls and allocation sites as linked
        cache={"result_reused": 0, "facts_reused": extracted.reused, "files_extracted": extracted.extracted,
               "files_moved": 0},
    )
    return every, stats, degraded, analysis


def _with_overrides(sources: list[Source], overrides: tuple[tuple[str, bytes | None], ...],
                    admitted: Callable[[str, bytes], bool]) -> list[Source]:
    """The tree as discovered, with the files given in memory replaced, added or removed."""
    given = dict(overrides)
    by_path = {s.path: s for s in sources if s.path not in given}
    for path, data in given.items():
        if data is not None and admitted(path, data):
            by_path[path] = Source(path, path, data)
    return [by_path[path] for path in sorted(by_path)]


def _facts_then_and_now(tree: _KeyedTree, rules: Ruleset,
                        cache: PackCache | None) -> Callable[[str, str], tuple[FileFacts | None, FileFacts | None]]:
    """For Results.carry_over: a changed file's facts under its old key, from the
    cache, and its facts now, from this scan's extraction, the cache, or extracted
    here (then counted as extracted)."""
    index = {k.source.path: number for number, k in enumerate(tree.keyed)}

    def facts(path: str, old_key: str) -> tuple[FileFacts | None, FileFacts | None]:
        number = index[path]
        new = tree.fresh.get(number)
        if new is None:
            new, extracted = facts_of(tree.keyed[number], rules, cache)
            if extracted:
                tree.fresh[number] = new  # not extracted again if the tree is analysed
        return cached_facts(cache, old_key, path), new

    return facts


def _reason(text: str) -> str:
    """The kind of a problem, without its details: counts group by it."""
    return text.split(":", 1)[0]


def fingerprint(findings: list[Finding]) -> list[Finding]:
    """Give each finding an id that survives unrelated edits and renames: rule,
    function, allocator, mask and the chain's functions, numbered among identical
    ones; no line number and no file name, so moving code or renaming a file
    (`git mv`) does not make its findings new.  A finding at its fix site is
    named by the functions of that site and of its context's source alone: the
    allocations it covers, and so its representative chain, may change while
    the fix stays where it is."""
    seen: Counter[str] = Counter()
    out = []
    for finding in findings:
        if finding.covers:
            key = "|".join((finding.rule, "fix site", finding.function, finding.chain[0].function))
        else:
            chain = ">".join(step.function for step in finding.chain)
            key = "|".join((finding.rule, finding.function, finding.allocator, finding.gfp, chain))
        seen[key] += 1
        digest = hashlib.sha256(f"{key}|{seen[key]}".encode("utf-8", "surrogateescape")).hexdigest()[:32]
        out.append(replace(finding, fingerprint=digest))
    return out
