"""One self-contained HTML page for reading a scan in a browser: findings
grouped by subsystem and, inside one, by root cause (where the context
starts); filters by rule, severity, confidence and subsystem with a count of
what they leave; each finding opens on its chain drawn as a path, step by
step, with what the step contributes and the source lines around it.

The page carries its style and script inline and names no URL, so it reads
the same offline, attached to a mail or from a CI artifact.  It is rendered
here, not in the browser: every piece of kernel text is escaped once, and the
same findings and lines give the same bytes.  The source lines come in as
data (`snippets`, gathered by the caller from the tree as scanned)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from html import escape
from importlib import resources

from .. import __version__
from ..checks import BY_ID, SEVERITY_ORDER
from ..findings import ChainStep, Covered, Finding, Stats
from ..link import subsystem

CONTEXT = 3  # source lines shown either side of a step
CONFIDENCES = ("high", "medium", "low")
SEVERITIES = tuple(sorted(SEVERITY_ORDER, key=SEVERITY_ORDER.__getitem__, reverse=True))  # error first

# What each kind of chain step contributes, in the words of its badge (ChainStep.kind).
KINDS = {
    "held": "context taken/held",  # a transaction handle, a frozen queue
    "scope": "scope opened",
    "belief": "NOFS/NOIO believed",
    "entry": "clean entry",
    "call": "call",
    "indirect": "indirect call",
    "bind": "callback bound",
    "invoke": "callback invoked",
    "mask": "mask passed down",
    "allocation": "allocation",
    "return": "returns with scope open",
}

Place = tuple[str, int]  # (root-relative file, line)
Snippet = Sequence[tuple[int, str]]  # (line number, text) around a place


def places(findings: Iterable[Finding]) -> list[Place]:
    """Every place the page shows source for: each chain step and each reported
    line, sorted, so the caller reads each file once and in order."""
    wanted = set()
    for finding in findings:
        wanted.add((finding.file, finding.line))
        wanted.update((step.file, step.line) for step in finding.chain)
    return sorted(wanted)


def snippets(findings: Iterable[Finding], text: Callable[[str, int], str | None]) -> dict[Place, Snippet]:
    """The lines CONTEXT either side of every place in `places`, read through
    `text(file, line)` (the CLI's reader of the tree as scanned; None past the
    end or for a file that cannot be read)."""
    out: dict[Place, Snippet] = {}
    for file, line in places(findings):
        numbers = range(max(1, line - CONTEXT), line + CONTEXT + 1)
        out[(file, line)] = tuple((n, t) for n in numbers if (t := text(file, n)) is not None)
    return out


def render(findings: Sequence[Finding], stats: Stats, snippets: Mapping[Place, Snippet],
           suppressed: Sequence[tuple[Finding, str]] = (), root: str = "") -> str:
    """The whole page for these findings (sorted as the scan sorts them), its
    figures, the source lines around each place and the findings suppressed
    inline with their reasons."""
    numbered = list(enumerate(findings, 1))
    none = "No findings match these filters." if findings else "No findings."
    body = [
        _header(findings, stats, root),
        _filters(findings),
        '<main id="findings">',
        *(_subsystem(name, group, snippets) for name, group in _by_subsystem(numbered)),
        f'<p id="none"{" hidden" if findings else ""}>{none}</p>',
        "</main>",
        _suppressed(suppressed),
        f'<footer>gfpcheck {_e(__version__)}</footer>',
    ]
    title = "gfpcheck report" + (f": {root}" if root else "")
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title>",
        f"<style>\n{_asset('report.css')}</style>",
        "</head>",
        "<body>",
        *filter(None, body),
        f"<script>\n{_asset('report.js')}</script>",
        "</body>",
        "</html>",
    ]) + "\n"


def _asset(name: str) -> str:
    """A stylesheet or script carried in the package, inlined into the page."""
    return (resources.files(__package__) / "assets" / name).read_text(encoding="utf-8")


def _e(text: object) -> str:
    """Kernel text made safe in HTML: markup characters escaped, and the bytes of
    a file name that is not UTF-8 (carried as surrogates) shown as \\xNN."""
    value = str(text)
    try:
        value = value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return escape(value, quote=True)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _header(findings: Sequence[Finding], stats: Stats, root: str) -> str:
    """The title and the scan's figures, with what it read but does not show."""
    by_severity = [f"{n} {s}{'' if n == 1 else 's'}" for s in SEVERITIES
                   if (n := sum(1 for f in findings if f.severity == s))]
    figures = [_plural(stats.files, "file"), _plural(stats.functions, "function"),
               _plural(stats.call_sites, "call"), _plural(stats.allocation_sites, "allocation site")]
    hidden = [(stats.findings_suppressed, "suppressed inline"), (stats.findings_baselined, "in the baseline"),
              (stats.findings_below_confidence, "below --min-confidence"),
              (stats.files_with_parse_errors, "files with parse errors"),
              (sum(stats.files_skipped.values()), "files skipped")]
    found = _plural(len(findings), "finding") + (f" ({', '.join(by_severity)})" if by_severity else "")
    parts = [*figures, f"<b>{found}</b>", *(f"{n} {what}" for n, what in hidden if n)]
    scanned = f' <span class="root">{_e(root)}</span>' if root else ""
    return "\n".join([
        "<header>",
        f"<h1>gfpcheck report{scanned}</h1>",
        f'<p id="figures">{" · ".join(parts)}</p>',
        "</header>",
    ])


