"""One report per root cause, at its fix site (gfpcheck/checks/grouping.py)."""

from __future__ import annotations

import json
import shutil

from gfpcheck.checks.grouping import Reported, at_fix_sites, fix_site, units_of
from gfpcheck.findings import ChainStep, Covered, Finding

from .test_cli import FIXTURES, gfpcheck

TREE = FIXTURES / "root-cause"
HANDLE = ChainStep("demofs_resize", "fs/demofs/resize.c", 33, 11, "jbd2_journal_start() takes a transaction handle")
CALL = ChainStep("demofs_resize", "fs/demofs/resize.c", 41, 8, "calls demo_table_resize()")


def allocation(function: str, file: str, line: int, allocator: str = "kmalloc", above: tuple = (),
               confidence: str = "high", rule: str = "nofs-recursion", severity: str = "error") -> Finding:
    """A finding at an allocation reached from demofs's handle through `above`."""
    step = ChainStep(function, file, line, 2, f"{allocator}() with GFP_KERNEL")
    return Finding(rule=rule, severity=severity, file=file, line=line, column=2, function=function,
                   allocator=allocator, gfp="GFP_KERNEL", message=f"{allocator}() with GFP_KERNEL under a handle",
                   chain=(HANDLE, *above, step), confidence=confidence)


def test_allocations_below_one_call_are_one_finding_at_that_call():
    table = ChainStep("demo_table_resize", "lib/demo_table.c", 39, 8, "calls demo_table_grow_bitmap()")
    far = allocation("demo_table_grow_bitmap", "lib/demo_table.c", 23, "kcalloc", (CALL, table), confidence="low")
    near = allocation("demo_table_resize", "lib/demo_table.c", 36, "kmalloc_array", (CALL,), confidence="medium")
    (grouped,) = at_fix_sites([Reported(far, True), Reported(near, True)])
    assert (grouped.file, grouped.line, grouped.column, grouped.function) == ("fs/demofs/resize.c", 41, 8,
                                                                             "demofs_resize")
    # the shortest chain is shown, whole, down to its allocation; the strongest confidence wins
    assert grouped.chain == near.chain and grouped.allocator == "kmalloc_array" and grouped.confidence == "medium"
    assert grouped.message == near.message + "; this call to demo_table_resize() reaches 2 such allocations"
    assert grouped.covers == (Covered("lib/demo_table.c", 23, "demo_table_grow_bitmap", "kcalloc", "GFP_KERNEL"),
                              Covered("lib/demo_table.c", 36, "demo_table_resize", "kmalloc_array", "GFP_KERNEL"))


def test_a_single_allocation_below_the_call_is_reported_at_the_call_too():
    only = allocation("demo_table_resize", "lib/demo_table.c", 36, "kmalloc_array", (CALL,))
    (moved,) = at_fix_sites([Reported(only, True)])
    assert (moved.file, moved.line) == ("fs/demofs/resize.c", 41)
    assert moved.message.endswith("; this call to demo_table_resize() reaches it in demo_table_resize()")
    assert [c.line for c in moved.covers] == [36]


def test_an_allocation_inside_the_subsystem_that_took_the_context_stays_where_it_is():
    direct = allocation("demofs_resize", "fs/demofs/resize.c", 36)
    helper = allocation("demofs_fill", "fs/demofs/fill.c", 9, above=(CALL,))
    assert fix_site(direct) is None and fix_site(helper) is None
    assert at_fix_sites([Reported(direct, True), Reported(helper, True)]) == [direct, helper]


def test_with_kbuild_objects_the_fix_site_is_where_the_chain_first_leaves_the_object():
    """dm-cache takes the block I/O context and calls into persistent-data, which
    calls dm-bufio back in drivers/md: one subsystem, three objects."""
    source = ChainStep("cache_map", "drivers/md/dm-cache-target.c", 10, 1, "implements target_type.map")
    abort = ChainStep("cache_abort", "drivers/md/dm-cache-metadata.c", 20, 2, "calls bm_create()")
    inline = ChainStep("bm_size", "drivers/md/persistent-data/bm.h", 5, 2, "calls bm_create()")
    create = ChainStep("bm_create", "drivers/md/persistent-data/bm.c", 30, 2, "calls dm_bufio_client_create()")
    units = units_of({"drivers/md/dm-cache-target.c": "drivers/md/dm-cache",
                      "drivers/md/dm-cache-metadata.c": "drivers/md/dm-cache",
                      "drivers/md/persistent-data/bm.c": "drivers/md/persistent-data/dm-persistent-data"})

    def at(function: str, file: str, line: int, *above: ChainStep) -> Finding:
        step = ChainStep(function, file, line, 2, "kzalloc() with GFP_KERNEL")
        return Finding(rule="noio-recursion", severity="error", file=file, line=line, column=2, function=function,
                       allocator="kzalloc", gfp="GFP_KERNEL", message="kzalloc() with GFP_KERNEL",
                       chain=(source, abort, *above, step), confidence="high")

    bufio = at("dm_bufio_client_create", "drivers/md/dm-bufio.c", 40, create)
    pool = at("bm_create", "drivers/md/persistent-data/bm.c", 33)
    own = at("cache_abort", "drivers/md/dm-cache-metadata.c", 22)
    assert fix_site(bufio, units) == 1 and fix_site(own, units) is None
    assert fix_site(bufio) is None  # by subsystem, dm-bufio.c is still drivers/md: reported where it is
    # a header's step goes with the unit that includes it: the call into it does not leave the unit
    through_header = at("bm_create", "drivers/md/persistent-data/bm.c", 33, inline)
    assert fix_site(through_header, units) == 1
    (grouped, kept) = at_fix_sites([Reported(bufio, True), Reported(pool, True), Reported(own, True)], units)
    assert (grouped.file, grouped.line, len(grouped.covers)) == ("drivers/md/dm-cache-metadata.c", 20, 2)
    assert kept == own


