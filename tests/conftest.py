from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser):
    parser.addoption("--update-fixtures", action="store_true",
                     help="Rewrite the expect annotations in fixtures/ to match what gfpcheck reports.")


@pytest.fixture(scope="session")
def rules():
    from gfpcheck.ruleset import load_rules

    return load_rules()


@pytest.fixture
def update_fixtures(request) -> bool:
    return request.config.getoption("--update-fixtures")
