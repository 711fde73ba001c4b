"""The CI recipes the README and .pre-commit-hooks.yaml give run as written."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from .test_gate import BUGGY, git, make_tree

REPO = Path(__file__).resolve().parent.parent


def _workflow() -> dict:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("### In CI, before a commit"):]
    block = re.search(r"```yaml\n(name: gfpcheck\n.*?)```", section, re.S)
    assert block, "the README's workflow is missing"
    return yaml.safe_load(block.group(1))


def test_the_workflow_restores_the_default_cache_gates_on_the_base_and_uploads_sarif(monkeypatch, tmp_path):
    steps = _workflow()["jobs"]["gfpcheck"]["steps"]
    cache = next(s for s in steps if s.get("uses", "").startswith("actions/cache@"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    from gfpcheck.cache import default_cache_dir

    assert Path(cache["with"]["path"].replace("~", str(tmp_path))) == default_cache_dir()
    gate = next(s["run"] for s in steps if s.get("run", "").startswith("gfpcheck check"))
    words = shlex.split(gate.split(">")[0])
    assert words[:3] == ["gfpcheck", "check", "--base"] and words[3].startswith("origin/")
    assert words[words.index("--format") + 1] == "sarif"
    upload = next(s for s in steps if s.get("uses", "").startswith("github/codeql-action/upload-sarif@"))
    assert upload["with"]["sarif_file"] == gate.split(">")[1].strip()
    checkout = next(s for s in steps if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["fetch-depth"] == 0  # the base revision is fetched


def test_the_pre_commit_hook_fails_a_commit_that_adds_gfp_kernel_under_a_handle(tmp_path):
    (hook,) = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "gfpcheck" and hook["language"] == "python" and hook["pass_filenames"] is False
    assert re.search(hook["files"], "fs/btrfs/inode.c") and not re.search(hook["files"], "Makefile")
    repo = make_tree(tmp_path / "repo")
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    entry = shlex.split(hook["entry"])
    assert entry[0] == "gfpcheck"
    command = [sys.executable, "-m", "gfpcheck", *entry[1:]]
    assert subprocess.run(command, cwd=repo, capture_output=True, text=True, check=False).returncode == 0
    (repo / "fs/demo/inode.c").write_text(BUGGY)  # what pre-commit leaves staged in the working tree
    run = subprocess.run(command, cwd=repo, capture_output=True, text=True, check=False)
    assert run.returncode == 1 and "ERROR:NOFS_RECURSION" in run.stdout