def test_findings_differ_by_rule_source_or_fix_site_and_untaken_contexts_stay():
    other_call = ChainStep("demofs_resize", "fs/demofs/resize.c", 47, 8, "calls demo_table_resize()")
    one = allocation("demo_table_resize", "lib/demo_table.c", 36, above=(CALL,))
    elsewhere = allocation("demo_table_resize", "lib/demo_table.c", 36, above=(other_call,))
    warned = allocation("demo_table_resize", "lib/demo_table.c", 36, above=(CALL,), rule="nofs-inconsistent",
                        severity="warning")
    scoped = allocation("demo_names_alloc", "lib/demo_names.c", 7, above=(CALL,))
    out = at_fix_sites([Reported(one, True), Reported(elsewhere, True), Reported(warned, True),
                        Reported(scoped, False)])
    assert [(f.rule, f.file, f.line) for f in out] == [
        ("nofs-recursion", "fs/demofs/resize.c", 41), ("nofs-recursion", "fs/demofs/resize.c", 47),
        ("nofs-inconsistent", "fs/demofs/resize.c", 41), ("nofs-recursion", "lib/demo_names.c", 7)]
    assert out[-1] is scoped


def at_mask(unsafe: ChainStep, allocator: str) -> Finding:
    """nofs-inconsistent as it reports an unheld GFP_NOFS: at the mask that starts its
    chain, covering the GFP_KERNEL allocation below."""
    believer = ChainStep("demofs_write", "fs/demofs/write.c", 12, 9, "kmalloc() with GFP_NOFS")
    call = ChainStep("demofs_write", "fs/demofs/write.c", 14, 2, "calls demo_table_resize()")
    return Finding(rule="nofs-inconsistent", severity="warning", file=believer.file, line=believer.line,
                   column=believer.column, function=believer.function, allocator="kmalloc", gfp="GFP_NOFS",
                   message="GFP_NOFS here, GFP_KERNEL below", chain=(believer, call, unsafe), confidence="high",
                   covers=(Covered(unsafe.file, unsafe.line, unsafe.function, allocator, "GFP_KERNEL"),))


def test_a_finding_reported_at_its_source_is_not_moved():
    unsafe = ChainStep("demo_table_resize", "lib/demo_table.c", 36, 10, "kmalloc_array() with GFP_KERNEL")
    finding = at_mask(unsafe, "kmalloc_array")
    assert at_fix_sites([Reported(finding, True)]) == [finding]


def test_findings_of_one_mask_reported_at_it_are_one():
    near = at_mask(ChainStep("demo_table_resize", "lib/demo_table.c", 36, 10, "kmalloc_array() with GFP_KERNEL"),
                   "kmalloc_array")
    far = at_mask(ChainStep("demo_table_grow", "lib/demo_table.c", 23, 10, "kcalloc() with GFP_KERNEL"), "kcalloc")
    (grouped,) = at_fix_sites([Reported(near, True), Reported(far, True)])
    assert (grouped.file, grouped.line, grouped.gfp) == ("fs/demofs/write.c", 12, "GFP_NOFS")
    assert grouped.covers == far.covers + near.covers
    assert grouped.message == "GFP_NOFS here, GFP_KERNEL below; 2 such allocations below it"


def test_the_inconsistent_fixture_reports_its_unheld_gfp_nofs_once():
    findings = json.loads(scan("--format", "json", tree=FIXTURES / "inconsistent"))["findings"]
    at_nofs = [f for f in findings if f["rule"] == "nofs-inconsistent" and f["gfp"] == "GFP_NOFS"]
    assert len(at_nofs) == 1 and (at_nofs[0]["line"], at_nofs[0]["gfp"]) == (42, "GFP_NOFS")
    assert [(c["function"], c["allocator"], c["gfp"]) for c in at_nofs[0]["covers"]] == [
        ("demo_helper", "kmalloc", "GFP_KERNEL"), ("demo_helper", "kstrdup", "GFP_KERNEL")]


# -- the fixture, end to end ------------------------------------------------------

