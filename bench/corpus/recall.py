#!/usr/bin/env python3
"""gfpcheck's recall on the corpus of real 6.1 -> 6.12 context fixes.

    python bench/corpus/recall.py --json-6.1 A.json --json-6.12 B.json
    python bench/corpus/recall.py --run              # scan both trees first
    python bench/corpus/recall.py --run --markdown   # the table for a closing note

For every case of bench/corpus/cases.yaml it says whether the 6.1 site is
flagged by the expected rule and whether the fixed 6.12 site is quiet.  A
finding of the expected rule touches a site when

  site      its file and line are the site's, or it is reported at a fix
            site and covers an allocation at the site's file:line, or
  chain     one step of its chain is at the site's file:line, or
  function  it is reported in the case's function of the same file (a
            finding reported at a caller of the site).

"6.1 flagged" means some finding touches the 6.1 site; "6.12 quiet" means no
finding touches the 6.12 site (same test, with the 6.12 function).  When a
case names the allocation its call leads to (alloc_6_1), a finding of any
rule at that allocation whose chain takes another path is shown as a note
("alloc ... flagged (rule) via another chain"), not counted: gfpcheck
reports one chain per allocation site, the shortest.

--run scans each tree with `python -m gfpcheck scan <tree> --format json
--min-confidence low -q`, PYTHONPATH set to --gfpcheck-root (default: this
repository), a cache under ~/.cache/gfpcheck-bench/cache-<version>, one tree
after the other, under `nice -n 10` (--nice 0 to run at normal priority).
Kernel trees are looked for under $GFPCHECK_BENCH_DIR/trees (default
~/.cache/gfpcheck-bench/trees/linux-source-<version>), as bench/run.py
unpacks them.  This is a benchmark: it prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
BENCH = Path(os.environ.get("GFPCHECK_BENCH_DIR") or Path.home() / ".cache" / "gfpcheck-bench")
TREES = ("6.1", "6.12")
FIELDS_REQUIRED = ("id", "kind", "file", "function", "line_6_1", "line_6_12", "expect_6_1", "expect_6_12")


# -- cases ----------------------------------------------------------------------

def parse_cases(text: str, source: str = "cases.yaml") -> list[dict]:
    """Read the corpus: a YAML list of flat mappings whose values are JSON
    scalars or flow lists (the subset cases.yaml is written in), so no YAML
    library is needed."""
    cases: list[dict] = []
    current: dict | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line.startswith("- "):
            current = {}
            cases.append(current)
            line = "  " + line[2:]
        if current is None or not line.startswith("  ") or ":" not in line:
            raise SystemExit(f"recall: {source}:{number}: expected '- key: value' or '  key: value'")
        key, _, value = line.strip().partition(":")
        value = value.strip()
        try:
            current[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            current[key.strip()] = value
    for case in cases:
        missing = [f for f in FIELDS_REQUIRED if f not in case]
        if missing:
            raise SystemExit(f"recall: {source}: case {case.get('id', '?')} lacks {', '.join(missing)}")
    ids = Counter(c["id"] for c in cases)
    dup = [i for i, n in ids.items() if n > 1]
    if dup:
        raise SystemExit(f"recall: {source}: duplicate ids: {', '.join(dup)}")
    return cases


def site(case: dict, version: str) -> tuple[str, int, str]:
    if version == "6.1":
        return case["file"], int(case["line_6_1"]), case["function"]
    return (case.get("file_6_12") or case["file"], int(case["line_6_12"]),
            case.get("function_6_12") or case["function"])


def split_loc(text: str | None) -> tuple[str, int] | None:
    if not text:
        return None
    path, _, line = str(text).rpartition(":")
    return path, int(line)


# -- matching -------------------------------------------------------------------

def touches(finding: dict, path: str, line: int, function: str) -> str | None:
    """How a finding touches a site: 'site', 'chain', 'function' or None."""
    if finding.get("file") == path and finding.get("line") == line:
        return "site"
    if any(c.get("file") == path and c.get("line") == line for c in finding.get("covers") or ()):
        return "site"  # reported once at its fix site, for this allocation among others
    for step in finding.get("chain") or ():
        if step.get("file") == path and step.get("line") == line:
            return "chain"
    if finding.get("file") == path and finding.get("function") == function:
        return "function"
    return None


def judge(case: dict, version: str, findings: list[dict]) -> dict:
    """Whether the expected rule touches the case's site in this tree, and notes."""
    rule = case["expect_6_1"]
    path, line, function = site(case, version)
    how = None
    for f in findings:
        if f.get("rule") == rule:
            how = touches(f, path, line, function)
            if how:
                break
    notes = []
    others = sorted({f["rule"] for f in findings
                     if f.get("rule") != rule and touches(f, path, line, function)})
    if others:
        notes.append(f"other rules touch the site: {', '.join(others)}")
    alloc = split_loc(case.get("alloc_6_1" if version == "6.1" else "alloc_6_12"))
    if alloc and not how:
        at_alloc = sorted({f["rule"] for f in findings
                           if alloc in {(p.get("file"), p.get("line")) for p in (f, *(f.get("covers") or ()))}})
        if at_alloc:
            notes.append(f"alloc {alloc[0]}:{alloc[1]} flagged ({', '.join(at_alloc)}) via another chain")
    return {"how": how, "notes": notes}


