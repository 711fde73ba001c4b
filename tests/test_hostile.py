"""Hostile input and faults, as a table: what goes in, the exit status it must
give, and a fragment of the one line it must print.  Each case was a traceback,
a hang, a lost file or a wrong result before gfpcheck handled it."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SEED = FIXTURES / "seed-2016"

HELPER = """struct btrfs_trans_handle;
void *kmalloc(unsigned long size, unsigned int flags);
int helper(struct btrfs_trans_handle *trans) { void *p = kmalloc(8, GFP_KERNEL); return p != 0; }
"""


def gfpcheck(*args: str, cwd: Path | None = None, stdin: bytes | None = None, env: dict | None = None,
             preexec=None, stdout=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gfpcheck", *args], stdout=stdout or subprocess.PIPE,
                          stderr=subprocess.PIPE, input=stdin, cwd=cwd, check=False, env=env, preexec_fn=preexec)


def tree_with(tmp_path: Path, name: str = "helper.c", text: str = HELPER) -> Path:
    tree = tmp_path / "tree"
    tree.mkdir(exist_ok=True)
    (tree / name).write_bytes(text.encode("utf-8", "surrogateescape"))
    return tree


def one_line(stderr: bytes) -> str:
    text = stderr.decode("utf-8", "replace")
    assert "Traceback" not in text
    assert text.count("\n") == 1, text
    return text


# -- inputs that give one line and exit 2 (or 0/1 where the input is usable) ----------

def deep_toml(tmp_path: Path) -> list[str]:
    path = tmp_path / "deep.toml"
    path.write_text("exclude = " + "[" * 5000 + "]" * 5000 + "\n")
    return ["scan", "--config", str(path), str(SEED)]


def deep_yaml(tmp_path: Path) -> list[str]:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "deep.yaml").write_text("allocators: " + "[" * 5000 + "]" * 5000 + "\n")
    return ["scan", "--rules", str(rules), str(SEED)]


def deep_baseline(tmp_path: Path) -> list[str]:
    path = tmp_path / "baseline.json"
    path.write_text('{"format": "gfpcheck-baseline/2", "findings": ' + "[" * 100000 + "]" * 100000 + "}")
    return ["scan", "--baseline", str(path), str(SEED)]


def self_recursive_mask_function(tmp_path: Path) -> list[str]:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "loop.yaml").write_text("mask_functions:\n  - {name: loop_mask, value: \"loop_mask($0) | $0\"}\n")
    return ["scan", "--rules", str(rules), str(SEED)]


def rules_dir_without_rules(tmp_path: Path) -> list[str]:
    (tmp_path / "typo").mkdir()
    (tmp_path / "typo" / "README").write_text("not rules\n")
    return ["scan", "--rules", str(tmp_path / "typo"), str(SEED)]


def empty_cache_dir(tmp_path: Path) -> list[str]:
    return ["scan", "--cache-dir", "", str(tree_with(tmp_path))]


def old_baseline(tmp_path: Path) -> list[str]:
    path = tmp_path / "old.json"
    path.write_text('{"format": "gfpcheck-baseline/1", "findings": []}\n')
    return ["scan", "--baseline", str(path), str(SEED)]


def quoted_patch_name(tmp_path: Path) -> list[str]:
    patch = tmp_path / "x.patch"
    patch.write_bytes(b'--- "a/fs/x\\u1234.c"\n+++ "b/fs/x\\u1234.c"\n@@ -1 +1 @@\n-a\n+b\n')
    return ["check", "--patch", str(patch), str(tree_with(tmp_path))]


def binary_source_patch(tmp_path: Path) -> list[str]:
    patch = tmp_path / "bin.patch"
    patch.write_bytes(b"diff --git a/fs/new.c b/fs/new.c\nnew file mode 100644\nindex 0000000..e69de29\n"
                      b"GIT binary patch\nliteral 5\nMcmZ?wbaHkD00SlfIsgCw\n\nliteral 0\nHcmV?d00001\n\n")
    return ["check", "--patch", str(patch), str(tree_with(tmp_path))]


def rename_only_patch(tmp_path: Path) -> list[str]:
    patch = tmp_path / "mv.patch"
    patch.write_bytes(b"diff --git a/helper.c b/moved.c\nsimilarity index 100%\nrename from helper.c\n"
                      b"rename to moved.c\n")
    return ["check", "--patch", str(patch), str(tree_with(tmp_path))]


def binary_only_patch(tmp_path: Path) -> list[str]:
    patch = tmp_path / "img.patch"
    patch.write_bytes(b"diff --git a/logo.png b/logo.png\nindex 1111111..2222222 100644\n"
                      b"Binary files a/logo.png and b/logo.png differ\n")
    return ["check", "--patch", str(patch), str(tree_with(tmp_path))]


def deep_gfp_argument(tmp_path: Path) -> list[str]:
    text = ("void *kmalloc(unsigned long s, unsigned int f);\n"
            f"void f(void) {{ kmalloc(8, {'(' * 200}GFP_KERNEL{')' * 200}); }}\n")
    return ["scan", "--format", "json", str(tree_with(tmp_path, "deep.c", text))]


def huge_job_count(tmp_path: Path) -> list[str]:
    tree = tmp_path / "many"
    tree.mkdir()
    for i in range(40):
        (tree / f"f{i}.c").write_text(f"int f{i}(void) {{ return {i}; }}\n")
    (tree / "helper.c").write_text(HELPER)
    return ["scan", "--no-cache", "-j", "10000", str(tree)]


CASES = [
    # (name, build the arguments, exit status, fragment of the one line on stderr)
    ("TOML nested very deep", deep_toml, 2, "nested too deeply"),
    ("YAML rules nested very deep", deep_yaml, 2, "nested too deeply"),
    ("baseline JSON nested very deep", deep_baseline, 2, "nested too deeply"),
    ("mask function that calls itself", self_recursive_mask_function, 2, "loop_mask() calls itself"),
    ("--rules directory without a rules file", rules_dir_without_rules, 2, "no rules files"),
    ("--cache-dir ''", empty_cache_dir, 2, "an empty path"),
    ("baseline of the old fingerprint format", old_baseline, 2, "record it again with --write-baseline"),
    ("patch header with an escape git never writes", quoted_patch_name, 2, "escape git does not write"),
    ("binary patch that adds a .c file", binary_source_patch, 2, "'fs/new.c': a binary patch of a C source"),
    ("rename-only patch", rename_only_patch, 0, "nothing to check"),
    ("binary-only patch of a non-source file", binary_only_patch, 0, "nothing to check"),
    ("GFP argument nested 200 parentheses deep", deep_gfp_argument, 0, "degraded 1 (nesting too deep)"),
    ("-j 10000", huge_job_count, 1, "using 4 processes" if os.cpu_count() == 2 else "processes"),
]


@pytest.mark.parametrize("name, build, status, fragment", CASES, ids=[c[0] for c in CASES])
def test_hostile_input(tmp_path, name, build, status, fragment):
    run = gfpcheck(*build(tmp_path), cwd=tmp_path)
    stderr = run.stderr.decode("utf-8", "replace")
    assert run.returncode == status, stderr
    assert "Traceback" not in stderr
    assert fragment in stderr, stderr
    if status == 2:
        one_line(run.stderr)


def test_empty_cache_dir_writes_nothing_in_the_current_directory(tmp_path):
    tree = tree_with(tmp_path)
    gfpcheck("scan", "--cache-dir", "", ".", cwd=tree)
    assert sorted(p.name for p in tree.iterdir()) == ["helper.c"]


# -- faults ------------------------------------------------------------------------------

def test_non_utf8_file_name_keeps_its_finding_in_every_format(tmp_path):
    tree = tree_with(tmp_path, "bad\udcff.c")
    text = gfpcheck("scan", str(tree))
    assert text.returncode == 1 and b"Traceback" not in text.stderr
    assert text.stdout.startswith(b"bad\xff.c:3:") and b"[nofs-recursion]" in text.stdout
    document = json.loads(gfpcheck("scan", "--format", "json", str(tree)).stdout)
    assert [f["file"] for f in document["findings"]] == ["bad\udcff.c"]
    sarif = json.loads(gfpcheck("scan", "--format", "sarif", str(tree)).stdout)
    uri = sarif["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri == "bad%FF.c"


@pytest.mark.parametrize("name, encoded", [("with space.c", "with%20space.c"), ("a:b.c", "a%3Ab.c"),
                                           ("new\nline.c", "new%0Aline.c")])
def test_sarif_uris_are_percent_encoded(tmp_path, name, encoded):
    sarif = json.loads(gfpcheck("scan", "--format", "sarif", str(tree_with(tmp_path, name))).stdout)
    result = sarif["runs"][0]["results"][0]
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == encoded
    steps = result["codeFlows"][0]["threadFlows"][0]["locations"]
    assert {s["location"]["physicalLocation"]["artifactLocation"]["uri"] for s in steps} == {encoded}


def test_output_to_a_full_disk_is_one_line_and_exit_two(tmp_path):
    with open("/dev/full", "wb") as full:
        run = gfpcheck("scan", "--format", "sarif", str(tree_with(tmp_path)), stdout=full)
    stderr = run.stderr.decode()
    assert run.returncode == 2
    assert "cannot write the report to standard output: No space left on device" in stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr


def _file_size_limit(limit: int):
    def set_limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return set_limit


def test_a_baseline_write_that_fails_leaves_the_old_baseline_whole(tmp_path):
    baseline = tmp_path / "baseline.json"
    assert gfpcheck("scan", "--write-baseline", str(baseline), str(SEED)).returncode == 1
    before = baseline.read_bytes()
    assert len(before) > 400
    # A file may not grow past 200 bytes: the new baseline cannot be written whole.
    run = gfpcheck("scan", "--no-cache", "--write-baseline", str(baseline), str(SEED),
                   preexec=_file_size_limit(200))
    assert run.returncode == 2 and "cannot write the baseline" in run.stderr.decode()
    assert baseline.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["baseline.json"]  # no temporary file left
    assert gfpcheck("scan", "--baseline", str(baseline), str(SEED)).returncode == 0


def test_a_fifo_in_the_cache_is_skipped_not_waited_on(tmp_path):
    tree = tree_with(tmp_path)
    cache = tmp_path / "cache"
    assert gfpcheck("scan", "--cache-dir", str(cache), str(tree)).returncode == 1
    os.mkfifo(cache / "facts" / "0-1-x.pack")
    for kind in ("results", "stamps"):
        for entry in (cache / kind).rglob("*"):
            if entry.is_file():
                entry.unlink()
                os.mkfifo(entry)
    run = subprocess.run([sys.executable, "-m", "gfpcheck", "scan", "--cache-dir", str(cache), str(tree)],
                         capture_output=True, timeout=60, check=False)
    assert run.returncode == 1 and b"nofs-recursion" in run.stdout


def test_sigterm_ends_the_scan_and_its_workers_quietly(tmp_path):
    tree = tmp_path / "big"
    tree.mkdir()
    body = "".join(f"int f{i}(int x) {{ if (x) return g{i}(x - 1); return kmalloc(8, GFP_KERNEL) != 0; }}\n"
                   for i in range(400))
    for i in range(300):
        (tree / f"f{i}.c").write_text(body)
    process = subprocess.Popen([sys.executable, "-m", "gfpcheck", "scan", "--no-cache", "-j", "2", str(tree)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(2.0)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    text = err.decode()
    assert process.returncode == 143, text
    assert "Traceback" not in text
    assert text.strip().splitlines()[-1] == "gfpcheck: terminated; the cache keeps what was finished"


def test_an_internal_error_exits_three_with_one_line(monkeypatch):
    from click.testing import CliRunner

    from gfpcheck import cli

    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(cli, "scan", broken)
    result = CliRunner().invoke(cli.main, ["scan", "--no-cache", str(SEED)])
    assert result.exit_code == 3
    assert result.output.count("\n") == 1
    assert result.output.startswith("gfpcheck: internal error: ZeroDivisionError: division by zero;")
    assert "Traceback" not in result.output
    debug = CliRunner().invoke(cli.main, ["--debug", "scan", "--no-cache", str(SEED)])
    assert debug.exit_code == 3 and "Traceback" in debug.output and 'raise ZeroDivisionError' in debug.output


def test_a_usage_error_is_one_line_and_exit_two():
    """Not click's three lines of usage text."""
    run = gfpcheck("scan", "--no-such-option")
    assert run.returncode == 2
    assert one_line(run.stderr) == ("gfpcheck: error: No such option '--no-such-option'. "
                                    "(see `gfpcheck scan --help`)\n")
