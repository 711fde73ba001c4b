"""The command line end to end: formats, exit codes, determinism, errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SEED = FIXTURES / "seed-2016"


def gfpcheck(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gfpcheck", *args], capture_output=True, text=True, cwd=cwd,
                          check=False)


def test_text_output_is_compiler_style_with_chain():
    run = gfpcheck("scan", str(SEED))
    assert run.returncode == 1
    lines = run.stdout.splitlines()
    # Every line is one a compile mode reads: the finding, then its chain as notes,
    # then for a finding at its fix site the first allocation it covers (a line, no column).
    assert all(re.fullmatch(r"[\w./-]+:\d+(:\d+)?: (error|warning|note): .+", line) for line in lines)
    heads = [line for line in lines if re.search(r" \[[a-z-]+\]$", line)]
    assert heads and all(": note: " not in h or h.endswith(("[nofs-redundant]", "[nofs-needless]")) for h in heads)
    # evm's two allocations under btrfs's handle: one report, at btrfs's call into the LSM
    assert any(h.startswith("fs/btrfs/xattr.c:50:9: error:") for h in heads)
    steps = [line for line in lines if line not in heads]
    assert steps and all(re.fullmatch(r"[\w./-]+:\d+:\d+: note: \w+: .+", s) for s in steps if " covers " not in s)
    assert "security/integrity/evm/evm_crypto.c:34: note: init_desc: covers crypto_alloc_shash()" in run.stdout
    assert "evm_init_hmac: calls init_desc()" in run.stdout
    assert run.stderr.startswith("gfpcheck: ") and "nofs-recursion" in run.stderr


def test_json_output_carries_findings_chains_and_stats():
    run = gfpcheck("scan", "--format", "json", str(SEED))
    assert run.returncode == 1
    document = json.loads(run.stdout)
    finding = next(f for f in document["findings"] if f["function"] == "btrfs_initxattrs")
    for key in ("rule", "severity", "file", "line", "column", "function", "allocator", "gfp", "message", "chain",
                "covers"):
        assert key in finding
    assert finding["rule"] == "nofs-recursion" and finding["gfp"] == "GFP_KERNEL" and finding["covers"] == []
    assert finding["file"] == "fs/btrfs/xattr.c" and finding["allocator"] == "kmalloc"
    grouped = next(f for f in document["findings"] if f["covers"])
    assert [s["function"] for s in grouped["chain"]][-3:] == ["evm_inode_init_security", "evm_init_hmac", "init_desc"]
    assert all(set(step) >= {"function", "file", "line", "note"} for step in finding["chain"])
    stats = document["stats"]
    for key in ("files", "functions", "call_edges", "indirect_resolved", "files_with_parse_errors"):
        assert key in stats
    assert "seconds" not in stats
    assert "seconds" not in stats and "cache" not in stats
    timed = json.loads(gfpcheck("scan", "--format", "json", "--timings", "--no-cache", str(SEED)).stdout)
    assert set(timed["stats"]["seconds"]) >= {"discover", "key", "extract", "link", "propagate", "check"}
    assert timed["stats"]["cache"] == {"result_reused": 0, "facts_reused": 0, "files_extracted": stats["files"],
                                       "files_moved": 0}


def test_output_is_byte_identical_cold_warm_and_across_job_counts(tmp_path):
    cache = ["--cache-dir", str(tmp_path / "cache")]
    cold = gfpcheck("scan", "--format", "json", *cache, str(SEED)).stdout
    warm = gfpcheck("scan", "--format", "json", *cache, str(SEED)).stdout
    serial = gfpcheck("scan", "--format", "json", "--no-cache", "-j", "1", str(SEED)).stdout
    parallel = gfpcheck("scan", "--format", "json", "--no-cache", "-j", "2", str(SEED)).stdout
    assert json.loads(cold)["findings"]
    assert cold == warm == serial == parallel
    assert gfpcheck("scan", "-j", "1", "--no-cache", str(SEED)).stdout == gfpcheck("scan", *cache, str(SEED)).stdout


def test_clean_tree_exits_zero(tmp_path):
    (tmp_path / "a.c").write_text("int f(void) { return kmalloc(1, GFP_KERNEL) != NULL; }\n")
    run = gfpcheck("scan", str(tmp_path))
    assert run.returncode == 0 and run.stdout == ""


@pytest.mark.parametrize("args, needle", [
    (["scan", "/nonexistent/tree"], "no such file or directory"),
    (["scan", "--rules", "/nonexistent/rules", str(SEED)], "rules directory not found"),
    (["explain", "no-such-rule"], "unknown rule"),
])
def test_errors_are_one_line_and_exit_two(args, needle):
    run = gfpcheck(*args)
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and run.stderr.startswith("gfpcheck: error:")
    assert needle in run.stderr
    assert "Traceback" not in run.stderr


def test_malformed_rules_file_is_an_input_error(tmp_path):
    (tmp_path / "bad.yaml").write_text("allocators:\n  - {name: kmalloc, gfp_arg: -1}\n")
    run = gfpcheck("scan", "--rules", str(tmp_path), str(SEED))
    assert run.returncode == 2
    assert "bad.yaml" in run.stderr and "allocators[0].gfp_arg" in run.stderr


def test_explain_and_rules_read_the_catalog():
    rules = gfpcheck("rules")
    assert rules.returncode == 0
    assert [line.split()[0] for line in rules.stdout.splitlines()] == [
        "nofs-recursion", "nofs-inconsistent", "nofs-redundant", "nofs-needless", "noio-recursion",
        "noio-redundant", "scope-leak"]
    explained = gfpcheck("explain", "nofs-recursion")
    assert explained.returncode == 0
    assert "memalloc_nofs_save" in explained.stdout and "Example:" in explained.stdout


def test_ctrl_c_exits_130_with_one_line(monkeypatch):
    from click.testing import CliRunner

    from gfpcheck import cli

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "scan", interrupted)
    result = CliRunner().invoke(cli.main, ["scan", "--no-cache", str(SEED)])
    assert result.exit_code == 130
    assert result.output.strip() == "gfpcheck: interrupted; the cache keeps what was finished"


def test_console_entry_keeps_the_analysis_and_leaves_at_once(monkeypatch):
    from click.testing import CliRunner

    from gfpcheck import cli

    seen: dict = {}
    real_scan = cli.scan

    def spy(options, *args, **kwargs):
        result = real_scan(options, *args, **kwargs)
        seen.setdefault("analysis", []).append(result.analysis)
        return result

    def hard(code):
        seen["hard"] = code
        raise SystemExit(code)

    monkeypatch.setattr(cli, "scan", spy)
    monkeypatch.setattr(cli.os, "_exit", hard)
    # -j 1: a forked worker ends with os._exit too, which must stay the real one
    console = CliRunner().invoke(cli.main, ["scan", "--no-cache", "-j", "1", str(SEED)], obj={"hard_exit": True})
    library = CliRunner().invoke(cli.main, ["scan", "--no-cache", "-j", "1", str(SEED)])
    assert console.exit_code == library.exit_code == seen["hard"] == 1
    assert console.output == library.output and "init_desc" in console.output
    kept, freed = seen["analysis"]
    assert kept is not None and kept.program.stats.functions > 0 and freed is None


def recorded_restart(monkeypatch, libc=("glibc", "2.36"), tunables=None, refuse=False) -> list:
    from gfpcheck import cli

    calls: list = []

    def execve(path, argv, environment):
        calls.append((path, argv, environment.get("GLIBC_TUNABLES")))
        if refuse:
            raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(cli.os, "execve", execve)
    monkeypatch.setattr(cli.sys, "platform", "linux")
    monkeypatch.setattr(cli.platform, "libc_ver", lambda: libc)
    if tunables is None:
        monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    else:
        monkeypatch.setenv("GLIBC_TUNABLES", tunables)
    cli.with_huge_pages()
    return calls


def test_console_entry_restarts_once_with_the_heap_on_huge_pages(monkeypatch):
    import sys

    [(path, argv, tunables)] = recorded_restart(monkeypatch)
    assert path == sys.executable and argv == [sys.executable, *sys.orig_argv[1:]]
    assert tunables == "glibc.malloc.hugetlb=1"
    [(_, _, kept)] = recorded_restart(monkeypatch, tunables="glibc.malloc.arena_max=2")
    assert kept == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"


@pytest.mark.parametrize("libc, tunables", [
    (("glibc", "2.36"), "glibc.malloc.hugetlb=0"),  # the user's own choice, or the restarted process
    (("glibc", "2.31"), None),  # no such tunable before 2.35
    (("", ""), None),  # musl and others
])
def test_no_restart_where_it_cannot_help_or_was_decided(monkeypatch, libc, tunables):
    assert recorded_restart(monkeypatch, libc=libc, tunables=tunables) == []


def test_a_refused_restart_goes_on_as_started(monkeypatch):
    assert len(recorded_restart(monkeypatch, refuse=True)) == 1  # and no exception


def test_restart_reaches_the_new_process():
    import platform

    code = ("import os; from gfpcheck.cli import with_huge_pages; with_huge_pages(); "
            "print(os.environ.get('GLIBC_TUNABLES', ''))")
    environment = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment,
                          cwd=Path(__file__).resolve().parent.parent, check=True)
    libc, version = platform.libc_ver()
    expected = sys.platform == "linux" and libc == "glibc" and tuple(map(int, version.split(".")[:2])) >= (2, 35)
    assert done.stdout.strip() == ("glibc.malloc.hugetlb=1" if expected else "")