# -- running gfpcheck -----------------------------------------------------------

def tree_path(version: str, trees_dir: Path) -> Path:
    return trees_dir / f"linux-source-{version}"


def run_scan(version: str, args: argparse.Namespace) -> Path:
    tree = tree_path(version, args.trees_dir)
    if not (tree / "Makefile").is_file():
        raise SystemExit(f"recall: {tree} is not an unpacked kernel tree (python bench/run.py fetches it)")
    out_dir = BENCH / "recall"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"scan-{version}.json"
    cmd = [args.python, "-m", "gfpcheck", "scan", str(tree), "--format", "json",
           "--min-confidence", "low", "-q", "--cache-dir", str(BENCH / f"cache-{version}")]
    if args.nice:
        cmd = ["nice", "-n", str(args.nice)] + cmd
    env = dict(os.environ, PYTHONPATH=str(args.gfpcheck_root))
    print(f"recall: scanning {tree} ...", file=sys.stderr, flush=True)
    start = time.monotonic()
    with open(out, "wb") as fh:
        proc = subprocess.run(cmd, check=False, stdout=fh, env=env, cwd=str(args.gfpcheck_root))
    if proc.returncode not in (0, 1):
        raise SystemExit(f"recall: gfpcheck exited {proc.returncode} on {tree}")
    print(f"recall: {version}: {time.monotonic() - start:.0f} s -> {out}", file=sys.stderr, flush=True)
    return out


def load_findings(path: Path) -> list[dict]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise SystemExit(f"recall: cannot read gfpcheck JSON {path}: {exc}")
    if not isinstance(data, dict) or not isinstance(data.get("findings"), list):
        raise SystemExit(f"recall: {path} is not gfpcheck JSON output (no 'findings' list)")
    return data["findings"]


# -- output ---------------------------------------------------------------------

def evaluate(cases: list[dict], findings: dict[str, list[dict] | None]) -> list[dict]:
    rows = []
    for case in cases:
        row = {"case": case}
        for version in TREES:
            row[version] = judge(case, version, findings[version]) if findings[version] is not None else None
        rows.append(row)
    return rows


def mark(result: dict | None, want_flagged: bool) -> str:
    if result is None:
        return "n/a"
    if want_flagged:
        return f"flagged ({result['how']})" if result["how"] else "missed"
    return "quiet" if not result["how"] else f"FLAGGED ({result['how']})"


def totals(rows: list[dict]) -> tuple[str, str, dict]:
    n = len(rows)
    flagged = sum(1 for r in rows if r["6.1"] and r["6.1"]["how"])
    quiet = sum(1 for r in rows if r["6.12"] and not r["6.12"]["how"])
    per_kind: dict[str, list[int]] = {}
    for r in rows:
        k = per_kind.setdefault(r["case"]["kind"], [0, 0, 0])
        k[0] += 1
        k[1] += bool(r["6.1"] and r["6.1"]["how"])
        k[2] += bool(r["6.12"] and not r["6.12"]["how"])
    first = f"6.1 sites flagged: {flagged} of {n}" if rows and rows[0]["6.1"] is not None else "6.1 sites flagged: n/a"
    second = f"6.12 fixed sites quiet: {quiet} of {n}" if rows and rows[0]["6.12"] is not None else "6.12 fixed sites quiet: n/a"
    return first, second, per_kind


