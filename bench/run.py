#!/usr/bin/env python3
"""Whole-kernel figures for gfpcheck: fetch Debian's linux-source trees and
measure, per tree and in one run, the parse-only floor and a cold scan (each
the fastest of --repeat runs, taken in turn), a warm scan, a warm scan after
touching and after editing one .c file, a gate run of `gfpcheck check
--patch` on a one-file patch, and the peak RSS of the whole process tree;
then how many of Universal Ctags' function definitions gfpcheck also found.

    python bench/run.py                      # both trees, figures on stdout and in JSON
    python bench/run.py --tree 6.12 --no-recovery

Kernel sources and scan caches live under $GFPCHECK_BENCH_DIR (default
~/.cache/gfpcheck-bench), never in the repository.  This is a benchmark,
not a test: it prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gfpcheck.cli import with_huge_pages  # noqa: E402  (after the repository is put on the path)
from gfpcheck.discover import DEFAULT_EXCLUDES  # noqa: E402  (after the repository is put on the path)
from gfpcheck.pipeline import ScanOptions, scan_sources, tree_facts  # noqa: E402  (after the repository is put on the path)
from gfpcheck.ruleset import load_rules  # noqa: E402  (after the repository is put on the path)

TREES = ("6.1", "6.12")
RECOVERY_DIRS = ("fs", "security", "mm", "kernel", "block")
EDIT_FILE = "fs/btrfs/xattr.c"
# The gate's patch: a btrfs function that allocates under a transaction
# handle with GFP_NOFS is changed to GFP_KERNEL.
GATE_FILE, GATE_FROM, GATE_TO = "fs/btrfs/ctree.c", "GFP_NOFS", "GFP_KERNEL"
GATE_FUNCTION = "split_item"


def bench_dir() -> Path:
    return Path(os.environ.get("GFPCHECK_BENCH_DIR") or Path.home() / ".cache" / "gfpcheck-bench")


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


# -- fetching -------------------------------------------------------------------

def download(package: str, base: Path) -> Path:
    """Debian's .deb of `package`, downloaded once into the bench directory."""
    debs = base / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    if not list(debs.glob(f"{package}_*.deb")):
        log(f"downloading {package}")
        if subprocess.run(["apt-get", "download", package], cwd=debs, check=False).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], check=True)
            subprocess.run(["apt-get", "download", package], cwd=debs, check=True)
    return max(debs.glob(f"{package}_*.deb"))


def fetch(version: str, base: Path) -> Path:
    """The extracted tree of linux-source-<version>, downloaded and unpacked once."""
    package = f"linux-source-{version}"
    tree = base / "trees" / package
    if (tree / "Makefile").is_file():
        return tree
    deb = download(package, base)
    log(f"unpacking {deb.name}")
    with tempfile.TemporaryDirectory(dir=base) as scratch:
        subprocess.run(["dpkg", "-x", str(deb), scratch], check=True)
        tarball = next(Path(scratch, "usr", "src").glob(f"{package}.tar.*"))
        (base / "trees").mkdir(parents=True, exist_ok=True)
        subprocess.run(["tar", "-xf", str(tarball), "-C", str(base / "trees")], check=True)
    return tree


def fetch_config(version: str, base: Path) -> Path:
    """Debian's amd64 .config for linux-<version>, from its linux-config package, once."""
    package = f"linux-config-{version}"
    config = base / "configs" / f"{version}-amd64.config"
    if config.is_file():
        return config
    deb = download(package, base)
    with tempfile.TemporaryDirectory(dir=base) as scratch:
        subprocess.run(["dpkg", "-x", str(deb), scratch], check=True)
        packed = next(Path(scratch, "usr", "src", package).glob("config.amd64_none_amd64.*"))
        config.parent.mkdir(parents=True, exist_ok=True)
        with lzma.open(packed) as source:
            config.write_bytes(source.read())
    return config


# -- measuring ------------------------------------------------------------------