def _filters(findings: Sequence[Finding]) -> str:
    """A select per facet, each value with how many findings have it, and the count shown."""
    facets = [
        ("rule", "Rule", sorted({f.rule for f in findings})),
        ("severity", "Severity", [s for s in SEVERITIES if any(f.severity == s for f in findings)]),
        ("confidence", "Confidence", [c for c in CONFIDENCES if any(f.confidence == c for f in findings)]),
        ("subsystem", "Subsystem", sorted({_subsystem_of(f.file) for f in findings})),
    ]
    out = ['<nav id="filters">']
    for facet, label, values in facets:
        options = [f'<option value="">all ({len(findings)})</option>']
        for value in values:
            n = sum(1 for f in findings if _facet(f, facet) == value)
            title = f' title="{_e(BY_ID[value].short)}"' if facet == "rule" and value in BY_ID else ""
            options.append(f'<option value="{_e(value)}"{title}>{_e(value)} ({n})</option>')
        out.append(f'<label>{label} <select id="filter-{facet}" data-filter="{facet}">{"".join(options)}'
                   "</select></label>")
    out.append(f'<span id="shown"><b id="count">{len(findings)}</b> of <span id="total">{len(findings)}</span>'
               " findings shown</span>")
    out.append('<span class="buttons"><button type="button" id="expand-all">Expand all</button>'
               '<button type="button" id="collapse-all">Collapse all</button></span>')
    out.append("</nav>")
    return "\n".join(out)


def _facet(finding: Finding, facet: str) -> str:
    return _subsystem_of(finding.file) if facet == "subsystem" else getattr(finding, facet)


def _subsystem_of(file: str) -> str:
    """The subsystem a file is in (fs/btrfs); "." for a file at the top of the tree."""
    return subsystem(file) or "."


def _cause(finding: Finding) -> tuple[str, int, str]:
    """Where a finding's context starts: its chain's first step, else its own place."""
    first = finding.chain[0] if finding.chain else None
    return (first.file, first.line, first.function) if first else (finding.file, finding.line, finding.function)


def _by_subsystem(numbered: list[tuple[int, Finding]]) -> list[tuple[str, list[tuple[int, Finding]]]]:
    groups: dict[str, list[tuple[int, Finding]]] = {}
    for number, finding in numbered:
        groups.setdefault(_subsystem_of(finding.file), []).append((number, finding))
    return sorted(groups.items())


def _subsystem(name: str, numbered: list[tuple[int, Finding]], snippets: Mapping[Place, Snippet]) -> str:
    """A subsystem's findings, by root cause in the order of its place."""
    causes: dict[tuple[str, int, str], list[tuple[int, Finding]]] = {}
    for number, finding in numbered:
        causes.setdefault(_cause(finding), []).append((number, finding))
    out = [f'<section class="subsystem" data-subsystem="{_e(name)}">',
           f'<h2>{_e(name)} <span class="n">{len(numbered)}</span></h2>']
    for (file, line, function), group in sorted(causes.items()):
        first = group[0][1]
        step = first.chain[0] if first.chain else None
        what = (f' <span class="kind kind-{_e(step.kind)}">{_e(KINDS.get(step.kind, step.kind))}</span>'
                f' <span class="note">{_note(step.note)}</span>') if step else ""
        out.append(f'<section class="cause" data-cause="{_e(file)}:{line}">')
        out.append(f'<h3><span class="label">{"context from" if step else "at"}</span> '
                   f'<span class="fn">{_e(function)}()</span> <span class="loc">{_e(file)}:{line}</span>{what} '
                   f'<span class="n">{len(group)}</span></h3>')
        out.extend(_finding(number, finding, snippets) for number, finding in group)
        out.append("</section>")
    out.append("</section>")
    return "\n".join(out)