def print_text(rows: list[dict], unseen: list[str]) -> None:
    width = max(len(r["case"]["id"]) for r in rows)
    for r in rows:
        c = r["case"]
        p1, l1, _ = site(c, "6.1")
        p2, l2, _ = site(c, "6.12")
        print(f"{c['id']:<{width}}  {c['expect_6_1']:<17}  6.1 {p1}:{l1} {mark(r['6.1'], True):<18}"
              f"  6.12 {p2}:{l2} {mark(r['6.12'], False)}")
        for version in TREES:
            if r[version]:
                for note in r[version]["notes"]:
                    print(f"{'':<{width}}  {'':<17}  {version}: {note}")
    first, second, per_kind = totals(rows)
    print()
    print(first)
    print(second)
    for kind, (n, f, q) in sorted(per_kind.items()):
        print(f"  {kind}: {f} of {n} flagged, {q} of {n} quiet")
    for rule in unseen:
        print(f"  note: no finding of rule {rule} in either scan")


def print_markdown(rows: list[dict], unseen: list[str]) -> None:
    print("| case | kind | 6.1 site | 6.1 | 6.12 site | 6.12 | notes |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        c = r["case"]
        p1, l1, f1 = site(c, "6.1")
        p2, l2, f2 = site(c, "6.12")
        notes = "; ".join(f"{v}: {n}" for v in TREES if r[v] for n in r[v]["notes"])
        print(f"| {c['id']} | {c['kind']} | `{p1}:{l1}` {f1}() | {mark(r['6.1'], True)} "
              f"| `{p2}:{l2}` {f2}() | {mark(r['6.12'], False)} | {notes} |")
    first, second, per_kind = totals(rows)
    print()
    print(f"{first}; {second}.")
    print()
    for kind, (n, f, q) in sorted(per_kind.items()):
        print(f"- {kind}: {f} of {n} flagged in 6.1, {q} of {n} quiet in 6.12")
    for rule in unseen:
        print(f"- no finding of rule `{rule}` in either scan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="gfpcheck's recall on the 6.1 -> 6.12 corpus of context fixes")
    ap.add_argument("--cases", type=Path, default=HERE / "cases.yaml")
    ap.add_argument("--json-6.1", dest="json_61", type=Path, help="gfpcheck JSON output for the 6.1 tree")
    ap.add_argument("--json-6.12", dest="json_612", type=Path, help="gfpcheck JSON output for the 6.12 tree")
    ap.add_argument("--run", action="store_true", help="scan both trees with gfpcheck first")
    ap.add_argument("--trees-dir", type=Path, default=BENCH / "trees")
    ap.add_argument("--gfpcheck-root", type=Path, default=REPO, help="PYTHONPATH for --run (default: this repository)")
    ap.add_argument("--python", default=sys.executable, help="interpreter for --run")
    ap.add_argument("--nice", type=int, default=10, help="niceness of the scans of --run (0: none)")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = ap.parse_args(argv)

    cases = parse_cases(args.cases.read_text(), str(args.cases))
    paths = {"6.1": args.json_61, "6.12": args.json_612}
    if args.run:
        for version in TREES:
            if paths[version] is None:
                paths[version] = run_scan(version, args)
    if not any(paths.values()):
        ap.error("give --json-6.1 and/or --json-6.12, or --run")
    findings = {v: (load_findings(p) if p else None) for v, p in paths.items()}
    rows = evaluate(cases, findings)
    seen = {f.get("rule") for fs in findings.values() if fs for f in fs}
    unseen = sorted({c["expect_6_1"] for c in cases} - seen)
    (print_markdown if args.markdown else print_text)(rows, unseen)
    return 0


if __name__ == "__main__":
    sys.exit(main())