def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants."""
    total, todo = 0, [pid]
    page = os.sysconf("SC_PAGE_SIZE")
    while todo:
        current = todo.pop()
        try:
            with open(f"/proc/{current}/statm") as handle:
                total += int(handle.read().split()[1]) * page
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    todo.extend(int(child) for child in handle.read().split())
        except (OSError, ValueError):
            continue
    return total


def timed(command: list[str], stdin: bytes | None = None, cwd: Path | None = None,
          pythonpath: Path = REPO) -> dict:
    """Run a command; its wall time, exit code, stdout, and the peak RSS of its process tree."""
    peak = 0
    start = time.perf_counter()
    # The gfpcheck measured is the one beside this script (or at `pythonpath`), whatever is installed.
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join(filter(None, (str(pythonpath), os.environ.get("PYTHONPATH"))))}
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                               cwd=cwd)
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.2):
            peak = max(peak, tree_rss(process.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = process.communicate(stdin)
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    if process.returncode not in (0, 1):
        log(f"{' '.join(command)} exited {process.returncode}: {err.decode(errors='replace').strip()}")
    return {"seconds": round(seconds, 2), "exit": process.returncode, "peak_rss_mib": round(peak / 2**20),
            "stdout": out, "stderr": err.decode(errors="replace")}


_PARSER = None


def _init_parser() -> None:
    global _PARSER
    import tree_sitter
    import tree_sitter_c

    _PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_c.language()))


def _parse(location: str) -> int:
    with open(location, "rb") as handle:
        _PARSER.parse(handle.read())
    return 0


def parse_floor(tree: Path, jobs: int) -> tuple[float, int]:
    """Seconds to read and parse, with tree-sitter and nothing else, the files a scan reads."""
    sources, _ = scan_sources(ScanOptions(paths=(tree,), root=tree))
    locations = [s.location for s in sources]
    start = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(jobs, initializer=_init_parser) as pool:
        for _ in pool.imap_unordered(_parse, locations, chunksize=16):
            pass
    return round(time.perf_counter() - start, 2), len(locations)


def scan_command(tree: Path, cache: Path, jobs: int, kconfig: Path | None = None) -> list[str]:
    return [sys.executable, "-m", "gfpcheck", "scan", "--format", "json", "--timings", "-q", "-j", str(jobs),
            "--cache-dir", str(cache), *(["--kconfig", str(kconfig)] if kconfig else []), str(tree)]


def scan_figures(run: dict) -> dict:
    document = json.loads(run["stdout"]) if run["exit"] in (0, 1) else {}
    stats = document.get("stats", {})
    counts: dict[str, int] = {}
    for finding in document.get("findings", []):
        counts[finding["rule"]] = counts.get(finding["rule"], 0) + 1
    # The findings, digested: every scan of an unchanged tree must give the same.
    digest = hashlib.sha256(json.dumps(document.get("findings"), sort_keys=True).encode()).hexdigest()[:16]
    return {"seconds": run["seconds"], "exit": run["exit"], "peak_rss_mib": run["peak_rss_mib"],
            "stages": stats.get("seconds", {}), "cache": stats.get("cache", {}), "findings": counts,
            "findings_digest": digest}


def gate_patch(tree: Path) -> tuple[str, str] | None:
    """A one-file unified diff turning the first GFP_NOFS of GATE_FUNCTION into GFP_KERNEL."""
    path = tree / GATE_FILE
    lines = path.read_text(errors="surrogateescape").splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if re.match(rf"^\w.*\b{GATE_FUNCTION}\(", line)), None)
    if start is None:
        return None
    target = next((i for i in range(start, min(start + 200, len(lines))) if GATE_FROM in lines[i]), None)
    if target is None:
        return None
    before, after = lines[target], lines[target].replace(GATE_FROM, GATE_TO, 1)
    lo, hi = max(0, target - 3), min(len(lines), target + 4)
    body = "".join(" " + line if i != target else "-" + before + "+" + after for i, line in enumerate(lines[lo:hi], lo))
    count = hi - lo
    header = f"--- a/{GATE_FILE}\n+++ b/{GATE_FILE}\n@@ -{lo + 1},{count} +{lo + 1},{count} @@\n"
    return header + body, f"{GATE_FILE}:{target + 1}"


def bench_tree(version: str, tree: Path, jobs: int, base: Path, repeat: int) -> dict:
    """The tree's figures.  The floor and the cold scan are measured `repeat` times,
    one after the other, and the fastest of each is kept: on a shared machine a
    neighbour's load slows one run or another, never speeds one up."""
    cache = base / "scan-cache" / version
    kconfig = fetch_config(version, base)
    floors, colds, configured = [], [], []
    for attempt in range(1, repeat + 1):
        log(f"{version}: parse-only floor ({attempt} of {repeat})")
        floor, files = parse_floor(tree, jobs)
        floors.append(floor)
        log(f"{version}: cold scan with Debian's amd64 config ({attempt} of {repeat})")
        shutil.rmtree(cache, ignore_errors=True)
        configured.append(scan_figures(timed(scan_command(tree, cache, jobs, kconfig))))
        log(f"{version}: cold scan ({attempt} of {repeat})")
        shutil.rmtree(cache, ignore_errors=True)
        colds.append(scan_figures(timed(scan_command(tree, cache, jobs))))
    floor = min(floors)
    cold = min(colds, key=lambda run: run["seconds"])
    figures: dict = {"tree": str(tree), "jobs": jobs, "files": files, "floor_seconds": floor,
                     "floor_runs": floors, "cold_runs": [run["seconds"] for run in colds]}
    log(f"{version}: warm scan")
    warm = scan_figures(timed(scan_command(tree, cache, jobs)))
    edited = tree / EDIT_FILE
    original, stat = edited.read_bytes(), edited.stat()
    try:
        log(f"{version}: warm scan after touching {EDIT_FILE}")
        os.utime(edited)
        touched = scan_figures(timed(scan_command(tree, cache, jobs)))
        log(f"{version}: warm scan after editing {EDIT_FILE}")
        edited.write_bytes(original + b"\n/* gfpcheck bench: a one-file edit */\n")
        edit = scan_figures(timed(scan_command(tree, cache, jobs)))
    finally:
        edited.write_bytes(original)
        os.utime(edited, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    figures.update(cold=cold, warm=warm, warm_touched=touched, warm_edited=edit,
                   cold_configured=min(configured, key=lambda run: run["seconds"]), kconfig=str(kconfig))
    figures["configured_over_cold"] = round(figures["cold_configured"]["seconds"] / cold["seconds"], 3)
    patch = gate_patch(tree)
    if patch is not None:
        log(f"{version}: gate on a one-file patch ({patch[1]})")
        gate = timed([sys.executable, "-m", "gfpcheck", "check", "--patch", "-", "--cache-dir", str(cache),
                      "-j", str(jobs), "--terse", str(tree)], stdin=patch[0].encode())
        figures["gate"] = {"seconds": gate["seconds"], "exit": gate["exit"], "patched": patch[1],
                           "peak_rss_mib": gate["peak_rss_mib"],
                           "output": gate["stdout"].decode(errors="replace").splitlines(),
                           "summary": gate["stderr"].strip().splitlines()[-1:]}
    runs = [*colds, warm, touched, edit] + ([figures["gate"]] if "gate" in figures else [])
    figures["peak_rss_mib"] = max(run["peak_rss_mib"] for run in runs)
    figures["cold_over_floor"] = round(cold["seconds"] / floor, 2)
    for name in ("warm", "warm_touched", "warm_edited"):
        figures[f"{name}_over_cold"] = round(figures[name]["seconds"] / cold["seconds"], 3)
    return figures


# -- function recovery ----------------------------------------------------------

def recovery(tree: Path, jobs: int, cache: Path) -> dict:
    """Share of Universal Ctags' function definitions under RECOVERY_DIRS that gfpcheck found."""
    if shutil.which("ctags") is None or b"Universal Ctags" not in subprocess.run(
            ["ctags", "--version"], capture_output=True, check=False).stdout:
        log("Universal Ctags not found (apt-get install universal-ctags): recovery not measured")
        return {}
    dirs = [d for d in RECOVERY_DIRS if (tree / d).is_dir()]
    listing = subprocess.run(
        ["ctags", "-R", "--languages=C", "--langmap=C:.c.h", "--kinds-C=f", "-x", "--_xformat=%F\t%n\t%N", "-f", "-",
         *dirs], cwd=tree, capture_output=True, check=True).stdout.decode(errors="replace")
    options = ScanOptions(paths=tuple(tree / d for d in dirs), root=tree, jobs=jobs, cache_dir=cache,
                          excludes=DEFAULT_EXCLUDES)
    found = {(facts.path, fn.name) for facts in tree_facts(options) for fn in facts.functions}
    lines_of: dict[str, list[str]] = {}
    expected, missing = set(), []
    # ctags names a function defined through a macro (SYSCALL_DEFINE3(open, ...))
    # after the macro; the rules say what name the macro gives it (sys_open).
    name_macros = load_rules().name_macros
    for row in listing.splitlines():
        path, line, name = row.split("\t")
        if name in name_macros:
            if path not in lines_of:
                lines_of[path] = (tree / path).read_text(errors="replace").splitlines()
            match = re.search(rf"{name}\(\s*(\w+)", lines_of[path][int(line) - 1])
            if not match:
                continue
            name = name_macros[name].format(match.group(1))
        expected.add((path, name))
    missing = sorted(expected - found)
    share = 1 - len(missing) / len(expected) if expected else 0.0
    return {"dirs": dirs, "ctags_functions": len(expected), "found": len(expected) - len(missing),
            "share": round(share, 5), "missing": [f"{p}: {n}" for p, n in missing]}


# -- report ---------------------------------------------------------------------

def print_tree(version: str, figures: dict) -> None:
    print(f"linux-source-{version}: {figures['files']} files, {figures['jobs']} processes")
    runs = ", ".join(f"{seconds:.1f}" for seconds in figures["floor_runs"])
    print(f"  parse-only floor     {figures['floor_seconds']:8.1f} s   (fastest of {runs})")
    for name in ("cold", "warm", "warm_touched", "warm_edited"):
        run = figures[name]
        if name == "cold":
            ratio = f"   (fastest of {', '.join(f'{seconds:.1f}' for seconds in figures['cold_runs'])})"
        else:
            ratio = f"   {figures[name + '_over_cold'] * 100:5.1f} % of cold"
        print(f"  {name.replace('_', ' '):20} {run['seconds']:8.1f} s   peak {run['peak_rss_mib']:6} MiB{ratio}")
    print(f"  cold / floor         {figures['cold_over_floor']:8.2f}")
    print(f"  peak RSS             {figures['peak_rss_mib']:8} MiB (whole process tree)")
    stages = ", ".join(f"{k} {v:.1f}" for k, v in figures["cold"]["stages"].items())
    print(f"  cold stages (s)      {stages}")
    print(f"  findings             {json.dumps(figures['cold']['findings'], sort_keys=True)}")
    digests = {name: figures[name]["findings_digest"] for name in ("cold", "warm", "warm_touched")}
    same = "the same" if len(set(digests.values())) == 1 else "DIFFERENT"
    print(f"  findings digest      {digests['cold']} (cold, warm, warm touched: {same})")
    if "gate" in figures:
        gate = figures["gate"]
        print(f"  gate check --patch   {gate['seconds']:8.1f} s   exit {gate['exit']}   ({gate['patched']})")
        for line in gate["output"] + gate["summary"]:
            print(f"    {line}")


def main() -> None:
    with_huge_pages()  # as gfpcheck's console entry does: the floor's parses allocate like the scans
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", choices=TREES, help="Tree to measure (default: both).")
    parser.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeat", type=int, default=2,
                        help="Times the floor and the cold scan are measured; the fastest counts (default: 2).")
    parser.add_argument("--no-recovery", action="store_true", help="Skip the Universal Ctags comparison.")
    parser.add_argument("--json", type=Path, help="Where to write the figures (default: <bench dir>/bench.json).")
    args = parser.parse_args()
    base = bench_dir()
    base.mkdir(parents=True, exist_ok=True)
    results: dict = {"jobs": args.jobs, "trees": {}}
    for version in args.tree or TREES:
        tree = fetch(version, base)
        results["trees"][version] = figures = bench_tree(version, tree, args.jobs, base, max(1, args.repeat))
        print_tree(version, figures)
        sys.stdout.flush()
    if not args.no_recovery:
        tree = fetch("6.12", base)
        results["recovery_6.12"] = figures = recovery(tree, args.jobs, base / "scan-cache" / "6.12")
        if figures:
            print(f"function recovery, 6.12 {'/ '.join(figures['dirs'])}/: {figures['found']} of "
                  f"{figures['ctags_functions']} ctags definitions = {figures['share'] * 100:.2f} %")
            for line in figures["missing"][:15]:
                print(f"  missing {line}")
    out = args.json or base / "bench.json"
    out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"figures written to {out}")


if __name__ == "__main__":
    main()
