"""One JSON object: `findings`, `stats`, `version`; keys sorted, so output is byte-stable."""

from __future__ import annotations

import json

from .. import __version__
from ..findings import Finding, Stats


def render(findings: list[Finding] | tuple[Finding, ...], stats: Stats, include_timing: bool = True) -> str:
    stats_dict = stats.to_dict()
    if not include_timing:
        stats_dict.pop("seconds", None)
        stats_dict.pop("cache", None)
    document = {
        "tool": "gfpcheck",
        "version": __version__,
        "findings": [f.to_dict() for f in findings],
        "stats": stats_dict,
    }
    return json.dumps(document, sort_keys=True, indent=2) + "\n"


def render_gate(new: tuple[Finding, ...], through: tuple[Finding, ...], changed_files: tuple[str, ...],
                stats: Stats) -> str:
    """The gate's findings: `new`, and `pre_existing` ones whose chain runs through a changed line."""
    stats_dict = stats.to_dict()
    stats_dict.pop("seconds", None)
    stats_dict.pop("cache", None)
    document = {
        "tool": "gfpcheck",
        "version": __version__,
        "changed_files": list(changed_files),
        "new": [f.to_dict() for f in new],
        "pre_existing": [f.to_dict() for f in through],
        "stats": stats_dict,
    }
    return json.dumps(document, sort_keys=True, indent=2) + "\n"
