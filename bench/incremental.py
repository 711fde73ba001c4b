#!/usr/bin/env python3
"""The maintainer's loop on a real tree, measured in one run against a cold scan:
a re-scan of the unchanged tree, the gate on two one-file patches (a comment
line inserted at the top of a file, which moves every line below it; and a
mask changed, which changes what the analysis knows), then re-scans after the
same two changes made on disk.  Each re-scan's output is compared, byte for
byte, with a cold scan of the same edited tree in a cache of its own; each
gate's output is printed.

    python bench/incremental.py                  # 6.12 with Debian's amd64 config
    python bench/incremental.py --tree 6.1 --no-kconfig

The tree is edited in place and restored, timestamps included.  A benchmark,
not a test: it prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import (  # noqa: E402  (the bench's own helpers, beside this script)
    GATE_FROM,
    GATE_TO,
    bench_dir,
    fetch,
    fetch_config,
    gate_patch,
    log,
    timed,
)

from gfpcheck.cli import with_huge_pages  # noqa: E402

MOVE_FILE = "fs/btrfs/xattr.c"  # the file a comment is inserted at the top of
MOVE_TEXT = "/* gfpcheck bench: a line inserted above everything */\n"
MASK_FILE = "fs/btrfs/inode.c"  # the file whose first GFP_NOFS becomes GFP_KERNEL on disk


def scan(tree: Path, cache: Path, jobs: int, kconfig: Path | None) -> dict:
    command = [sys.executable, "-m", "gfpcheck", "scan", "--format", "json", "--timings", "-q", "-j", str(jobs),
               "--cache-dir", str(cache), *(["--kconfig", str(kconfig)] if kconfig else []), str(tree)]
    run = timed(command)
    document = json.loads(run["stdout"]) if run["exit"] in (0, 1) else {}
    stats = document.get("stats", {})
    figures = {"seconds": run["seconds"], "exit": run["exit"], "peak_rss_mib": run["peak_rss_mib"],
               "stages": stats.pop("seconds", {}), "cache": stats.pop("cache", {}),
               "findings": len(document.get("findings", []))}
    # What a report without --timings holds: compared byte for byte, as a digest.
    figures["digest"] = hashlib.sha256(json.dumps(document, sort_keys=True, indent=2).encode()).hexdigest()[:16]
    return figures


def gate(tree: Path, cache: Path, jobs: int, kconfig: Path | None, patch: str) -> dict:
    command = [sys.executable, "-m", "gfpcheck", "check", "--patch", "-", "--cache-dir", str(cache), "-j", str(jobs),
               "--terse", *(["--kconfig", str(kconfig)] if kconfig else []), str(tree)]
    run = timed(command, stdin=patch.encode())
    return {"seconds": run["seconds"], "exit": run["exit"], "peak_rss_mib": run["peak_rss_mib"],
            "output": run["stdout"].decode(errors="replace").splitlines(),
            "summary": run["stderr"].strip().splitlines()[-1:]}


def move_patch(tree: Path) -> str:
    """A one-file unified diff inserting MOVE_TEXT above MOVE_FILE's first line."""
    first = (tree / MOVE_FILE).read_text(errors="surrogateescape").splitlines(keepends=True)[0]
    return f"--- a/{MOVE_FILE}\n+++ b/{MOVE_FILE}\n@@ -1,1 +1,2 @@\n+{MOVE_TEXT} {first}"


class Edited:
    """One file of the tree with other content for a while; restored with its stamps."""

    def __init__(self, tree: Path, rel: str):
        self.path = tree / rel
        self.original = self.path.read_bytes()
        self.stat = self.path.stat()

    def write(self, data: bytes) -> None:
        self.path.write_bytes(data)

    def restore(self) -> None:
        self.path.write_bytes(self.original)
        os.utime(self.path, ns=(self.stat.st_atime_ns, self.stat.st_mtime_ns))


