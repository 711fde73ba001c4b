#!/usr/bin/env python3
"""A screenshot of the HTML report, to look at how it reads: render the report
of a tree (by running `gfpcheck scan --format html`) or of a scan's JSON, load
it in headless Chromium, open the first finding's chain and save a PNG.

    python bench/html_shot.py fixtures/seed-2016                 # bench/results/html-seed-2016.png
    python bench/html_shot.py SCAN.json --root path/to/linux -o shot.png

A scan's JSON holds no source: --root names the tree it was made from, so the
lines around each step can be shown.  Needs Debian's chromium and
chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver) and selenium (the
`test` extra).  Not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--force-device-scale-factor=1")


def report_of_tree(tree: Path, page: Path) -> None:
    """The report the CLI writes for `tree` (exit 1 is findings, not a failure)."""
    run = subprocess.run([sys.executable, "-m", "gfpcheck", "scan", "--no-cache", "-q", "--format", "html",
                          "-o", str(page), str(tree)], check=False)
    if run.returncode not in (0, 1):
        sys.exit(f"html_shot: gfpcheck scan exited {run.returncode}")


def report_of_json(scan: Path, root: Path | None, page: Path) -> None:
    """The report of a scan's JSON, with source lines read from `root` when given."""
    from gfpcheck.cli import TreeLines
    from gfpcheck.findings import Finding, Stats
    from gfpcheck.report import html

    document = json.loads(scan.read_text())
    findings = [Finding.from_dict(f) for f in document["findings"]]
    stats = Stats(**{k: v for k, v in document["stats"].items() if k in Stats.__dataclass_fields__})
    snippets = html.snippets(findings, TreeLines(root, {}).text) if root else {}
    page.write_text(html.render(findings, stats, snippets, root=str(root or "")), encoding="utf-8")


def shoot(page: Path, png: Path, width: int, max_height: int) -> None:
    """Load `page`, open its first finding, fit the window to the page and save it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    with tempfile.TemporaryDirectory() as profile:
        for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},900"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        try:
            driver.get(page.resolve().as_uri())
            first = driver.find_elements(By.CSS_SELECTOR, ".finding > summary")
            if first:
                first[0].click()
            height = driver.execute_script("return document.documentElement.scrollHeight")
            driver.set_window_size(width, min(max_height, height + 140))  # the window's frame takes some
            png.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(png))
        finally:
            driver.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="a tree to scan, or a scan's JSON (--format json)")
    parser.add_argument("--root", type=Path, help="with a scan's JSON: the tree it was made from")
    parser.add_argument("-o", "--output", type=Path, help="the PNG (default: bench/results/html-NAME.png)")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--max-height", type=int, default=2400)
    args = parser.parse_args()
    png = args.output or ROOT / "bench" / "results" / f"html-{args.source.stem or args.source.name}.png"
    with tempfile.TemporaryDirectory() as work:
        page = Path(work) / "report.html"
        if args.source.is_dir():
            report_of_tree(args.source, page)
        else:
            report_of_json(args.source, args.root, page)
        shoot(page, png, args.width, args.max_height)
    print(png)


if __name__ == "__main__":
    main()
