"""Command line: parse options, run the pipeline, pick a reporter, map the outcome
to an exit code (0 clean, 1 findings, 2 usage or input error)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from . import __version__
from .cache import default_cache_dir
from .checks.catalog import BY_ID, CHECKS
from .discover import (
    ALL_ARCHES,
    DEFAULT_ARCH,
    DEFAULT_EXCLUDES,
    DEFAULT_MAX_SIZE,
    DiscoveryError,
)
from .pipeline import Progress, ScanOptions, scan
from .report import json as json_report
from .report import text as text_report
from .ruleset import RuleError

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2
EXIT_INTERRUPTED = 130  # what a shell reports for a command stopped by Ctrl-C


def progress_bar(quiet: bool) -> Progress | None:
    """A bar with file counts and elapsed time on stderr, when stderr is a terminal."""
    if quiet or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    bars: list[tqdm] = []

    def start(stage: str, total: int) -> None:
        bars.append(tqdm(total=total, desc=stage, unit=" files", file=sys.stderr, leave=False,
                         bar_format="{desc}: {n_fmt}/{total_fmt} files |{bar}| {elapsed}"))

    def advance(count: int) -> None:
        bars[-1].update(count)

    def done() -> None:
        bars.pop().close()

    return Progress(start, advance, done)


def fail(message: str) -> None:
    click.echo(f"gfpcheck: error: {message}", err=True)
    sys.exit(EXIT_ERROR)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gfpcheck")
def main() -> None:
    """Find GFP allocation-context bugs in Linux kernel C sources."""


@main.command("scan")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--root", type=click.Path(path_type=Path, file_okay=False),
              help="Directory reported paths are relative to (default: the one directory scanned, else .).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--rules", "rules_dirs", multiple=True, type=click.Path(path_type=Path, file_okay=False),
              help="Rules directory; repeat to add directories after the bundled rules.")
@click.option("-j", "--jobs", type=click.IntRange(min=0), default=0, show_default=True,
              help="Worker processes for extraction; 0 uses every core, 1 runs serially.")
@click.option("--exclude", "excludes", multiple=True, help="Glob of root-relative paths to skip (repeatable).")
@click.option("--no-default-excludes", is_flag=True, help=f"Do not skip {', '.join(DEFAULT_EXCLUDES)}.")
@click.option("--arch", default=DEFAULT_ARCH, show_default=True,
              help=f"The architecture whose arch/ directory is read; '{ALL_ARCHES}' reads every one.")
@click.option("--max-file-size", type=click.IntRange(min=1), default=DEFAULT_MAX_SIZE, show_default=True,
              help="Skip files larger than this many bytes.")
@click.option("--min-confidence", type=click.Choice(["low", "medium", "high"]), default="medium",
              show_default=True, help="Report only findings whose evidence is at least this strong.")
@click.option("--cache-dir", type=click.Path(path_type=Path, file_okay=False),
              help=f"Where facts and results are kept between scans (default: {default_cache_dir()}).")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the cache.")
@click.option("--timings", is_flag=True,
              help="Add seconds per stage and cache use to the JSON stats (output then varies).")
@click.option("-q", "--quiet", is_flag=True, help="No summary or progress on stderr.")
def scan_command(paths, root, fmt, rules_dirs, jobs, excludes, no_default_excludes, arch, max_file_size,
                 min_confidence, cache_dir, no_cache, timings, quiet) -> None:
    """Scan PATHS (default: .) and report allocation-context findings."""
    paths = tuple(paths) or (Path("."),)
    if root is None:
        root = paths[0] if len(paths) == 1 and paths[0].is_dir() else Path(".")
    from .ruleset import default_rules_dir

    dirs = (default_rules_dir(), *rules_dirs) if rules_dirs else None
    options = ScanOptions(
        paths=paths, root=root, rules_dirs=dirs, jobs=jobs,
        excludes=tuple(excludes) + (() if no_default_excludes else DEFAULT_EXCLUDES),
        max_file_size=max_file_size, min_confidence=min_confidence, arch=arch,
        cache_dir=None if no_cache else (cache_dir or default_cache_dir()),
    )
    try:
        result = scan(options, progress_bar(quiet))
    except (RuleError, DiscoveryError) as exc:
        fail(str(exc))
        return
    except KeyboardInterrupt:
        click.echo("gfpcheck: interrupted; the cache keeps what was finished", err=True)
        sys.exit(EXIT_INTERRUPTED)
    if fmt == "json":
        click.echo(json_report.render(result.findings, result.stats, include_timing=timings), nl=False)
    else:
        click.echo(text_report.render(result.findings), nl=False)
    if not quiet:
        click.echo(text_report.summary(result.findings, result.stats), err=True)
    sys.exit(EXIT_FINDINGS if result.findings else EXIT_CLEAN)


@main.command("rules")
def rules_command() -> None:
    """List the checks gfpcheck reports."""
    for check in CHECKS:
        click.echo(f"{check.id:20} {check.severity:8} {check.short}")


@main.command("explain")
@click.argument("rule")
def explain_command(rule: str) -> None:
    """Describe a check: what it finds, an example, and how to fix it."""
    check = BY_ID.get(rule) or BY_ID.get(rule.lower().replace("_", "-"))
    if check is None:
        fail(f"unknown rule {rule!r}; `gfpcheck rules` lists them")
        return
    click.echo(f"{check.id} ({check.severity}): {check.short}\n\n{check.full}\n\nExample:\n"
               + "\n".join("    " + line for line in check.example.splitlines())
               + f"\n\nHow to fix:\n{check.help}")
