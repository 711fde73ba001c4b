"""The tree-sitter C parser and the extraction query, built once per process."""

from __future__ import annotations

from importlib import resources

import tree_sitter
import tree_sitter_c

from ..ruleset import Ruleset

_LANGUAGE = tree_sitter.Language(tree_sitter_c.language())
_parser: tree_sitter.Parser | None = None
_queries: dict[str, tree_sitter.Query] = {}


def grammar_version() -> str:
    """Identifies the parser build; part of every cache key."""
    from importlib.metadata import version

    return f"tree-sitter {version('tree-sitter')}, tree-sitter-c {version('tree-sitter-c')}, abi {_LANGUAGE.abi_version}"


def parser() -> tree_sitter.Parser:
    global _parser
    if _parser is None:
        _parser = tree_sitter.Parser(_LANGUAGE)
    return _parser


def facts_query(rules: Ruleset) -> tree_sitter.Query:
    """The query of queries/facts.scm with the rules' entry macros filled in."""
    key = rules.digest
    query = _queries.get(key)
    if query is None:
        text = resources.files(__package__).joinpath("queries/facts.scm").read_text()
        macros = " ".join(f'"{m}"' for m in sorted(rules.name_macros)) or '"__gfpcheck_no_entry_macro__"'
        query = tree_sitter.Query(_LANGUAGE, text.replace("@ENTRY_MACROS@", macros))
        _queries[key] = query
    return query
