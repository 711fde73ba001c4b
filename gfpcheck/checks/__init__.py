"""The checks registry.

Each checks module in this package declares its catalog entries (`CHECKS`)
and its logic (`verdicts(engine)`); a module that has both is registered by
being here, and modules run in name order.  The pipeline runs what is
registered; `gfpcheck rules`, `gfpcheck explain`, SARIF's `rules[]`, the
reports and the validation of settings files read CHECKS and BY_ID below.
Adding a context family is a rules file and one checks module.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from types import ModuleType

from ..findings import Finding
from ..propagate.state import members
from ..propagate.witness import BELIEF, CLEAN, HELD, SCOPE, Context, Witness
from .catalog import SEVERITY_ORDER, Check
from .engine import Analysis, Engine, Verdict
from .evidence import Evidence
from .grouping import Reported, at_fix_sites, units_of


def _registered() -> tuple[ModuleType, ...]:
    """Every module of this package that declares CHECKS and verdicts, by name."""
    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "CHECKS") and callable(getattr(module, "verdicts", None)):
            found.append(module)
    return tuple(found)


MODULES = _registered()
SEARCHED = (HELD, BELIEF, SCOPE)  # contexts whose chain the witness searches across functions
TAKEN = (HELD, BELIEF)  # contexts code on the chain takes: fixed where that code calls out, not at each allocation

CHECKS: tuple[Check, ...] = tuple(check for module in MODULES for check in module.CHECKS)
BY_ID = {check.id: check for check in CHECKS}

__all__ = ["BY_ID", "CHECKS", "SEVERITY_ORDER", "Analysis", "Check", "lookup", "run_checks"]


def lookup(name: str) -> Check | None:
    """The check a rule id (nofs-recursion) or a checkpatch TYPE (NOFS_RECURSION) names."""
    return BY_ID.get(name) or BY_ID.get(name.lower().replace("_", "-"))


def run_checks(analysis: Analysis) -> list[Finding]:
    """Every registered check's findings, one per rule and reported call, those that
    share a root cause reported once at its fix site, sorted by place."""
    return sorted(at_fix_sites(_findings(analysis), units_of(dict(analysis.units))), key=Finding.sort_key)


def _findings(analysis: Analysis) -> Iterator[Reported]:
    """Decide every verdict first, then let the witness search only the part of the
    program that leads to them, then attach each finding's chain."""
    engine = Engine(analysis)
    verdicts: list[Verdict] = [v for module in MODULES for v in module.verdicts(engine)]
    witness = Witness(analysis.program, analysis.contexts, analysis.effects, analysis.origins.belief_sites)
    targets: dict[Context, set[int]] = {}
    reached = analysis.contexts.reached
    for verdict in verdicts:
        fid = verdict.origin.fid
        if verdict.context.what in SEARCHED:
            witness.ask(verdict.context, fid, sum(1 << s for s in members(reached.get(fid, 0))
                                                  if engine.accepts(verdict, s)))
        if verdict.context.what in SEARCHED or verdict.context.what == CLEAN:
            targets.setdefault(verdict.context, set()).add(fid)
    witness.focus(targets)
    evidence = Evidence(analysis, engine)
    chains = []
    missing: list[int] = []
    for number, verdict in enumerate(verdicts):
        what = verdict.context.what
        if what == CLEAN:
            chain = witness.from_entry(verdict.origin.fid, engine.clean_entries)
        elif what in SEARCHED:
            chain = witness.find(verdict.origin.fid, lambda s, v=verdict: engine.accepts(v, s), verdict.context)
            if chain is None:
                missing.append(number)
                witness.want_exact(verdict.context, {verdict.origin.fid})
        else:
            chain = None  # proved inside one function: the check's own evidence
        chains.append(chain)
    for number in missing:
        verdict = verdicts[number]
        chains[number] = witness.find(verdict.origin.fid, lambda s, v=verdict: engine.accepts(v, s), verdict.context,
                                      exact=True)
    for verdict, chain in zip(verdicts, chains, strict=True):
        yield Reported(evidence.finding(verdict, chain), verdict.at is None and verdict.context.what in TAKEN)
