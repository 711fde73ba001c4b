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
