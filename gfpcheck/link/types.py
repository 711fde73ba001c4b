"""C types across the tree: struct members, typedefs and global variables.

Used to resolve a call through a function pointer by the struct that holds
it: `file->f_op->read_iter(...)` is a call of `struct file_operations`'s
`read_iter`, because `file` is a `struct file *` and its `f_op` member a
`const struct file_operations *`.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..facts import PARAM_NAME, PARAM_POINTER, PARAM_TYPE, FileFacts, Function

_TYPEDEF_DEPTH = 8


class TypeIndex:
    """Struct members, typedefs and globals of every file; first definition wins
    (files come sorted by path, so the choice is stable)."""

    def __init__(self, files: Iterable[FileFacts]):
        self.fields: dict[str, dict[str, str]] = {}
        self.typedefs: dict[str, str] = {}
        self.globals: dict[str, str] = {}
        for facts in files:
            for struct, members in facts.structs:
                known = self.fields.setdefault(struct, {})
                for name, ctype in members:
                    known.setdefault(name, ctype)
            for alias, ctype in facts.typedefs:
                self.typedefs.setdefault(alias, ctype)
            for name, ctype in facts.globals:
                self.globals.setdefault(name, ctype)

    def canonical(self, ctype: str) -> str:
        """`handle_t` -> `struct jbd2_journal_handle`: typedefs followed to the end."""
        seen = 0
        while ctype in self.typedefs and seen < _TYPEDEF_DEPTH:
            target = self.typedefs[ctype]
            if target == ctype:
                break
            ctype = target
            seen += 1
        return ctype

    def variable(self, function: Function, name: str) -> str:
        """Type of a variable seen from inside `function`: parameter, local, then global."""
        for param in function.params:
            if param[PARAM_NAME] == name:
                return param[PARAM_TYPE] if param[PARAM_POINTER] <= 1 else ""
        for local, ctype in function.locals:
            if local == name:
                return ctype
        return self.globals.get(name, "")

    def member_path(self, ctype: str, path: Iterable[str]) -> str:
        """The struct reached from `ctype` through `path` of members, "" when unknown."""
        ctype = self.canonical(ctype)
        for member in path:
            found = self.fields.get(ctype, {}).get(member)
            if found is None:
                return ""
            ctype = self.canonical(found)
        return ctype if ctype.startswith(("struct ", "union ")) or ctype in self.fields else ""
