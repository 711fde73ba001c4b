#!/usr/bin/env python3
"""Cold scans of one tree by two revisions of gfpcheck, in turn, in one run:
is a change slower than what it replaces?

    python bench/versus.py BASE_REV [HEAD_REV] [--tree 6.12] [--repeat 2]

Each revision is checked out (git worktree) under $GFPCHECK_BENCH_DIR/versus;
every scan starts with an empty cache, and the revisions alternate, so a
neighbour's load on a shared machine falls on both.  Prints each run, the
fastest of each revision, the ratio and each revision's stages and findings
per rule.  A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

from run import bench_dir, fetch, log, scan_figures, timed  # noqa: E402


def checkout(rev: str, base: Path) -> tuple[str, Path]:
    """The commit `rev` names, checked out (once) in a worktree of its own."""
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--verify", f"{rev}^{{commit}}"],
                            capture_output=True, text=True, check=True).stdout.strip()
    where = base / "versus" / commit[:12]
    if not (where / "gfpcheck").is_dir():
        where.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-f", str(where), commit],
                       check=True, capture_output=True)
    return commit[:12], where


def cold_scan(code: Path, tree: Path, jobs: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="gfpcheck-versus-") as cache:
        command = [sys.executable, "-m", "gfpcheck", "scan", "--format", "json", "--timings", "-q", "-j", str(jobs),
                   "--cache-dir", cache, str(tree)]
        run = timed(command, cwd=code, pythonpath=code)
    return scan_figures(run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base")
    parser.add_argument("head", nargs="?", default="HEAD")
    parser.add_argument("--tree", default="6.12")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("-j", "--jobs", type=int, default=2)
    args = parser.parse_args()
    base_dir = bench_dir()
    tree = fetch(args.tree, base_dir)
    sides = [checkout(args.base, base_dir), checkout(args.head, base_dir)]
    runs: dict[str, list[dict]] = {commit: [] for commit, _ in sides}
    for attempt in range(1, args.repeat + 1):
        for commit, code in sides:
            log(f"{args.tree}: cold scan by {commit} ({attempt} of {args.repeat})")
            figures = cold_scan(code, tree, args.jobs)
            runs[commit].append(figures)
            print(f"{commit} run {attempt}: {figures['seconds']:.1f} s, exit {figures['exit']}", flush=True)
    best = {commit: min(runs[commit], key=lambda r: r["seconds"]) for commit in runs}
    (base_commit, _), (head_commit, _) = sides
    print(json.dumps({commit: {"fastest_seconds": best[commit]["seconds"], "stages": best[commit]["stages"],
                               "findings": best[commit]["findings"], "peak_rss_mib": best[commit]["peak_rss_mib"],
                               "all_seconds": [r["seconds"] for r in runs[commit]]}
                      for commit in runs}, indent=2, sort_keys=True))
    ratio = best[head_commit]["seconds"] / best[base_commit]["seconds"]
    print(f"{args.tree}: {head_commit} cold {best[head_commit]['seconds']:.1f} s against {base_commit} "
          f"{best[base_commit]['seconds']:.1f} s: {ratio:.3f} x ({(ratio - 1) * 100:+.1f} %)")
    if shutil.which("git"):
        subprocess.run(["git", "-C", str(REPO), "worktree", "prune"], check=False)


if __name__ == "__main__":
    main()
