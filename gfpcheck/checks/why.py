"""`gfpcheck why FUNCTION`: every context a function is entered in, per family.

The question a maintainer asks before changing a mask: is this function ever
called with a transaction handle held, a queue frozen, a memalloc scope open,
GFP_NOFS believed by a caller, or from a clean entry with nothing held?  Each
context that reaches it comes with the shortest chain from where it starts,
as findings' chains are written.  Nothing here decides whether a mask is
right; it says what the analysis knows of the function's callers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from ..findings import ChainStep
from ..propagate import state as st
from ..propagate.witness import BELIEF, CLEAN, HELD, SCOPE, Chain, Context, Witness
from ..ruleset import Family
from .engine import Analysis, Engine
from .evidence import Evidence

ASKED = (HELD, SCOPE, BELIEF)  # per family, in the order a report lists them


@dataclass(frozen=True)
class Reach:
    """One kind of context a function is entered in: `family` (empty for a clean
    entry), `context` (held, scope, belief, clean), what it is in words, and the
    shortest chain that brings it, ending at the function itself."""

    family: str
    context: str
    description: str
    confidence: str
    calls: int  # calls on the chain: 0 when the function itself starts the context
    chain: tuple[ChainStep, ...]


@dataclass(frozen=True)
class Absent:
    """A kind of context no known caller enters the function in."""

    family: str
    context: str
    description: str


@dataclass(frozen=True)
class Answer:
    """What reaches one definition of the function asked about."""

    function: str
    file: str
    line: int
    column: int
    reached: bool  # whether the analysis knows any caller or entry for it
    contexts: tuple[Reach, ...]
    absent: tuple[Absent, ...]

    def to_dict(self) -> dict:
        return asdict(self)


def definitions(analysis: Analysis, name: str, file: str | None = None) -> list[int]:
    """The functions named `name` (in `file`, when given), in path order."""
    program = analysis.program
    found = [fid for fid, function in enumerate(program.functions)
             if function.name == name and (file is None or program.path(fid) == file)]
    return sorted(found, key=lambda fid: (program.path(fid), program.functions[fid].line))


def why(analysis: Analysis, fids: list[int]) -> list[Answer]:
    """Every context each of `fids` is entered in, with its shortest chain, and the
    contexts none of its callers brings."""
    engine = Engine(analysis)
    witness = Witness(analysis.program, analysis.contexts, analysis.effects, analysis.origins.belief_sites)
    evidence = Evidence(analysis, engine)
    kinds = [Context(what, family.name) for family in analysis.rules.families for what in ASKED]
    reached = analysis.contexts.reached
    witness.focus({kind: set(fids) for kind in kinds} | {Context(CLEAN): set(fids)})
    for fid in fids:
        for kind in kinds:
            witness.ask(kind, fid, _entered(witness, kind, reached.get(fid, 0)))
    return [_answer(analysis, engine, witness, evidence, kinds, fid) for fid in fids]


def _entered(witness: Witness, kind: Context, entry_mask: int) -> int:
    """The entry states (a bitmask) that have this kind of context."""
    flag = witness.flag(kind)
    return sum(1 << s for s in st.members(entry_mask) if flag(s))


def _answer(analysis: Analysis, engine: Engine, witness: Witness, evidence: Evidence, kinds: list[Context],
            fid: int) -> Answer:
    program = analysis.program
    function = program.functions[fid]
    entry_mask = analysis.contexts.reached.get(fid, 0)
    place = ChainStep(function.name, program.path(fid), function.line, function.column, "", "reached")
    contexts: list[Reach] = []
    absent: list[Absent] = []
    families = analysis.rules.family_by_name
    for kind in kinds:
        description = _describe(families[kind.family], kind.what)
        chain = None
        if _starts_on_entry(analysis, kind, fid):
            chain = Chain(fid, st.CLEAN, (), False)
        elif _entered(witness, kind, entry_mask):
            chain = witness.find(fid, witness.flag(kind), kind)
            if chain is None:
                witness.want_exact(kind, {fid})
                chain = witness.find(fid, witness.flag(kind), kind, exact=True)
        if chain is None:
            absent.append(Absent(kind.family, kind.what, description))
            continue
        steps, confidence = evidence.reach(chain, kind, fid)
        if kind.what == HELD:
            description = f"{evidence.held_name(chain, families[kind.family])} held"
        contexts.append(Reach(kind.family, kind.what, description, confidence, len(chain.links),
                              _ending(steps, replace(place, note=f"entered with {description}"))))
    if entry_mask >> st.CLEAN & 1:
        chain = witness.from_entry(fid, engine.clean_entries)
        if chain is not None:
            steps, confidence = evidence.reach(chain, Context(CLEAN), fid)
            contexts.append(Reach("", CLEAN, CLEAN_WORDS, confidence, len(chain.links),
                                  _ending(steps, replace(place, note=f"entered with {CLEAN_WORDS}"))))
    return Answer(function.name, program.path(fid), function.line, function.column, bool(entry_mask),
                  tuple(contexts), tuple(absent))


def _ending(steps: tuple[ChainStep, ...], place: ChainStep) -> tuple[ChainStep, ...]:
    """The chain ending at the function asked about, unless it already starts there."""
    first = steps[0]
    if len(steps) == 1 and (first.file, first.line, first.column) == (place.file, place.line, place.column):
        return steps
    return (*steps, place)


CLEAN_WORDS = "nothing held, no scope, no NOFS or NOIO caller (a clean entry)"


def _describe(family: Family, what: str) -> str:
    """The context in the kernel's words: `a transaction handle held`."""
    if what == HELD:
        return f"{family.held} held"
    if what == BELIEF:
        return f"GFP_{family.mask} believed by a caller"
    return "a " + " or ".join(f"memalloc_{kind}" for kind in sorted(family.scopes)) + " scope open"


def _starts_on_entry(analysis: Analysis, kind: Context, fid: int) -> bool:
    """Whether the function itself is entered in the context: a handle parameter or
    an ops entry of the family (a held context), or an entry that opens a scope."""
    entered = analysis.effects.entered.get(fid)
    if entered is None or kind.what == BELIEF:
        return False
    held, scopes = entered
    if kind.what == HELD:
        return kind.family in held
    return bool(analysis.rules.family_by_name[kind.family].scopes & scopes.keys())
