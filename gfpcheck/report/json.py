"""One JSON object: `findings`, `stats`, `version`; keys sorted, so output is byte-stable."""

from __future__ import annotations

import json

from .. import __version__
from ..findings import Finding, Stats


def _stats(stats: Stats, include_timing: bool) -> dict:
    """The figures; `seconds` and `cache` describe the run, not the tree, and vary."""
    out = stats.to_dict()
    if not include_timing:
        out.pop("seconds", None)
        out.pop("cache", None)
    return out


def _dump(document: dict) -> str:
    return json.dumps({"tool": "gfpcheck", "version": __version__, **document}, sort_keys=True, indent=2) + "\n"


def render(findings: list[Finding] | tuple[Finding, ...], stats: Stats, include_timing: bool = True) -> str:
    return _dump({"findings": [f.to_dict() for f in findings], "stats": _stats(stats, include_timing)})


def render_gate(new: tuple[Finding, ...], through: tuple[Finding, ...], changed_files: tuple[str, ...],
                stats: Stats) -> str:
    """The gate's findings: `new`, and `pre_existing` ones whose chain runs through a changed line."""
    return _dump({
        "changed_files": list(changed_files),
        "new": [f.to_dict() for f in new],
        "pre_existing": [f.to_dict() for f in through],
        "stats": _stats(stats, include_timing=False),
    })