LIB = [{"file": "lib/demo_names.c", "line": 7, "function": "demo_names_alloc", "allocator": "kzalloc",
        "gfp": "GFP_KERNEL"},
       {"file": "lib/demo_table.c", "line": 23, "function": "demo_table_grow_bitmap", "allocator": "kcalloc",
        "gfp": "GFP_KERNEL"},
       {"file": "lib/demo_table.c", "line": 36, "function": "demo_table_resize", "allocator": "kmalloc_array",
        "gfp": "GFP_KERNEL"}]


def scan(*args: str, tree=TREE) -> str:
    run = gfpcheck("scan", "--no-cache", *args, str(tree))
    assert run.returncode == 1, run.stderr
    return run.stdout


def test_json_reports_the_call_once_with_the_lib_allocations_it_covers():
    findings = json.loads(scan("--format", "json"))["findings"]
    assert [(f["file"], f["line"], f["rule"]) for f in findings] == [
        ("fs/demofs/resize.c", 36, "nofs-recursion"), ("fs/demofs/resize.c", 41, "nofs-recursion")]
    direct, grouped = findings
    # demofs's own allocation is its own fix site: reported at itself, covering nothing else
    assert direct["allocator"] == "kmalloc" and direct["covers"] == []
    assert grouped["function"] == "demofs_resize" and grouped["covers"] == LIB
    assert "reaches 3 such allocations" in grouped["message"]
    assert grouped["chain"][-1]["file"].startswith("lib/")  # the evidence reaches an allocation


def test_sarif_lists_the_covered_allocations_as_related_locations():
    results = json.loads(scan("--format", "sarif"))["runs"][0]["results"]
    direct, grouped = sorted(results, key=lambda r: r["locations"][0]["physicalLocation"]["region"]["startLine"])
    assert "relatedLocations" not in direct
    assert grouped["locations"][0]["physicalLocation"]["region"]["startLine"] == 41
    related = grouped["relatedLocations"]
    assert [r["id"] for r in related] == [1, 2, 3]
    assert [(r["physicalLocation"]["artifactLocation"], r["physicalLocation"]["region"]) for r in related] == [
        ({"uri": c["file"], "uriBaseId": "SRCROOT"}, {"startLine": c["line"]}) for c in LIB]
    assert related[0]["message"]["text"] == "kzalloc() with GFP_KERNEL in demo_names_alloc()"


def test_text_names_the_first_covered_allocation_and_how_many_more():
    lines = scan().splitlines()
    assert lines[-1] == "lib/demo_names.c:7: note: demo_names_alloc: covers kzalloc() with GFP_KERNEL … and 2 more"
    assert sum(" covers " in line for line in lines) == 1


def test_the_fingerprint_holds_while_the_allocations_covered_change(tmp_path):
    tree = tmp_path / "tree"
    shutil.copytree(TREE, tree)

    def grouped() -> dict:
        return next(f for f in json.loads(scan("--format", "json", tree=tree))["findings"] if f["covers"])

    before = grouped()
    names = tree / "lib/demo_names.c"
    names.write_text(names.read_text().replace("GFP_KERNEL);", "GFP_NOFS);"))
    fewer = grouped()
    assert len(fewer["covers"]) == 2 and fewer["fingerprint"] == before["fingerprint"]
    table = tree / "lib/demo_table.c"
    table.write_text("/* moved down */\n\n" + table.read_text())
    assert grouped()["fingerprint"] == before["fingerprint"]


def test_the_gate_shows_a_known_finding_when_a_change_touches_an_allocation_it_covers():
    from gfpcheck.gate import compare

    table = ChainStep("demo_table_resize", "lib/demo_table.c", 39, 8, "calls demo_table_grow_bitmap()")
    (grouped,) = at_fix_sites([Reported(allocation("demo_table_resize", "lib/demo_table.c", 36, above=(CALL,)), True),
                               Reported(allocation("demo_table_grow_bitmap", "lib/demo_table.c", 23,
                                                   above=(CALL, table)), True)])
    # line 23 is on no step of the representative chain, only among the allocations covered
    assert compare((grouped,), (grouped,), {"lib/demo_table.c": frozenset({23})}) == ((), (grouped,))
    assert compare((grouped,), (grouped,), {"lib/demo_table.c": frozenset({24})}) == ((), ())


def test_checkpatch_output_names_the_first_covered_allocation_and_how_many_more():
    from gfpcheck.report import checkpatch

    table = ChainStep("demo_table_resize", "lib/demo_table.c", 39, 8, "calls demo_table_grow_bitmap()")
    (grouped,) = at_fix_sites([Reported(allocation("demo_table_resize", "lib/demo_table.c", 36, above=(CALL,)), True),
                               Reported(allocation("demo_table_grow_bitmap", "lib/demo_table.c", 23,
                                                   above=(CALL, table)), True)])
    out = checkpatch.render([(grouped, False)], lambda path, line: None).splitlines()
    assert out[1] == "#41: FILE: fs/demofs/resize.c:41:"
    assert out[-3] == "  lib/demo_table.c:23: demo_table_grow_bitmap: covers kmalloc() with GFP_KERNEL … and 1 more"
