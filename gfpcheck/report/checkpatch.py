"""The gate's report in checkpatch's manner:

    ERROR:NOFS_RECURSION: kmalloc() with GFP_KERNEL may recurse ...
    #29: FILE: fs/btrfs/xattr.c:29:
    +	name = kmalloc(len, GFP_KERNEL);
      fs/btrfs/inode.c:11: btrfs_mkdir: btrfs_start_transaction() takes a transaction handle
      ...

    total: 1 errors, 0 warnings, 0 notes

`#N` is the line in the file, as `checkpatch.pl -f` prints it; the source
line is marked `+` when the change added or altered it.  `--terse` gives
one `path:line: LEVEL:TYPE: message` line per finding.
"""

from __future__ import annotations

from collections.abc import Callable

from ..checks import BY_ID
from ..findings import Finding
from .text import covers_note

PRE_EXISTING = " [pre-existing: its chain runs through a changed line]"


def render(findings: list[tuple[Finding, bool]], source_line: Callable[[str, int], tuple[str, bool] | None],
           terse: bool = False, show_types: bool = True, summary: bool = True) -> str:
    """Each (finding, pre_existing) pair; `source_line` gives a line's text and
    whether the change touched it."""
    out = []
    for finding, pre_existing in findings:
        level = finding.severity.upper()
        head = f"{level}:{BY_ID[finding.rule].type}:" if show_types else f"{level}:"
        message = finding.message + (PRE_EXISTING if pre_existing else "")
        if terse:
            out.append(f"{finding.file}:{finding.line}: {head} {message}")
            continue
        out.append(f"{head} {message}")
        out.append(f"#{finding.line}: FILE: {finding.file}:{finding.line}:")
        text = source_line(finding.file, finding.line)
        if text is not None:
            out.append(("+" if text[1] else " ") + text[0])
        for step in finding.chain:
            out.append(f"  {step.file}:{step.line}: {step.function}: {step.note}")
        covered = covers_note(finding)
        if covered is not None:
            out.append(f"  {covered[0]}: {covered[1]}")
        out.append("")
    if summary:
        counts = {level: sum(1 for f, _ in findings if f.severity == level) for level in ("error", "warning", "note")}
        if terse and out:
            out.append("")
        out.append(f"total: {counts['error']} errors, {counts['warning']} warnings, {counts['note']} notes")
    return "\n".join(out) + ("\n" if out else "")
