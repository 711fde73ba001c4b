"""The HTML report: the renderer's page (self-contained, escaped, byte-stable,
grouped, with source around each step), `scan --format html -o`, and the page
as a real browser shows it: Debian's chromium driven through chromium-driver.

The browser test is skipped when chromium, chromedriver or selenium is missing,
unless GFPCHECK_BROWSER_TESTS=required (as .ci/run sets it): then it fails."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gfpcheck.findings import ChainStep, Covered, Finding, Stats
from gfpcheck.report import html

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
BROWSER_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync")


def step(function: str, file: str, line: int, note: str, kind: str = "call") -> ChainStep:
    return ChainStep(function=function, file=file, line=line, column=2, note=note, kind=kind)


def finding(file: str, line: int, function: str, rule: str = "nofs-recursion", severity: str = "error",
            chain: tuple[ChainStep, ...] = (), covers: tuple[Covered, ...] = ()) -> Finding:
    return Finding(rule=rule, severity=severity, file=file, line=line, column=9, function=function,
                   allocator="kmalloc", gfp="GFP_KERNEL", message=f"kmalloc() with GFP_KERNEL in {function}()",
                   chain=chain, confidence="high", fingerprint=f"{function}{line}", covers=covers)


HELD = step("btrfs_mkdir", "fs/btrfs/inode.c", 11, "btrfs_start_transaction() takes a transaction handle  "
            "[rules: begin]", "held")
FINDINGS = [
    finding("fs/btrfs/xattr.c", 29, "btrfs_initxattrs", chain=(
        HELD,
        step("btrfs_mkdir", "fs/btrfs/inode.c", 17, "calls btrfs_xattr_security_init()"),
        step("btrfs_initxattrs", "fs/btrfs/xattr.c", 29, "kmalloc() with GFP_KERNEL", "allocation"))),
    finding("fs/btrfs/xattr.c", 50, "btrfs_xattr_security_init", chain=(
        HELD, step("btrfs_xattr_security_init", "fs/btrfs/xattr.c", 50, "calls security_inode_init_security()"),
        step("init_desc", "security/integrity/evm/evm_crypto.c", 34, "crypto_alloc_shash()", "allocation")),
        covers=(Covered("security/integrity/evm/evm_crypto.c", 34, "init_desc", "crypto_alloc_shash", "GFP_KERNEL"),
                Covered("security/integrity/evm/evm_crypto.c", 55, "init_desc", "kmalloc", "GFP_KERNEL"))),
    finding("fs/ext4/super.c", 30, "ext4_fill_super", rule="nofs-needless", severity="note"),
]


def source(file: str, line: int) -> str | None:
    """A tree whose every file has 40 lines; line 29 of xattr.c holds markup characters."""
    if not 0 < line <= 40:
        return None
    if (file, line) == ("fs/btrfs/xattr.c", 29):
        return "\tif (len < 8 && p) name = kmalloc(len, GFP_KERNEL);"
    return f"\t/* {file} line {line} */"


def page(findings=FINDINGS, suppressed=()) -> str:
    snippets = html.snippets([*findings, *(f for f, _ in suppressed)], source)
    return html.render(findings, Stats(files=3, functions=9), snippets, suppressed, root="linux")


def test_the_same_findings_give_the_same_bytes_whatever_order_the_snippets_come_in():
    snippets = html.snippets(FINDINGS, source)
    reordered = dict(reversed(list(snippets.items())))
    first = html.render(FINDINGS, Stats(), snippets)
    assert first == html.render(FINDINGS, Stats(), snippets)
    assert first == html.render(FINDINGS, Stats(), reordered)


def test_the_page_fetches_nothing():
    text = page()
    assert "//" not in text  # no http://, https:// or protocol-relative asset anywhere
    assert not re.search(r"\b(src|href)=|url\(|@import", text)
    assert text.count("<script") == 1 and "<link" not in text


def test_kernel_text_is_escaped_and_cannot_close_the_script():
    hostile = replace_note(FINDINGS[0], 0, "takes a handle </script><script>alert(1)</script> <!-- &")
    text = page([hostile])
    assert text.count("<script") == 1 and text.count("</script>") == 1 and "<!--" not in text
    assert "takes a handle &lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt; &lt;!-- &amp;" in text
    assert "if (len &lt; 8 &amp;&amp; p) name = kmalloc(len, GFP_KERNEL);" in text


def replace_note(original: Finding, index: int, note: str) -> Finding:
    from dataclasses import replace

    chain = list(original.chain)
    chain[index] = replace(chain[index], note=note)
    return replace(original, chain=tuple(chain))


def test_the_count_and_the_filters_cover_every_finding():
    text = page()
    assert '<b id="count">3</b> of <span id="total">3</span>' in text
    assert len(re.findall(r'<details class="finding ', text)) == 3
    assert '<option value="nofs-needless" title="' in text and ">nofs-recursion (2)</option>" in text
    for facet in ("rule", "severity", "confidence", "subsystem"):
        assert f'<select id="filter-{facet}" data-filter="{facet}">' in text
    assert 'data-subsystem="fs/btrfs"' in text and 'data-severity="note"' in text


def test_findings_go_by_subsystem_then_by_the_place_their_context_starts():
    text = page()
    sections = re.findall(r'<section class="subsystem" data-subsystem="([^"]+)">', text)
    assert sections == ["fs/btrfs", "fs/ext4"]
    causes = re.findall(r'<section class="cause" data-cause="([^"]+)">', text)
    # both btrfs findings start at the handle taken in btrfs_mkdir(); ext4's has no chain: its own place
    assert causes == ["fs/btrfs/inode.c:11", "fs/ext4/super.c:30"]
    assert "context taken/held" in text and "callback" not in text


def test_each_step_shows_its_source_with_its_own_line_marked():
    text = page()
    chain = text[text.index('id="f1"'):text.index('id="f2"')]
    steps = re.findall(r'<li class="step[^"]*" data-kind="(\w+)">', chain)
    assert steps == ["held", "call", "allocation"]
    assert '<span class="line hl" data-line="11">' in chain and '<span class="line hl" data-line="29">' in chain
    for line in range(26, 33):  # three lines either side of the allocation
        assert f'data-line="{line}">' in chain
    assert 'data-line="25">' not in chain.split('data-kind="allocation"')[1]
    assert "reported here" in chain


def test_a_finding_at_its_fix_site_lists_what_it_covers_and_a_finding_without_chain_shows_its_place():
    text = page()
    fix_site = text[text.index('id="f2"'):text.index('id="f3"')]
    assert "Stands for 2 allocations" in fix_site and "evm_crypto.c:55" in fix_site
    alone = text[text.index('id="f3"'):]
    assert '<div class="reported">' in alone and '<span class="line hl" data-line="30">' in alone


def test_snippets_stop_at_the_ends_of_a_file():
    got = html.snippets([finding("a/b/c.c", 2, "f"), finding("a/b/c.c", 39, "g")], source)
    assert [n for n, _ in got[("a/b/c.c", 2)]] == [1, 2, 3, 4, 5]
    assert [n for n, _ in got[("a/b/c.c", 39)]] == [36, 37, 38, 39, 40]


def test_suppressed_findings_are_listed_with_their_reason():
    text = page(FINDINGS[:1], [(FINDINGS[2], "init runs before any handle <exists>")])
    assert "1 finding suppressed inline" in text and "reason: init runs before any handle &lt;exists&gt;" in text
    assert '<b id="count">1</b>' in text


def test_no_findings_says_so():
    text = page([])
    assert '<b id="count">0</b>' in text and '<p id="none">No findings.</p>' in text


def gfpcheck(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gfpcheck", *args], capture_output=True, text=True, check=False)


def test_scan_writes_the_html_report_to_the_output_file(tmp_path):
    out = tmp_path / "report.html"
    run = gfpcheck("scan", "--no-cache", "-q", "--format", "html", "-o", str(out), str(FIXTURES / "seed-2016"))
    assert run.returncode == 1 and run.stdout == "" and run.stderr == ""
    text = out.read_text()
    assert text.startswith("<!DOCTYPE html>") and '<b id="count">2</b>' in text
    again = tmp_path / "again.html"
    gfpcheck("scan", "--no-cache", "-q", "--format", "html", "-o", str(again), str(FIXTURES / "seed-2016"))
    assert again.read_bytes() == out.read_bytes()


def test_output_file_holds_what_stdout_would_for_every_format(tmp_path):
    for fmt in ("text", "json", "sarif"):
        out = tmp_path / f"report.{fmt}"
        to_file = gfpcheck("scan", "--no-cache", "-q", "--format", fmt, "-o", str(out), str(FIXTURES / "seed-2016"))
        to_stdout = gfpcheck("scan", "--no-cache", "-q", "--format", fmt, str(FIXTURES / "seed-2016"))
        assert to_file.returncode == to_stdout.returncode == 1
        assert to_file.stdout == "" and out.read_text() == to_stdout.stdout


def test_an_output_file_that_cannot_be_written_is_one_line_and_exit_2(tmp_path):
    for target in (tmp_path / "missing" / "report.html", tmp_path):
        run = gfpcheck("scan", "--no-cache", "--format", "html", "-o", str(target), str(FIXTURES / "seed-2016"))
        assert run.returncode == 2, run.stderr
        assert run.stderr.count("\n") == 1 and run.stderr.startswith("gfpcheck: error: ")
    run = gfpcheck("scan", "--no-cache", "-q", "--format", "html", "-o", "/dev/full", str(FIXTURES / "seed-2016"))
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "Traceback" not in run.stderr


# --- in a real browser ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless chromium through chromedriver, with a fresh profile; skipped when
    either is missing unless GFPCHECK_BROWSER_TESTS=required."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("selenium (pip install -e '.[test]')")
    if missing:
        reason = (f"the HTML report's browser test needs {', '.join(missing)} "
                  "(apt-get install chromium chromium-driver)")
        if os.environ.get("GFPCHECK_BROWSER_TESTS") == "required":
            pytest.fail(f"GFPCHECK_BROWSER_TESTS=required, but {reason}", pytrace=False)
        pytest.skip(reason)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*BROWSER_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
                 "--window-size=1280,1000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


def scanned(tmp_path: Path, tree: Path) -> tuple[Path, list[dict]]:
    """The HTML report the CLI writes for `tree`, and the findings of its JSON."""
    report = tmp_path / "report.html"
    run = gfpcheck("scan", "--no-cache", "-q", "--format", "html", "-o", str(report), str(tree))
    assert run.returncode == 1, run.stderr
    as_json = gfpcheck("scan", "--no-cache", "-q", "--format", "json", str(tree))
    return report, json.loads(as_json.stdout)["findings"]


def test_the_report_in_a_browser_counts_filters_and_opens_a_chain(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    report, findings = scanned(tmp_path, FIXTURES / "noio")
    rules = {f["rule"] for f in findings}
    assert len(findings) > 2 and len(rules) > 1  # a fixture where a rule filter changes the count
    browser.get(report.as_uri())

    def count() -> int:
        return int(browser.find_element(By.ID, "count").text)

    def shown() -> list:
        return [f for f in browser.find_elements(By.CSS_SELECTOR, ".finding") if f.is_displayed()]

    assert count() == len(findings) == len(shown())
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0

    wanted = "nofs-recursion"
    expected = [f for f in findings if f["rule"] == wanted]
    assert 0 < len(expected) < len(findings)
    Select(browser.find_element(By.ID, "filter-rule")).select_by_value(wanted)
    assert count() == len(expected) == len(shown())
    assert {f.get_attribute("data-rule") for f in shown()} == {wanted}
    sections = [s.get_attribute("data-subsystem") for s in browser.find_elements(By.CSS_SELECTOR, ".subsystem")
                if s.is_displayed()]
    assert sections == sorted({"/".join(f["file"].split("/")[:2]) for f in expected})

    finding = shown()[0]
    steps = finding.find_elements(By.CSS_SELECTOR, ".step")
    assert steps and not any(s.is_displayed() for s in steps)  # closed until opened
    finding.find_element(By.TAG_NAME, "summary").click()
    chain = expected[0]["chain"]
    assert [s.is_displayed() for s in steps] == [True] * len(chain)
    assert [s.get_attribute("data-kind") for s in steps] == [s["kind"] for s in chain]
    assert steps[-1].find_element(By.CSS_SELECTOR, ".kind").text == "allocation"
    assert f"{chain[-1]['file']}:{chain[-1]['line']}" in steps[-1].text
    marked = steps[-1].find_element(By.CSS_SELECTOR, ".line.hl")
    assert marked.is_displayed() and marked.get_attribute("data-line") == str(chain[-1]["line"])
    assert "kmalloc(" in marked.text

    Select(browser.find_element(By.ID, "filter-rule")).select_by_value("")
    Select(browser.find_element(By.ID, "filter-severity")).select_by_value("note")
    assert count() == sum(1 for f in findings if f["severity"] == "note") == len(shown())
    Select(browser.find_element(By.ID, "filter-subsystem")).select_by_value("drivers/md")
    assert count() == 0 and browser.find_element(By.ID, "none").is_displayed()
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
