"""`gfpcheck why` in text and JSON: the contexts each definition of a function is
entered in, each with its shortest chain, and the contexts that never reach it.
Chain steps are compiler-style lines (`path:line:col: note: ...`), as the text
report writes them, so an editor jumps to each."""

from __future__ import annotations

import json

from .. import __version__
from ..checks.why import Answer


def render_text(answers: list[Answer]) -> str:
    lines: list[str] = []
    for answer in answers:
        where = f"{answer.file}:{answer.line}:{answer.column}"
        if not answer.reached:
            lines.append(f"{where}: {answer.function}() has no caller or entry the analysis knows of")
        elif not answer.contexts:
            lines.append(f"{where}: {answer.function}() is entered with none of the contexts gfpcheck tracks")
        else:
            lines.append(f"{where}: {answer.function}() is entered with:")
        families = list(dict.fromkeys([r.family for r in answer.contexts if r.family]
                                      + [a.family for a in answer.absent]))
        for family in [*families, ""]:
            for reach in (r for r in answer.contexts if r.family == family):
                label = f"[{family}] " if family else ""
                calls = "1 call" if reach.calls == 1 else f"{reach.calls} calls"
                lines.append(f"  {label}{reach.description}: shortest chain, {calls}, "
                             f"{reach.confidence} confidence")
                for step in reach.chain:
                    lines.append(f"{step.file}:{step.line}:{step.column}: note: {step.function}: {step.note}")
            for absent in (a for a in answer.absent if a.family == family):
                lines.append(f"  [{family}] never {absent.description}")
    return "\n".join(lines) + ("\n" if lines else "")


def render_json(answers: list[Answer]) -> str:
    document = {"tool": "gfpcheck", "version": __version__, "definitions": [a.to_dict() for a in answers]}
    return json.dumps(document, sort_keys=True, indent=2) + "\n"