def measure(tree: Path, jobs: int, kconfig: Path | None, base: Path) -> dict:
    cache, scratch = base / "incremental-cache", base / "incremental-cold"
    shutil.rmtree(cache, ignore_errors=True)
    log("cold scan")
    cold = scan(tree, cache, jobs, kconfig)
    log("re-scan, nothing changed")
    figures: dict = {"cold": cold, "no_change": scan(tree, cache, jobs, kconfig)}
    figures["no_change"]["same_as_cold"] = figures["no_change"]["digest"] == cold["digest"]
    mask = gate_patch(tree)
    # The gates first: a change the cache has seen analysed before would reuse that result.
    for name, patch in (("gate_moved", move_patch(tree)), ("gate_mask", mask[0] if mask else None)):
        if patch is not None:
            log(f"gate on a one-file patch ({name})")
            figures[name] = gate(tree, cache, jobs, kconfig, patch)
    # Not the gate's own change: a tree the cache has seen analysed would reuse that result.
    edits = {"edit_moved": (MOVE_FILE, lambda data: b"\n" + MOVE_TEXT.encode() + data),
             "edit_mask": (MASK_FILE, lambda data: data.replace(GATE_FROM.encode(), GATE_TO.encode(), 1))}
    for name, (rel, change) in edits.items():
        edited = Edited(tree, rel)
        try:
            edited.write(change(edited.original))
            log(f"re-scan after {name} ({rel})")
            warm = scan(tree, cache, jobs, kconfig)
            log(f"cold scan of the same edited tree, for comparison ({name})")
            shutil.rmtree(scratch, ignore_errors=True)
            reference = scan(tree, scratch, jobs, kconfig)
            warm["same_as_cold"] = warm["digest"] == reference["digest"]
            warm["cold_seconds"] = reference["seconds"]
            figures[name] = warm
        finally:
            edited.restore()
            shutil.rmtree(scratch, ignore_errors=True)
    log("re-scan of the restored tree")
    figures["restored"] = scan(tree, cache, jobs, kconfig)
    figures["restored"]["same_as_cold"] = figures["restored"]["digest"] == cold["digest"]
    for name, run in figures.items():
        if name != "cold":
            run["of_cold"] = round(run["seconds"] / cold["seconds"], 4)
    return figures


def report(version: str, configured: bool, figures: dict) -> None:
    cold = figures["cold"]
    print(f"linux-source-{version} ({'Debian amd64 config' if configured else 'no config'}): "
          f"cold {cold['seconds']:.1f} s, {cold['findings']} findings, peak {cold['peak_rss_mib']} MiB")
    for name in ("no_change", "gate_moved", "gate_mask", "edit_moved", "edit_mask", "restored"):
        run = figures.get(name)
        if run is None:
            continue
        same = ""
        if "same_as_cold" in run:
            same = "   byte-identical to cold" if run["same_as_cold"] else "   DIFFERS FROM COLD"
        cache = run.get("cache", {})
        how = (" (result moved)" if cache.get("files_moved") else " (result reused)" if cache.get("result_reused")
               else " (analysed)" if cache else "")
        print(f"  {name:12} {run['seconds']:7.1f} s  {run['of_cold'] * 100:5.1f} % of cold{how}{same}")
        for line in run.get("output", []) + run.get("summary", []):
            print(f"      {line}")


def main() -> None:
    with_huge_pages()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", default="6.12", choices=("6.1", "6.12"))
    parser.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--no-kconfig", action="store_true", help="Scan every file, without Debian's config.")
    parser.add_argument("--json", type=Path, help="Where to write the figures (default: <bench dir>/incremental.json).")
    args = parser.parse_args()
    base = bench_dir()
    tree = fetch(args.tree, base)
    kconfig = None if args.no_kconfig else fetch_config(args.tree, base)
    figures = measure(tree, args.jobs, kconfig, base)
    report(args.tree, kconfig is not None, figures)
    out = args.json or base / "incremental.json"
    out.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    print(f"figures written to {out}")


if __name__ == "__main__":
    main()
