"""What a check declares about itself, once: id, severity, descriptions, help,
example, and the wording of its message.  Each checks module declares its own
(`CHECKS`); the registry in checks/__init__.py gathers them for the text and
JSON reports, SARIF's `rules[]`, `gfpcheck explain`, `gfpcheck rules` and the
validation of settings files."""

from __future__ import annotations

from dataclasses import dataclass

SEVERITY_ORDER = {"note": 0, "warning": 1, "error": 2}


@dataclass(frozen=True)
class Check:
    id: str  # rule id as printed: nofs-recursion
    name: str  # CamelCase name for SARIF
    severity: str  # error | warning | note
    short: str
    full: str
    help: str  # how to fix
    example: str
    # The finding's message, formatted with the evidence's parts: {where} (the
    # allocation, and how the mask got there), {mask}, {held} ("a btrfs transaction
    # is held"), {taken} (" (taken in f())"), {believer} (the function whose mask
    # says the context holds), {function} (the reported function), {kind} (a
    # scope kind, for checks of the scope API).
    message: str = ""
    # What the allocation step of the chain says after "kmalloc() with GFP_KERNEL".
    alloc_note: str = ""
    # For a check on believed context: the message when nothing holds the family's
    # context on any path to the believing mask, so the finding is reported at that
    # mask (the side to change) with the unsafe allocation as evidence; "" keeps
    # every finding at the allocation.  Formatted like `message`, with {mask} the
    # believing mask, {where} the allocation and {unsafe} its mask.
    believer_message: str = ""

    @property
    def type(self) -> str:
        """checkpatch-style type: NOFS_RECURSION."""
        return self.id.upper().replace("-", "_")

    @property
    def indented_example(self) -> str:
        return "\n".join("    " + line for line in self.example.splitlines())
