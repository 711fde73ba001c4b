"""Every fixture tree gives exactly the findings its annotations expect."""

from __future__ import annotations

from pathlib import Path

import pytest

from gfpcheck.kconfig import load_config
from gfpcheck.pipeline import ScanOptions, scan

from . import fixture_expectations as expectations

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
TREES = sorted(p for p in FIXTURES.iterdir() if p.is_dir())


@pytest.mark.parametrize("tree", TREES, ids=[t.name for t in TREES])
def test_fixture_findings_match_annotations(tree: Path, rules, update_fixtures: bool) -> None:
    # A tree with a .config of its own is scanned as built with it, as the CLI does.
    kconfig = load_config(tree / ".config") if (tree / ".config").is_file() else None
    result = scan(ScanOptions(paths=(tree,), root=tree, jobs=1, kconfig=kconfig), rules=rules)
    actual = {(f.file, f.line, f.rule) for f in result.findings}
    if update_fixtures:
        expectations.rewrite(tree, actual)
    expected, clean = expectations.read(tree)
    assert sorted(actual - expected) == [], "reported but not expected"
    assert sorted(expected - actual) == [], "expected but not reported"
    assert sorted({(file, line) for file, line, _ in actual} & clean) == [], "reported on a line marked ok"


def test_every_fixture_has_expectations() -> None:
    for tree in TREES:
        expected, clean = expectations.read(tree)
        assert expected or clean, f"{tree.name} states no expectation"
