from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser):
    parser.addoption("--update-fixtures", action="store_true",
                     help="Rewrite the expect annotations in fixtures/ to match what gfpcheck reports.")


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Scans the tests run, in process or through the CLI, cache under a temporary directory."""
    import os

    saved = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield
    if saved is None:
        del os.environ["XDG_CACHE_HOME"]
    else:
        os.environ["XDG_CACHE_HOME"] = saved


@pytest.fixture(scope="session")
def rules():
    from gfpcheck.ruleset import load_rules

    return load_rules()


@pytest.fixture
def update_fixtures(request) -> bool:
    return request.config.getoption("--update-fixtures")
