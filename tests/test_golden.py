"""Messages and chains are part of the product: the text reports of a few
fixtures are kept verbatim, so a changed message or a lost chain step shows up
in review.  After a deliberate change, `pytest --update-fixtures` rewrites them."""

from __future__ import annotations

from pathlib import Path

import pytest

from gfpcheck.pipeline import ScanOptions, scan
from gfpcheck.report import text as text_report

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
TREES = ("seed-2016", "scopes", "jbd2-scope", "needless", "inconsistent", "noio")


@pytest.mark.parametrize("name", TREES)
def test_text_report_matches_its_golden_copy(name: str, rules, update_fixtures: bool) -> None:
    tree = ROOT / "fixtures" / name
    result = scan(ScanOptions(paths=(tree,), root=tree, jobs=1, min_confidence="low"), rules=rules)
    report = text_report.render(result.findings)
    golden = GOLDEN / f"{name}.txt"
    if update_fixtures:
        golden.write_text(report)
    assert report == golden.read_text()