def _finding(number: int, finding: Finding, snippets: Mapping[Place, Snippet]) -> str:
    """One finding: a summary line that opens on its chain and what it covers."""
    check = BY_ID.get(finding.rule)
    attributes = " ".join(f'data-{facet}="{_e(_facet(finding, facet))}"'
                          for facet in ("rule", "severity", "confidence", "subsystem"))
    out = [
        f'<details class="finding sev-{_e(finding.severity)}" id="f{number}" {attributes}>',
        f'<summary><span class="sev">{_e(finding.severity)}</span> <code class="rule">{_e(finding.rule)}</code> '
        f'<span class="loc">{_e(finding.file)}:{finding.line}:{finding.column}</span> '
        f'<span class="fn">{_e(finding.function)}()</span> <span class="conf">{_e(finding.confidence)}</span>'
        f'<span class="msg">{_e(finding.message)}</span></summary>',
        '<div class="body">',
    ]
    if check is not None:
        out.append(f'<p class="rule-short"><code>{_e(check.id)}</code>: {_e(check.short)}.</p>')
    reported = (finding.file, finding.line)
    at_step = any((s.file, s.line) == reported for s in finding.chain)
    if not at_step:
        out.append(f'<div class="reported"><span class="label">reported at</span> '
                   f'<span class="loc">{_e(finding.file)}:{finding.line}</span>'
                   f'{_source(snippets.get(reported, ()), finding.line)}</div>')
    if finding.chain:
        out.append(f'<ol class="chain" data-steps="{len(finding.chain)}">')
        out.extend(_step(step, (step.file, step.line) == reported, snippets) for step in finding.chain)
        out.append("</ol>")
    if finding.covers:
        out.append(_covers(finding.covers))
    out.append("</div>")
    out.append("</details>")
    return "\n".join(out)


def _step(step: ChainStep, reported: bool, snippets: Mapping[Place, Snippet]) -> str:
    """One node of the path: its contribution as a badge, where it is, its note and source."""
    marker = ' <span class="here">reported here</span>' if reported else ""
    return (f'<li class="step{" reported" if reported else ""}" data-kind="{_e(step.kind)}">'
            f'<div class="head"><span class="kind kind-{_e(step.kind)}">{_e(KINDS.get(step.kind, step.kind))}'
            f'</span> <span class="fn">{_e(step.function)}()</span> '
            f'<span class="loc">{_e(step.file)}:{step.line}:{step.column}</span>{marker}</div>'
            f'<div class="note">{_note(step.note)}</div>'
            f"{_source(snippets.get((step.file, step.line), ()), step.line)}</li>")


def _note(note: str) -> str:
    """A step's note, where the fact came from (`  [rules: begin]`) set apart."""
    said, bracket, source = note.rpartition("  [")
    if not bracket or not source.endswith("]"):
        return _e(note)
    return f'{_e(said)} <span class="why">[{_e(source)}</span>'


def _source(lines: Snippet, line: int) -> str:
    """Numbered source lines, the step's own marked `hl`; one `pre` with no text
    between lines, so each line is a block that can be highlighted full width."""
    if not lines:
        return '<p class="nosrc">(source not available)</p>'
    rows = "".join(f'<span class="line{" hl" if n == line else ""}" data-line="{n}">{_e(text)}</span>'
                   for n, text in lines)
    return f'<pre class="src">{rows}</pre>'


def _covers(covers: Sequence[Covered]) -> str:
    """The allocations a finding at its fix site stands for."""
    items = "".join(f'<li><span class="fn">{_e(c.function)}()</span> {_e(c.allocator)}() with '
                    f'<code>{_e(c.gfp)}</code> <span class="loc">{_e(c.file)}:{c.line}</span></li>' for c in covers)
    return (f'<div class="covers"><h4>Stands for {_plural(len(covers), "allocation")}</h4>'
            f"<ul>{items}</ul></div>")


def _suppressed(suppressed: Sequence[tuple[Finding, str]]) -> str:
    """The findings a `gfpcheck: ignore` comment suppresses, each with its reason."""
    if not suppressed:
        return ""
    items = "".join(
        f'<li><code class="rule">{_e(f.rule)}</code> <span class="loc">{_e(f.file)}:{f.line}:{f.column}</span> '
        f'<span class="fn">{_e(f.function)}()</span> <span class="msg">{_e(f.message)}</span> '
        f'<span class="reason">reason: {_e(reason)}</span></li>'
        for f, reason in sorted(suppressed, key=lambda pair: (pair[0].sort_key(), pair[1])))
    return (f'<details id="suppressed"><summary>{_plural(len(suppressed), "finding")} suppressed inline</summary>'
            f"<ul>{items}</ul></details>")
