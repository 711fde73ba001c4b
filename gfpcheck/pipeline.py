"""The one place the stages are wired together.

discover files -> extract facts per file (parallel) -> link into one program
and call graph -> propagate contexts -> checks make findings.  The CLI calls
`scan` and hands the result to a reporter; nothing here prints.
"""

from __future__ import annotations

import gc
import hashlib
import os
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from .checks.evidence import CONFIDENCE_ORDER
from .checks.nofs import Analysis, run_checks
from .discover import DEFAULT_ARCH, DEFAULT_EXCLUDES, DEFAULT_MAX_SIZE, Skipped, arch_excludes, discover
from .extract.runner import extract_all
from .findings import Finding, Stats
from .link import link
from .propagate.contexts import Contexts
from .propagate.effects import Effects
from .propagate.origins import Origins
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


@dataclass(frozen=True)
class ScanResult:
    findings: tuple[Finding, ...]
    stats: Stats
    skipped: tuple[Skipped, ...] = field(default=())
    degraded: tuple[Skipped, ...] = field(default=())


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
        if collecting:
            gc.enable()


def _scan(options: ScanOptions, progress: Progress | None, rules: Ruleset | None) -> ScanResult:
    progress = progress or Progress()
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[stage] = round(now - clock, 3)
        clock = now

    rules = rules or load_rules(options.rules_dirs)
    excludes = options.excludes + arch_excludes(options.root, options.arch)
    files, skipped = discover(list(options.paths), options.root, excludes, options.max_file_size)
    lap("discover")
    progress.start("extract", len(files))
    facts = extract_all([(f.path, f.location) for f in files], rules, options.jobs or os.cpu_count() or 1,
                        progress.advance)
    progress.done()
    lap("extract")
    program = link(facts, rules)
    lap("link")
    origins = Origins(program, rules)
    effects = Effects(program, rules, origins)
    contexts = Contexts(program, effects)
    lap("propagate")
    every = fingerprint(run_checks(Analysis(program, rules, origins, effects, contexts)))
    floor = CONFIDENCE_ORDER[options.min_confidence]
    findings = [f for f in every if CONFIDENCE_ORDER[f.confidence] >= floor]
    lap("check")

    degraded = tuple(Skipped(f.path, f.problem) for f in facts if f.problem)
    link_stats = program.stats
    stats = Stats(
        files=len(files),
        files_with_parse_errors=sum(1 for f in facts if f.error_nodes),
        files_skipped=dict(sorted(Counter(_reason(s.reason) for s in skipped).items())),
        files_degraded=dict(sorted(Counter(_reason(s.reason) for s in degraded).items())),
        functions=link_stats.functions,
        macros=link_stats.macros,
        call_sites=link_stats.call_sites,
        direct_calls=link_stats.direct_calls,
        direct_resolved=link_stats.direct_resolved,
        indirect_calls=link_stats.indirect_calls,
        indirect_resolved=link_stats.indirect_resolved,
        call_edges=link_stats.call_edges,
        allocation_sites=link_stats.allocation_sites,
        findings_below_confidence=len(every) - len(findings),
        seconds=seconds,
    )
    return ScanResult(tuple(findings), stats, tuple(skipped), degraded)


def _reason(text: str) -> str:
    """The kind of a problem, without its details: counts group by it."""
    return text.split(":", 1)[0]


def fingerprint(findings: list[Finding]) -> list[Finding]:
    """Give each finding an id that survives unrelated edits: rule, file, function,
    allocator, mask and the chain's functions, numbered among identical ones."""
    seen: Counter[str] = Counter()
    out = []
    for finding in findings:
        chain = ">".join(step.function for step in finding.chain)
        key = "|".join((finding.rule, finding.file, finding.function, finding.allocator, finding.gfp, chain))
        seen[key] += 1
        digest = hashlib.sha256(f"{key}|{seen[key]}".encode()).hexdigest()[:32]
        out.append(replace(finding, fingerprint=digest))
    return out
