#!/usr/bin/env python3
"""What one change to a file reaches in the whole-program analysis of a real
tree: the measurement behind incremental analysis.

For each change (the gate's mask patch, the bench's on-disk mask edit, and
an edit that only moves lines, as a control) the tree is analysed as it is
and with the changed file given in memory, and the two analyses compared:

- the call graph's largest strongly connected component, and the cone of
  the changed file: the functions that can reach one of its functions
  (whose summaries a change may alter), and the functions those can reach
  (where contexts may then change);
- what did change: function summaries, the states functions are entered in,
  and findings.

A change's cost in an incremental engine is bounded below by what changed
and, for an engine that reruns a cone, by that cone.  Run with the warm
cache of bench/incremental.py so that only the analysis is timed.

    python bench/reach.py                        # 6.12 with Debian's amd64 config

A benchmark, not a test: it prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from collections import deque
from pathlib import Path

import networkx as nx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from incremental import MASK_FILE, MOVE_FILE, MOVE_TEXT  # noqa: E402  (the bench's own helpers)
from run import GATE_FILE, GATE_FROM, GATE_TO, bench_dir, fetch, fetch_config, gate_patch, log  # noqa: E402

from gfpcheck.checks import Analysis  # noqa: E402
from gfpcheck.kconfig import load_config  # noqa: E402
from gfpcheck.pipeline import ScanOptions, ScanResult, scan  # noqa: E402
from gfpcheck.propagate.state import members  # noqa: E402


def analyse(tree: Path, cache: Path, jobs: int, kconfig, overrides=()) -> tuple[ScanResult, float]:
    options = ScanOptions(paths=(tree,), root=tree, jobs=jobs, cache_dir=cache, kconfig=kconfig,
                          overrides=overrides, keep_analysis=True, reuse_result=False, min_confidence="low")
    start = time.perf_counter()
    result = scan(options)
    return result, time.perf_counter() - start


def reach(starts: list[int], adjacency) -> set[int]:
    seen, queue = set(starts), deque(starts)
    while queue:
        for other in adjacency[queue.popleft()]:
            if other not in seen:
                seen.add(other)
                queue.append(other)
    return seen


def entered(analysis: Analysis, fid: int) -> frozenset:
    """The states a function is entered in, as states (ids differ between analyses)."""
    space = analysis.effects.space
    return frozenset(space.state(state) for state in members(analysis.contexts.reached.get(fid, 0)))


def by_name(analysis: Analysis) -> dict[tuple[str, str], int]:
    """Function ids by (file, name); ids of two analyses differ when functions are added."""
    program = analysis.program
    return {(program.path(fid), f.name): fid for fid, f in enumerate(program.functions)}


def compare(before: ScanResult, after: ScanResult, rel: str) -> dict:
    a, b = before.analysis, after.analysis
    program = a.program
    total = len(program.functions)
    mine = [fid for fid in range(total) if program.path(fid) == rel]
    up = reach(mine, program.graph._pred)
    down = reach(list(up), program.graph._succ)
    names_a, names_b = by_name(a), by_name(b)
    shared = names_a.keys() & names_b.keys()
    summaries = sum(1 for key in shared
                    if a.effects.summaries.get(names_a[key]) != b.effects.summaries.get(names_b[key]))
    states = sum(1 for key in shared if entered(a, names_a[key]) != entered(b, names_b[key]))
    old = {f.fingerprint for f in before.findings}
    new = {f.fingerprint for f in after.findings}
    return {"functions": total, "in_file": len(mine), "up": len(up), "down": len(down),
            "summaries_changed": summaries, "entry_states_changed": states,
            "functions_added_or_removed": len(names_a.keys() ^ names_b.keys()),
            "findings_gone": len(old - new), "findings_new": len(new - old)}


def changes(tree: Path) -> list[tuple[str, str, bytes]]:
    """(name, file, new content) for each change measured."""
    out = []
    gate = gate_patch(tree)
    if gate is not None:
        data = (tree / GATE_FILE).read_bytes()
        line = int(gate[1].rsplit(":", 1)[1]) - 1
        lines = data.splitlines(keepends=True)
        lines[line] = lines[line].replace(GATE_FROM.encode(), GATE_TO.encode(), 1)
        out.append(("gate mask", GATE_FILE, b"".join(lines)))
    data = (tree / MASK_FILE).read_bytes()
    out.append(("edit mask", MASK_FILE, data.replace(GATE_FROM.encode(), GATE_TO.encode(), 1)))
    out.append(("edit moved", MOVE_FILE, b"\n" + MOVE_TEXT.encode() + (tree / MOVE_FILE).read_bytes()))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", default="6.12", choices=("6.1", "6.12"))
    parser.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--no-kconfig", action="store_true", help="Scan every file, without Debian's config.")
    args = parser.parse_args()
    base = bench_dir()
    tree = fetch(args.tree, base)
    kconfig = None if args.no_kconfig else load_config(fetch_config(args.tree, base))
    cache = base / "incremental-cache"
    log("analysing the tree as it is")
    before, seconds = analyse(tree, cache, args.jobs, kconfig)
    print(f"linux-source-{args.tree}: whole analysis from cached facts {seconds:.1f} s "
          f"({', '.join(f'{k} {v:.1f}' for k, v in before.stats.seconds.items())})")
    program = before.analysis.program
    largest = max(len(c) for c in nx.strongly_connected_components(program.graph))
    print(f"  call graph: {len(program.functions)} functions, {program.graph.number_of_edges()} edges; "
          f"the largest strongly connected component holds {largest} ({largest / len(program.functions):.1%})")
    for name, rel, data in changes(tree):
        log(f"analysing with {name} ({rel})")
        after, seconds = analyse(tree, cache, args.jobs, kconfig, ((rel, data),))
        figures = compare(before, after, rel)
        total = figures["functions"]
        print(f"  {name} ({rel}, {figures['in_file']} functions), analysed in {seconds:.1f} s:")
        print(f"      cone: {figures['up']} functions reach the file ({figures['up'] / total:.1%} of {total}), "
              f"{figures['down']} are reached from those ({figures['down'] / total:.1%})")
        print(f"      changed: {figures['summaries_changed']} summaries, "
              f"{figures['entry_states_changed']} functions' entry states, "
              f"{figures['functions_added_or_removed']} functions added or removed; "
              f"findings {figures['findings_new']} new, {figures['findings_gone']} gone")
        del after
        gc.collect()


if __name__ == "__main__":
    main()
