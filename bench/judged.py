#!/usr/bin/env python3
"""Re-scan a tree and report, for the findings judged by hand in bench/judged/,
which real ones are still reported and which false ones are gone.

    python bench/judged.py [--tree 6.12] [--no-kconfig] [--cache-dir DIR]
    python bench/judged.py --sample SCAN.json [--seed 13]

A judged finding is matched by rule, file and function (lines move between
point releases), else by rule, file and line.  By default the tree is scanned
with Debian's amd64 config, as judged.  A benchmark, not a test: it asserts
nothing.

--sample picks findings to read from a scan's JSON, at random with a fixed
seed: SAMPLE[severity] of each severity, among the findings shown at the
default confidence (medium and high), and prints them as stubs to fill in
(verdict, worth_patch, reason, date) with each chain step to open.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

from run import bench_dir, fetch, fetch_config, log  # noqa: E402


def judged(tree_version: str) -> list[dict]:
    """Every judged finding for trees of `tree_version` (files named `<version>-*.yaml`)."""
    entries = []
    for path in sorted((REPO / "bench" / "judged").glob(f"{tree_version}-*.yaml")):
        for entry in yaml.safe_load(path.read_text()) or []:
            # YAML reads a bare `false` or `no` as a boolean
            verdict = entry["verdict"]
            worth = entry.get("worth_patch", "")
            entries.append({**entry, "source": path.name,
                            "verdict": ("real" if verdict else "false") if isinstance(verdict, bool) else verdict,
                            "worth_patch": ("yes" if worth else "no") if isinstance(worth, bool) else worth})
    return entries


def reported(tree: Path, cache: Path, kconfig: Path | None) -> list[dict]:
    command = [sys.executable, "-m", "gfpcheck", "scan", "--format", "json", "-q", "--min-confidence", "low",
               "--cache-dir", str(cache), *(["--kconfig", str(kconfig)] if kconfig else []), str(tree)]
    run = subprocess.run(command, capture_output=True, text=True, check=False, cwd=REPO)
    if run.returncode not in (0, 1):
        sys.exit(f"judged: the scan failed (exit {run.returncode}): {run.stderr.strip()[-300:]}")
    return json.loads(run.stdout)["findings"]


def still_reported(entry: dict, findings: list[dict]) -> bool:
    """Whether a finding of the entry's rule is at its place, or, reported at a fix
    site, covers the allocation there."""
    for f in findings:
        if f["rule"] != entry["rule"]:
            continue
        for place in (f, *f.get("covers", ())):
            if place["file"] == entry["file"] and (
                    place["function"] == entry.get("function") or place["line"] == entry["line"]):
                return True
    return False


SAMPLE = {"error": 13, "warning": 9, "note": 8}


def sample(scan: Path, seed: int) -> None:
    """Print the stubs of a fixed random sample of a scan's findings."""
    findings = [f for f in json.loads(scan.read_text())["findings"] if f["confidence"] in ("medium", "high")]
    picked = []
    for severity, count in SAMPLE.items():
        pool = sorted((f for f in findings if f["severity"] == severity),
                      key=lambda f: (f["file"], f["line"], f["rule"]))
        picked += random.Random(seed).sample(pool, min(count, len(pool)))
    stubs = [{"rule": f["rule"], "file": f["file"], "line": f["line"], "function": f["function"],
              "confidence": f["confidence"], "message": f["message"],
              "chain": [f"{s['file']}:{s['line']} {s['function']}: {s['note']}" for s in f["chain"]],
              "covers": [f"{c['file']}:{c['line']} {c['function']} {c['allocator']}({c['gfp']})"
                         for c in f.get("covers", ())],
              "verdict": "", "worth_patch": "", "reason": "", "date": ""} for f in picked]
    print(yaml.safe_dump(stubs, sort_keys=False, width=120, allow_unicode=True), end="")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", default="6.12")
    parser.add_argument("--no-kconfig", action="store_true", help="scan every file, as without a configuration")
    parser.add_argument("--cache-dir", type=Path, help="facts cache (default: the bench directory's)")
    parser.add_argument("--sample", type=Path, metavar="SCAN", help="print a sample of this scan's findings to judge")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    if args.sample:
        sample(args.sample, args.seed)
        return
    base = bench_dir()
    tree = fetch(args.tree, base)
    kconfig = None if args.no_kconfig else fetch_config(args.tree, base)
    entries = judged(args.tree)
    if not entries:
        sys.exit(f"judged: no bench/judged/{args.tree}-*.yaml")
    log(f"{args.tree}: scanning {'with ' + kconfig.name if kconfig else 'without a configuration'}")
    findings = reported(tree, args.cache_dir or base / "judged-cache" / args.tree, kconfig)
    tally: Counter = Counter()
    print("| rule | file:line | function | verdict | worth a patch | reported now |")
    print("|---|---|---|---|---|---|")
    for entry in entries:
        now = still_reported(entry, findings)
        verdict = entry["verdict"]
        tally[(entry["rule"], verdict, now)] += 1
        print(f"| {entry['rule']} | {entry['file']}:{entry['line']} | {entry.get('function', '')} | {verdict} "
              f"| {entry.get('worth_patch', '')} | {'yes' if now else 'no'} |")
    print()
    rules = sorted({rule for rule, _, _ in tally})
    print("| rule | real kept | false gone |")
    print("|---|---|---|")
    for rule in rules:
        real = tally[(rule, "real", True)], tally[(rule, "real", True)] + tally[(rule, "real", False)]
        false = tally[(rule, "false", False)], tally[(rule, "false", True)] + tally[(rule, "false", False)]
        print(f"| {rule} | {real[0]} of {real[1]} | {false[0]} of {false[1]} |")


if __name__ == "__main__":
    main()
