"""SARIF 2.1.0 for GitHub code scanning and SARIF viewers: one run, every
check as a rule, each finding as a result whose code flow is its evidence
chain.  A finding reported at its fix site lists the allocations it covers
as `relatedLocations`.  Paths are relative to SRCROOT, the scanned root; keys
are sorted so the same findings give the same bytes."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

from .. import __version__
from ..checks import CHECKS, Check
from ..findings import ChainStep, Covered, Finding

SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
INFORMATION_URI = "https://github.com/gfpcheck/gfpcheck"
# partialFingerprints key: rule, function, allocator, mask and chain (for a finding at its fix site: the
# functions of the fix site and the source); no line, no file name (v1 named the file)
FINGERPRINT = "gfpcheck/v2"
_RANK = {"high": 90.0, "medium": 60.0, "low": 30.0}  # SARIF rank by the strength of the evidence


def rule_descriptor(check: Check, severity: str | None = None) -> dict:
    level = severity or check.severity
    return {
        "id": check.id,
        "name": check.name,
        "shortDescription": {"text": check.short + "."},
        "fullDescription": {"text": check.full},
        "help": {
            "text": f"{check.help}\n\nExample:\n{check.indented_example}",
            "markdown": f"{check.full}\n\n**How to fix.** {check.help}\n\n**Example.**\n\n```c\n{check.example}\n```",
        },
        "defaultConfiguration": {"level": level},  # gfpcheck's severities are SARIF's levels
        "helpUri": f"{INFORMATION_URI}#{check.id}",
        "properties": {"tags": ["reliability", "memory-allocation", "gfp", "reclaim"], "precision": "medium",
                       "problem.severity": _problem_severity(level)},
    }


def _problem_severity(severity: str) -> str:
    return {"error": "error", "warning": "warning", "note": "recommendation"}[severity]


def _location(file: str, line: int, column: int, width: int, message: str | None = None) -> dict:
    location: dict = {
        "physicalLocation": {
            "artifactLocation": {"uri": relative_uri(file), "uriBaseId": "SRCROOT"},
            "region": {"startLine": line, "startColumn": column, "endLine": line, "endColumn": column + width},
        }
    }
    if message is not None:
        location["message"] = {"text": message}
    return location


def _step(step: ChainStep) -> dict:
    return {"location": _location(step.file, step.line, step.column, 1, f"{step.function}: {step.note}")}


def _related(number: int, covered: Covered) -> dict:
    """A covered allocation as a SARIF related location; its line is known, not its column."""
    return {
        "id": number,
        "physicalLocation": {
            "artifactLocation": {"uri": relative_uri(covered.file), "uriBaseId": "SRCROOT"},
            "region": {"startLine": covered.line},
        },
        "message": {"text": f"{covered.allocator}() with {covered.gfp} in {covered.function}()"},
    }


def result(finding: Finding, rule_index: dict[str, int], baseline_state: str | None = None,
           justification: str | None = None) -> dict:
    # the allocator's name is under the location at an allocation, not at a fix site
    width = 1 if finding.covers else max(1, len(finding.allocator))
    out: dict = {
        "ruleId": finding.rule,
        "ruleIndex": rule_index[finding.rule],
        "level": finding.severity,
        "message": {"text": finding.message},
        "locations": [_location(finding.file, finding.line, finding.column, width)],
        "partialFingerprints": {FINGERPRINT: finding.fingerprint},
        "rank": _RANK.get(finding.confidence, 50.0),
        "properties": {"function": finding.function, "allocator": finding.allocator, "gfp": finding.gfp,
                       "confidence": finding.confidence},
    }
    if finding.chain:
        out["codeFlows"] = [{
            "message": {"text": f"How {finding.function}() is reached in this context"},
            "threadFlows": [{"locations": [_step(step) for step in finding.chain]}],
        }]
    if finding.covers:
        out["relatedLocations"] = [_related(number, covered) for number, covered in enumerate(finding.covers, 1)]
    if baseline_state is not None:
        out["baselineState"] = baseline_state
    if justification is not None:  # a `gfpcheck: ignore` comment at the reported line
        out["suppressions"] = [{"kind": "inSource", "justification": justification}]
    return out


def render(findings: list[Finding] | tuple[Finding, ...], root: Path, severities: dict[str, str] | None = None,
           baseline_states: list[str] | None = None,
           suppressed: list[tuple[Finding, str]] | tuple[tuple[Finding, str], ...] = ()) -> str:
    """The SARIF log of these findings; `severities` overrides a rule's default
    level, `baseline_states` (one per finding) marks new and unchanged results,
    and the `suppressed` findings follow, each marked suppressed in source with
    its comment's reason."""
    severities = severities or {}
    rule_index = {check.id: index for index, check in enumerate(CHECKS)}
    results = [result(finding, rule_index, baseline_states[i] if baseline_states else None)
               for i, finding in enumerate(findings)]
    results += [result(finding, rule_index, None, reason) for finding, reason in suppressed]
    log = {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "gfpcheck",
                "version": __version__,
                "semanticVersion": __version__,
                "informationUri": INFORMATION_URI,
                "rules": [rule_descriptor(check, severities.get(check.id)) for check in CHECKS],
            }},
            "originalUriBaseIds": {"SRCROOT": {"uri": root_uri(root)}},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    }
    return json.dumps(log, sort_keys=True, indent=2) + "\n"


def relative_uri(path: str) -> str:
    """A root-relative path as a URI reference: every byte but unreserved ones and
    "/" percent-encoded (spaces, newlines, a colon that would read as a scheme),
    and a name that is not UTF-8 by its original bytes."""
    return quote(path.encode("utf-8", "surrogateescape"), safe="/")


def root_uri(root: Path) -> str:
    uri = root.resolve().as_uri()
    return uri if uri.endswith("/") else uri + "/"
