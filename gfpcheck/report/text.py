"""Compiler-style text: `path:line:col: severity: message [rule]`, then each
step of the chain as `path:line:col: note: ...`, the form vim's and Emacs's
compile modes read, so the whole chain lands in the quickfix list.  A finding
reported at its fix site ends with the first allocation it covers and how many
more (JSON and SARIF list them all)."""

from __future__ import annotations

from ..findings import Finding, Stats


def render(findings: list[Finding] | tuple[Finding, ...], stats: Stats | None = None) -> str:
    lines = []
    for finding in findings:
        lines.append(f"{finding.file}:{finding.line}:{finding.column}: {finding.severity}: "
                     f"{finding.message} [{finding.rule}]")
        for step in finding.chain:
            lines.append(f"{step.file}:{step.line}:{step.column}: note: {step.function}: {step.note}")
        covered = covers_note(finding)
        if covered is not None:
            lines.append(f"{covered[0]}: note: {covered[1]}")
    return "\n".join(lines) + ("\n" if lines else "")


def covers_note(finding: Finding) -> tuple[str, str] | None:
    """(`path:line` of the first allocation a finding at its fix site covers, what
    it says: `function: covers kmalloc() with GFP_KERNEL … and 2 more`), or None
    for a finding reported where it goes wrong."""
    if not finding.covers:
        return None
    first, more = finding.covers[0], len(finding.covers) - 1
    tail = f" … and {more} more" if more else ""
    return f"{first.file}:{first.line}", f"{first.function}: covers {first.allocator}() with {first.gfp}{tail}"


def summary(findings, stats: Stats) -> str:
    """One line for stderr: what was read and what was found."""
    counts: dict[str, int] = {}
    for finding in findings:
        counts[finding.rule] = counts.get(finding.rule, 0) + 1
    found = ", ".join(f"{n} {rule}" for rule, n in sorted(counts.items())) or "no findings"
    problems = []
    if stats.findings_baselined:
        problems.append(f"{stats.findings_baselined} in the baseline not shown")
    if stats.findings_suppressed:
        problems.append(f"{stats.findings_suppressed} suppressed inline (--no-inline-ignores shows them)")
    if stats.findings_below_confidence:
        problems.append(f"{stats.findings_below_confidence} weaker findings not shown (--min-confidence low)")
    if stats.files_skipped:
        problems.append("skipped " + ", ".join(f"{n} ({why})" for why, n in stats.files_skipped.items()))
    if stats.files_with_parse_errors:
        problems.append(f"{stats.files_with_parse_errors} with parse errors (read in part)")
    if stats.files_degraded:
        problems.append("degraded " + ", ".join(f"{n} ({why})" for why, n in stats.files_degraded.items()))
    tail = f"; {'; '.join(problems)}" if problems else ""
    return (f"gfpcheck: {stats.files} files, {stats.functions} functions, {stats.call_sites} calls: "
            f"{found}{tail}")


def gate_summary(new, through, outcome) -> str:
    """One line for stderr after a gate run."""
    cache = outcome.head.stats.cache
    if cache.get("files_moved"):
        reused = f" (result carried over, {cache['files_moved']} moved)"
    elif cache.get("result_reused"):
        reused = " (result reused)"
    else:
        reused = f", {cache.get('files_extracted', 0)} extracted again" if cache else ""
    return (f"gfpcheck: {len(outcome.changed_files)} changed files{reused}: {len(new)} new findings, "
            f"{len(through)} pre-existing through changed lines")
