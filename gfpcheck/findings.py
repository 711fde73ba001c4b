"""What a scan reports: findings with their evidence, and the scan's figures."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class ChainStep:
    """One step of the evidence: a place in a function and what it contributes.
    `kind` names the contribution in a word a report can draw: `held` (a handle
    taken or held), `scope` (a memalloc scope opened), `belief` (a NOFS/NOIO mask
    written), `entry` (a clean entry), `call`, `indirect` (a call through a
    pointer or ops member), `bind` (a callback passed), `invoke` (the bound
    callback called), `mask` (a mask passed down), `allocation`, `return` (a
    path that leaves a scope open)."""

    function: str
    file: str
    line: int
    column: int
    note: str
    kind: str = "call"


@dataclass(frozen=True, order=True)
class Covered:
    """An allocation a finding reported at its fix site stands for: where the
    mask is written, in which function, by which allocator, with which mask."""

    file: str
    line: int
    function: str
    allocator: str
    gfp: str


@dataclass(frozen=True)
class Finding:
    """One report.  Most are at the allocation (or the mask) they concern; one
    whose context was taken in another unit (Kbuild object, else subsystem) is
    reported at its fix site, the call where its chain first leaves that unit,
    and stands for every allocation reached through that call from the same
    source (as does one at a call of the source's function that reaches several
    allocations inside the unit): `covers` lists them all, its own included,
    sorted.  A GFP_NOFS reported at itself (nofs-inconsistent, no handle held)
    covers the GFP_KERNEL allocations below it.  `covers` is empty for a
    finding reported at its own allocation."""

    rule: str
    severity: str  # "error" | "warning" | "note"
    file: str  # relative to the scanned root, "/" separators
    line: int
    column: int
    function: str
    allocator: str
    gfp: str  # the mask as written at the reported call
    message: str
    chain: tuple[ChainStep, ...]  # from the context's source to the allocation
    confidence: str  # "high" | "medium" | "low"
    fingerprint: str = ""  # stable across unrelated edits: no line numbers in it
    covers: tuple[Covered, ...] = ()  # at a fix site: the allocations it stands for

    def sort_key(self) -> tuple:
        return (self.file, self.line, self.column, self.rule, self.gfp, self.message)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Finding:
        chain = tuple(ChainStep(**step) for step in data["chain"])
        covers = tuple(Covered(**covered) for covered in data["covers"])
        return cls(**{**data, "chain": chain, "covers": covers})


@dataclass(frozen=True)
class Stats:
    """Figures of one scan.  `seconds` per stage and `cache` (what was reused)
    describe the run rather than the tree: reports leave them out unless asked."""

    files: int = 0
    files_with_parse_errors: int = 0
    files_skipped: dict[str, int] = field(default_factory=dict)  # reason -> count
    files_degraded: dict[str, int] = field(default_factory=dict)  # reason -> count
    functions: int = 0
    macros: int = 0
    call_sites: int = 0
    direct_calls: int = 0
    direct_resolved: int = 0
    indirect_calls: int = 0
    indirect_resolved: int = 0
    call_edges: int = 0
    allocation_sites: int = 0
    findings_below_confidence: int = 0  # not reported: their evidence is weaker than asked for
    findings_baselined: int = 0  # not reported: recorded in the baseline
    findings_suppressed: int = 0  # not reported: a `gfpcheck: ignore` comment with a reason
    seconds: dict[str, float] = field(default_factory=dict)
    cache: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)
