"""One report per root cause, at its fix site.

A context taken in one subsystem (a btrfs transaction handle, a frozen
queue, a GFP_NOFS mask) often reaches many allocations far from it, in lib/,
mm/ or another subsystem: each is a finding at its allocation, yet all of
them are fixed by one change where the subsystem that took the context calls
out (a memalloc_nofs scope around that call, or a NOFS mask passed to it).

This stage takes the checks' findings and reports those at their fix site:
the call where the chain first leaves the unit of its first step.  With a
kernel configuration a unit is what Kbuild links a file into (the btrfs
module, dm-cache's objects, a directory's built-in files); without one it is
the subsystem (fs/btrfs for fs/btrfs/volumes.c).  A header's step belongs to
the unit of the step before it.  Findings of one rule with the same source
and the same fix site become one, which keeps the evidence of the member with
the shortest chain and lists every allocation it stands for in `covers`.  A
finding whose allocation lies inside that unit (if only back through a
callback) stays where it is, with `covers` empty, unless other allocations
of the unit are reached through the same call of the source's function (the
btrfs handle held across btrfs_init_sprout()): then they are one finding at
that call.  A finding the checks already reported at the mask that starts its
chain (a GFP_NOFS no handle justifies) covers the allocation it names; those
of one mask become one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import NamedTuple

from ..findings import ChainStep, Covered, Finding
from ..link import subsystem
from .catalog import SEVERITY_ORDER
from .evidence import CONFIDENCE_ORDER


class Reported(NamedTuple):
    """A finding as a check made it, and whether its context was taken by code on
    its chain (a handle, a frozen queue, a mask believed), so that changing the
    caller fixes it.  A scope found open or a clean entry says something about the
    allocation's own mask: such a finding stays at the allocation."""

    finding: Finding
    taken: bool


Unit = Callable[[str], str | None]  # a file's unit, None for a header (it goes with its includer)


def units_of(units: Mapping[str, str]) -> Unit:
    """The unit of a file: Kbuild's object for a built .c file (`units`), else its
    directory; None for a header.  Without Kbuild's word on any file, the subsystem."""
    if not units:
        return subsystem

    def unit(path: str) -> str | None:
        if path.endswith(".h"):
            return None
        return units.get(path) or path[:path.rfind("/") + 1]

    return unit


class _Key(NamedTuple):
    rule: str
    source: tuple[str, str, int]  # function, file, line
    fix: tuple[str, str, int]


def at_fix_sites(reported: Iterable[Reported], unit: Unit = subsystem) -> list[Finding]:
    """The findings with each group that shares a rule, a source and a fix site
    outside its allocation made one finding at that fix site, and each group of
    two or more inside the unit that shares a rule, a source and the source's
    call it goes through made one at that call; in input order, a group where
    its first member was."""
    out: list[Finding | _Key] = []
    groups: dict[_Key, list[tuple[Finding, int]]] = {}
    moved: set[_Key] = set()  # groups reported at their fix site even with one member
    for finding, taken in reported:
        fix = fix_site(finding, unit) if taken else None
        if fix is None and taken and finding.covers and _at_source(finding):
            fix = 0  # a mask reported at itself, for the allocations below it
        inside = fix is None and taken and not finding.covers and _below_a_call(finding)
        if inside:
            fix = 1  # inside the unit: one report per call of the source, if it reaches several
        if fix is None:
            out.append(finding)
            continue
        key = _Key(finding.rule, _place(finding.chain[0]), _place(finding.chain[fix]))
        if key not in groups:
            groups[key] = []
            out.append(key)
        groups[key].append((finding, fix))
        if not inside:
            moved.add(key)
    merged: list[Finding] = []
    for item in out:
        if not isinstance(item, _Key):
            merged.append(item)
        elif len(groups[item]) == 1 and item not in moved:
            merged.append(groups[item][0][0])  # the call reaches one such allocation: reported where it is
        else:
            merged.append(_merged(groups[item]))
    return merged


def _below_a_call(finding: Finding) -> bool:
    """Whether the finding's allocation lies below a call the source's function
    makes (not in that function itself)."""
    chain = finding.chain
    return len(chain) >= 3 and chain[1].function == chain[0].function


def fix_site(finding: Finding, unit: Unit = subsystem) -> int | None:
    """The index of the chain step where the finding is fixed, when that is not
    where it is reported: the last step inside the unit of the chain's source
    before the chain first leaves it, above the reported step.  None when the
    finding is reported at or above that step already (an allocation inside the
    unit, a mask at the source itself)."""
    chain = finding.chain
    if len(chain) < 2:
        return None
    units = [unit(step.file) for step in chain]
    home = next((u for u in units if u is not None), None)
    if next((u for u in reversed(units) if u is not None), None) == home:
        return None  # the allocation is in the unit (back through a callback, maybe): fixed where it is
    fix, current = 0, home
    for i, u in enumerate(units):
        current = current if u is None else u
        if current != home:
            break
        if u is not None or i == 0:
            fix = i
    else:
        return None  # the chain never leaves the unit
    at = (finding.function, finding.file, finding.line, finding.column)
    reported = next((i for i in range(len(chain) - 1, -1, -1)
                     if (chain[i].function, chain[i].file, chain[i].line, chain[i].column) == at), None)
    if reported is None or reported <= fix:
        return None
    return fix


def _merged(members: list[tuple[Finding, int]]) -> Finding:
    """One finding at the group's fix site, with the evidence of its member with
    the shortest chain (ties by place), the strongest severity and confidence of
    any, and every member's allocation in `covers`."""
    findings = [finding for finding, _ in members]
    covers = tuple(sorted({c for finding in findings for c in (finding.covers or (_covered(finding),))}))
    representative, fix = min(members, key=lambda m: (len(m[0].chain), m[0].sort_key()))
    step: ChainStep = representative.chain[fix]
    callee = representative.chain[fix + 1].function
    if fix == 0 and _at_source(representative):
        reach = f"{len(covers)} such allocations below it" if len(covers) > 1 else ""
    elif len(covers) > 1:
        reach = f"this call to {callee}() reaches {len(covers)} such allocations"
    else:
        reach = f"this call to {callee}() reaches it in {representative.function}()"
    return replace(
        representative, file=step.file, line=step.line, column=step.column, function=step.function,
        message=f"{representative.message}; {reach}" if reach else representative.message,
        severity=max((f.severity for f in findings), key=SEVERITY_ORDER.__getitem__),
        confidence=max((f.confidence for f in findings), key=CONFIDENCE_ORDER.__getitem__),
        covers=covers,
    )


def _at_source(finding: Finding) -> bool:
    """Whether the finding is reported where its chain starts (a mask that says a
    context holds where none is held), above the allocations it speaks of."""
    source = finding.chain[0] if finding.chain else None
    return (source is not None and len(finding.chain) > 1
            and (source.file, source.line, source.column) == (finding.file, finding.line, finding.column))


def _covered(finding: Finding) -> Covered:
    return Covered(finding.file, finding.line, finding.function, finding.allocator, finding.gfp)


def _place(step: ChainStep) -> tuple[str, str, int]:
    return step.function, step.file, step.line
