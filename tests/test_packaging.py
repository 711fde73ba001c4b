"""What the wheel carries: every package, the rules inside the package, the version from the metadata."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_and_the_rules_are_in_the_wheel_list():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "gfpcheck").rglob("__init__.py")}
    assert set(setuptools["packages"]) == on_disk | {"gfpcheck.rules"}
    assert setuptools["package-dir"] == {"gfpcheck.rules": "rules"}
    assert setuptools["package-data"]["gfpcheck.rules"] == ["*.yaml"]


def test_bundled_rules_are_found_in_a_checkout_and_in_an_installed_package(tmp_path, monkeypatch):
    from gfpcheck import ruleset

    assert ruleset.default_rules_dir() == ROOT / "rules"
    installed = tmp_path / "site-packages" / "gfpcheck"
    (installed / "rules").mkdir(parents=True)
    monkeypatch.setattr(ruleset, "__file__", str(installed / "ruleset.py"))
    assert ruleset.default_rules_dir() == installed / "rules"


def test_version_comes_from_the_package_metadata():
    run = subprocess.run([sys.executable, "-m", "gfpcheck", "--version"], capture_output=True, text=True,
                         check=False)
    assert run.returncode == 0
    assert run.stdout == f"gfpcheck, version {metadata.version('gfpcheck')}\n"
