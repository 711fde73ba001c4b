"""Inline suppressions: `/* gfpcheck: ignore nofs-recursion: reason */`.

A comment on a finding's reported line, or on the line above it, naming the
finding's rule and giving a reason, suppresses that finding: it is counted,
not shown, and SARIF lists it as suppressed in source with the reason as its
justification.  A comment that names no known rule or gives no reason
suppresses nothing and is reported on stderr, one line each.  Only the
reported line counts: a finding at its fix site is suppressed there, where
its fix would go.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import NamedTuple

from .checks import lookup
from .findings import Finding

_MARK = re.compile(r"/\*\s*gfpcheck:\s*ignore\b\s*([\w-]*)\s*(?::\s*(.*?))?\s*\*/")


class Suppressed(NamedTuple):
    finding: Finding
    reason: str


def apply_inline(findings: Iterable[Finding],
                 text: Callable[[str, int], str | None]) -> tuple[list[Finding], list[Suppressed], list[str]]:
    """(findings shown, findings suppressed with their reasons, problems with
    comments met); `text` gives a file's line, None past its end or when the
    file cannot be read."""
    shown: list[Finding] = []
    suppressed: list[Suppressed] = []
    problems: dict[tuple[str, int], str] = {}
    for finding in findings:
        reason = None
        for number in (finding.line, finding.line - 1):
            line = text(finding.file, number)
            if line is None:
                continue
            for match in _MARK.finditer(line):
                check = lookup(match.group(1)) if match.group(1) else None
                if check is None:
                    problems[(finding.file, number)] = (f"{finding.file}:{number}: gfpcheck: ignore names no rule "
                                                        f"('{match.group(1)}'; `gfpcheck rules` lists them)")
                elif not (match.group(2) or "").strip():
                    problems[(finding.file, number)] = (f"{finding.file}:{number}: gfpcheck: ignore {check.id} "
                                                        f"gives no reason (write `: why` after the rule)")
                elif check.id == finding.rule and reason is None:
                    reason = match.group(2).strip()
        if reason is None:
            shown.append(finding)
        else:
            suppressed.append(Suppressed(finding, reason))
    return shown, suppressed, [problems[key] for key in sorted(problems)]
