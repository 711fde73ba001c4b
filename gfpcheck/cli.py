"""Command line: parse options, run the pipeline, pick a reporter, map the outcome
to an exit code.  `Exit` and `_Main.main` are the one place exit codes are decided:
0 clean, 1 findings, 2 usage or input error, 3 internal error; nothing else exits 1."""

from __future__ import annotations

import os
import platform
import signal
import sys
import traceback
from dataclasses import replace
from enum import IntEnum
from pathlib import Path

import click

from . import __version__
from .cache import default_cache_dir
from .checks import CHECKS, SEVERITY_ORDER, lookup
from .checks.why import definitions, why
from .config import (
    CONFIG_NAME,
    Config,
    ConfigError,
    apply_policy,
    load_config,
    read_baseline,
    split_baselined,
)
from .config import write_baseline as write_baseline_file
from .discover import (
    ALL_ARCHES,
    DEFAULT_ARCH,
    DEFAULT_EXCLUDES,
    DEFAULT_MAX_SIZE,
    DiscoveryError,
)
from .findings import Finding
from .gate import GateError, GateResult, run_gate
from .gate import patch as patches
from .gate.git import revision_sides
from .gate.patch import NothingToCheck, PatchError
from .kconfig import KconfigError, KernelConfig
from .kconfig import load_config as load_kconfig
from .pipeline import Progress, ScanOptions, max_processes, scan
from .report import checkpatch as checkpatch_report
from .report import html as html_report
from .report import json as json_report
from .report import sarif as sarif_report
from .report import text as text_report
from .report import why as why_report
from .ruleset import RuleError
from .suppressions import apply_inline


class Exit(IntEnum):
    """What gfpcheck's exit status says (README, "Exit status")."""

    CLEAN = 0  # nothing found
    FINDINGS = 1  # findings reported; the only way to exit 1
    ERROR = 2  # usage or input error: one line on stderr says what and what to do
    INTERNAL = 3  # a bug in gfpcheck: one line on stderr, the traceback with --debug or GFPCHECK_DEBUG=1
    INTERRUPTED = 130  # Ctrl-C, as a shell reports it
    TERMINATED = 143  # SIGTERM, as a shell reports it


INPUT_ERRORS = (RuleError, DiscoveryError, ConfigError, KconfigError, GateError, PatchError)
DEBUG_VARIABLE = "GFPCHECK_DEBUG"


class OutputError(Exception):
    """The report could not be written to standard output or its file."""


class Terminated(BaseException):
    """SIGTERM arrived: unwind like Ctrl-C, so workers stop and the cache stays whole."""


def _terminate(signum, frame) -> None:
    raise Terminated


class _Main(click.Group):
    """The command group, deciding every exit status in `main`."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        arguments = list(sys.argv[1:] if args is None else args)
        debug = "--debug" in arguments or os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")
        try:
            previous = signal.signal(signal.SIGTERM, _terminate)
        except ValueError:  # not the main thread: signals are not ours to set
            previous = None
        try:
            code = super().main(arguments, prog_name or "gfpcheck", complete_var, standalone_mode=False, **extra)
            code = code if isinstance(code, int) else Exit.CLEAN
        except click.exceptions.UsageError as exc:
            hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
            code = _say(f"error: {exc.format_message()}{hint}", Exit.ERROR)
        except click.ClickException as exc:
            code = _say(f"error: {exc.format_message()}", Exit.ERROR)
        except (*INPUT_ERRORS, OutputError) as exc:
            code = _say(f"error: {exc}", Exit.ERROR)
        except (KeyboardInterrupt, click.Abort):
            code = _say("interrupted; the cache keeps what was finished", Exit.INTERRUPTED)
        except Terminated:
            code = _say("terminated; the cache keeps what was finished", Exit.TERMINATED)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else Exit.ERROR
        except Exception as exc:
            name = type(exc).__name__
            if debug:
                traceback.print_exc()
                message = f"internal error: {name} (traceback above); please report it"
            else:
                detail = " ".join(str(exc).split())[:200]
                message = (f"internal error: {name}{': ' + detail if detail else ''}; this is a bug in gfpcheck, "
                           f"please report it with the output of `gfpcheck --debug ...`")
            code = _say(message, Exit.INTERNAL)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        if standalone_mode:
            sys.exit(int(code))
        return int(code)


def _say(message: str, code: int) -> int:
    """One line on stderr; the exit code, for the caller to return."""
    try:
        click.echo(f"gfpcheck: {message}", err=True)
    except OSError:
        pass
    return code


def emit(text: str, output: Path | None = None) -> None:
    """Write the report to standard output, or to the file `output` names.  A file
    name that is not UTF-8 comes out as its own bytes, as a compiler prints it; a
    failed write (a full disk, a closed pipe) is an OutputError, after which
    nothing more is written there."""
    if output is not None and str(output) != "-":
        try:
            output.write_bytes(text.encode("utf-8", "surrogateescape"))
        except OSError as exc:
            raise OutputError(f"{output}: cannot write the report: {exc.strerror or exc}") from None
        return
    stream = sys.stdout
    try:
        stream.flush()
        stream.buffer.write(text.encode("utf-8", "surrogateescape"))
        stream.buffer.flush()
    except OSError as exc:
        _silence_stdout()
        raise OutputError(f"cannot write the report to standard output: {exc.strerror or exc}") from None


def _silence_stdout() -> None:
    """Point standard output at /dev/null, so the interpreter's own flush at exit
    does not fail a second time on what could not be written."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


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


def run() -> None:
    """The console entry point.  It lets a scan leave without freeing its analysis:
    a whole tree's is tens of millions of objects, which take seconds to free one by
    one and none for the system to reclaim with the process."""
    with_huge_pages()
    main.main(obj={"hard_exit": True})


# glibc 2.35 and later back the heap with transparent huge pages when this is set
# as the process starts.  A whole tree's analysis takes gigabytes of new memory,
# a page fault every 4 KiB without it: about 800,000 in a re-scan of 6.12, where
# it cut 200,000 faults and 6 of 44 seconds.
HUGE_PAGES = "glibc.malloc.hugetlb=1"


def with_huge_pages() -> None:
    """Start this command again with HUGE_PAGES among glibc's tunables, unless
    GLIBC_TUNABLES already says what it wants (it is the user's to set), or this
    is not Linux with glibc 2.35 or later, or the restart is refused."""
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if sys.platform != "linux" or "glibc.malloc.hugetlb" in tunables or not sys.executable:
        return
    libc, version = platform.libc_ver()
    try:
        recent = tuple(int(part) for part in version.split(".")[:2]) >= (2, 35)
    except ValueError:
        recent = False
    if libc != "glibc" or not recent:
        return
    environment = {**os.environ, "GLIBC_TUNABLES": ":".join(filter(None, (tunables, HUGE_PAGES)))}
    try:
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], environment)
    except OSError:
        return  # go on as started


def hard_exit() -> bool:
    """Whether this command runs from the console entry point (see run)."""
    context = click.get_current_context(silent=True)
    return bool(context is not None and (context.find_root().obj or {}).get("hard_exit"))


def leave(code: int) -> None:
    """End the command with `code`; from the console entry point, at once."""
    if hard_exit():
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)
    sys.exit(code)


DEBUG_HELP = f"On an internal error, print its traceback (also {DEBUG_VARIABLE}=1)."


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gfpcheck")
@click.option("--debug", is_flag=True, expose_value=False, help=DEBUG_HELP)
def main() -> None:
    """Find GFP allocation-context bugs in Linux kernel C sources."""


def scan_options(command):
    """The options every command that scans a tree shares."""
    options = [
        click.option("--no-inline-ignores", "no_inline_ignores", is_flag=True,
                     help="Show the findings that `/* gfpcheck: ignore RULE: reason */` comments suppress."),
        click.option("--root", type=click.Path(path_type=Path, file_okay=False),
                     help="Directory reported paths are relative to (default: the one directory scanned, else .)."),
        click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False),
                     help=f"Settings file (default: {CONFIG_NAME} at the root, when present)."),
        click.option("--rules", "rules_dirs", multiple=True, type=click.Path(path_type=Path, file_okay=False),
                     help="Rules directory; repeat to add directories after the bundled rules."),
        click.option("-j", "--jobs", type=click.IntRange(min=0), default=0, show_default=True,
                     help="Worker processes for extraction; 0 uses every core, 1 runs serially."),
        click.option("--exclude", "excludes", multiple=True,
                     help="Glob of root-relative paths to skip (repeatable)."),
        click.option("--no-default-excludes", is_flag=True, help=f"Do not skip {', '.join(DEFAULT_EXCLUDES)}."),
        click.option("--kconfig", "kconfig_path", type=click.Path(path_type=Path, dir_okay=False),
                     help="The kernel .config the tree is built with: files and #if branches it leaves out are "
                          "not read (default: the root's .config, when present)."),
        click.option("--arch", default=DEFAULT_ARCH, show_default=True,
                     help=f"The architecture whose arch/ directory is read; '{ALL_ARCHES}' reads every one."),
        click.option("--max-file-size", type=click.IntRange(min=1), default=DEFAULT_MAX_SIZE, show_default=True,
                     help="Skip files larger than this many bytes."),
        click.option("--min-confidence", type=click.Choice(["low", "medium", "high"]), default="medium",
                     show_default=True, help="Report only findings whose evidence is at least this strong."),
        click.option("--cache-dir", type=click.Path(file_okay=False), callback=_cache_dir,
                     help=f"Where facts and results are kept between scans (default: {default_cache_dir()})."),
        click.option("--no-cache", is_flag=True, help="Neither read nor write the cache."),
        click.option("-q", "--quiet", is_flag=True, help="No summary or progress on stderr."),
        click.option("--debug", is_flag=True, expose_value=False, help=DEBUG_HELP),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _cache_dir(context, parameter, value: str | None) -> Path | None:
    """The --cache-dir given; an empty one (which would fill the current directory) is refused."""
    if value is None:
        return None
    if not value.strip():
        raise click.BadParameter("an empty path; name a directory, or use --no-cache", param=parameter)
    return Path(value)


def _jobs(settings: dict) -> int:
    """-j as given, capped at twice the cores: more processes only add memory."""
    jobs = settings["jobs"]
    cap = max_processes()
    if jobs > cap:
        if not settings["quiet"]:
            click.echo(f"gfpcheck: note: -j {jobs} is more than twice the {os.cpu_count() or 1} cores; "
                       f"using {cap} processes", err=True)
        return cap
    return jobs


def build_options(paths: tuple[Path, ...], settings: dict) -> tuple[ScanOptions, Config]:
    """ScanOptions from the shared command-line options and the tree's settings file."""
    root = settings["root"]
    if root is None:
        root = paths[0] if len(paths) == 1 and paths[0].is_dir() else Path(".")
    config = load_config(root, settings["config_path"])
    from .ruleset import default_rules_dir

    extra = (*config.rules_dirs, *settings["rules_dirs"])
    options = ScanOptions(
        paths=paths, root=root, rules_dirs=(default_rules_dir(), *extra) if extra else None,
        jobs=_jobs(settings),
        excludes=tuple(settings["excludes"]) + config.excludes
        + (() if settings["no_default_excludes"] else DEFAULT_EXCLUDES),
        max_file_size=settings["max_file_size"], min_confidence=settings["min_confidence"], arch=settings["arch"],
        cache_dir=None if settings["no_cache"] else (settings["cache_dir"] or default_cache_dir()),
        kconfig=_kconfig(root, settings),
    )
    return options, config


def _kconfig(root: Path, settings: dict) -> KernelConfig | None:
    """The configuration named by --kconfig, else the root's own .config (said on
    stderr, as it changes what is scanned), else none."""
    if settings["kconfig_path"] is not None:
        return load_kconfig(settings["kconfig_path"])
    own = root / ".config"
    if not own.is_file():
        return None
    if not settings["quiet"]:
        click.echo(f"gfpcheck: note: using the kernel configuration {own} (--kconfig FILE to choose another)",
                   err=True)
    return load_kconfig(own)


@main.command("scan")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "json", "sarif", "html"]), default="text",
              show_default=True, help="html: one self-contained page to read in a browser (give it -o FILE).")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
              help="Write the report to this file instead of standard output.")
@click.option("--baseline", type=click.Path(path_type=Path, dir_okay=False),
              help="Hide findings recorded in this baseline file (they are counted).")
@click.option("--write-baseline", type=click.Path(path_type=Path, dir_okay=False),
              help="Record every finding of this scan in a baseline file.")
@click.option("--timings", is_flag=True,
              help="Add seconds per stage and cache use to the JSON stats (output then varies).")
@scan_options
def scan_command(paths, fmt, output, baseline, write_baseline, timings, **settings) -> None:
    """Scan PATHS (default: .) and report allocation-context findings."""
    quiet = settings["quiet"]
    writable(output)
    options, config = build_options(tuple(paths) or (Path("."),), settings)
    result = scan(replace(options, keep_analysis=hard_exit()), progress_bar(quiet))
    findings = apply_policy(result.findings, config)
    if write_baseline is not None:
        write_baseline_file(write_baseline, findings)
    hidden = 0
    baseline = baseline or config.baseline
    if baseline is not None and write_baseline is None:
        findings, hidden = split_baselined(findings, read_baseline(baseline))
    lines = TreeLines(options.root, {})
    findings, suppressed = _inline_ignores(findings, lines, settings)
    stats = replace(result.stats, findings_baselined=hidden, findings_suppressed=len(suppressed))
    if fmt == "json":
        emit(json_report.render(findings, stats, include_timing=timings), output)
    elif fmt == "sarif":
        emit(sarif_report.render(findings, options.root, config.severities, suppressed=suppressed), output)
    elif fmt == "html":
        snippets = html_report.snippets([*findings, *(f for f, _ in suppressed)], lines.text)
        emit(html_report.render(findings, stats, snippets, suppressed, root=str(options.root)), output)
    else:
        emit(text_report.render(findings), output)
    if not quiet:
        click.echo(text_report.summary(findings, stats), err=True)
    leave(Exit.FINDINGS if findings else Exit.CLEAN)


def writable(output: Path | None) -> None:
    """Refuse, before a scan that may take a while, a report file that cannot be
    written: a directory, or one in a directory that is missing or read-only."""
    if output is None or str(output) == "-":
        return
    folder = output.parent
    if output.is_dir():
        raise OutputError(f"{output}: is a directory; name a file for the report")
    if not folder.is_dir():
        raise OutputError(f"{output}: no directory {folder} to write the report in")
    if not os.access(output if output.exists() else folder, os.W_OK):
        raise OutputError(f"{output}: cannot write the report: permission denied")


def _inline_ignores(findings, lines: TreeLines,
                    settings: dict) -> tuple[list[Finding], list[tuple[Finding, str]]]:
    """The findings shown and those a `gfpcheck: ignore` comment suppresses (with its
    reason); with --no-inline-ignores, all shown.  A comment that names no rule or
    gives no reason is said on stderr."""
    if settings["no_inline_ignores"]:
        return list(findings), []
    shown, suppressed, problems = apply_inline(findings, lines.text)
    for problem in problems:
        click.echo(f"gfpcheck: {problem}", err=True)
    return shown, [(s.finding, s.reason) for s in suppressed]


def _rule_list(values: tuple[str, ...], option: str) -> frozenset[str]:
    """Rule ids from checkpatch-style lists: `--types NOFS_RECURSION,nofs-redundant`."""
    out = set()
    for value in values:
        for item in filter(None, (v.strip() for v in value.split(","))):
            check = lookup(item)
            if check is None:
                raise click.BadParameter(f"unknown rule '{item}' (`gfpcheck rules` lists them)", param_hint=option)
            out.add(check.id)
    return frozenset(out)


@main.command("check")
@click.argument("tree", required=False, type=click.Path(path_type=Path, file_okay=False))
@click.option("--base", "base_rev", metavar="REV", help="Compare with this git revision of the checkout.")
@click.option("--head", "head_rev", metavar="REV",
              help="The revision to check against --base (default: the working tree).")
@click.option("--patch", "patch_files", multiple=True,
              type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
              help="Check the tree with this unified diff applied in memory ('-': standard input); repeat "
                   "for a series, applied in order.  A `git format-patch` mbox holds a series too.")
@click.option("-p", "--strip", type=click.IntRange(min=0), default=1, show_default=True,
              help="Leading path components to strip from the patch's file names, as patch -p.")
@click.option("--format", "fmt", type=click.Choice(["checkpatch", "json", "sarif"]), default="checkpatch",
              show_default=True)
@click.option("--terse", is_flag=True, help="One line per finding: path:line: LEVEL:TYPE: message.")
@click.option("--types", "types", multiple=True, metavar="LIST",
              help="Report only these checks (comma-separated ids or TYPE names).")
@click.option("--ignore", "ignored", multiple=True, metavar="LIST", help="Do not report these checks.")
@click.option("--show-types/--no-show-types", default=True, show_default=True,
              help="Print each finding's TYPE after its level, as checkpatch's --show-types.")
@click.option("--fail-on", type=click.Choice(["error", "warning", "note"]), default="warning", show_default=True,
              help="Exit 1 when a new finding is at least this severe.")
@scan_options
def check_command(tree, base_rev, head_rev, patch_files, strip, fmt, terse, types, ignored, show_types, fail_on,
                  **settings) -> None:
    """Report what a change to TREE (default: .) introduces: a git revision range or a patch."""
    tree = tree or Path(".")
    quiet = settings["quiet"]
    if (base_rev is None) == (not patch_files):
        raise click.UsageError("give exactly one of --base REV and --patch FILE")
    if sum(1 for f in patch_files if str(f) == "-") > 1:
        raise click.UsageError("standard input ('-') can be given to --patch once")
    if head_rev is not None and base_rev is None:
        raise click.UsageError("--head needs --base")
    selected, dropped = _rule_list(types, "--types"), _rule_list(ignored, "--ignore")
    options, config = build_options((tree,), {**settings, "root": settings["root"] or tree})
    if patch_files:
        try:
            base, head = (), patch_side(options.root, patch_files, strip)
        except NothingToCheck as exc:
            if not quiet:
                click.echo(f"gfpcheck: {exc}: nothing to check", err=True)
            leave(Exit.CLEAN)
            return
    else:
        base, head = revision_sides(options.root, base_rev, head_rev)
    outcome = run_gate(replace(options, keep_analysis=hard_exit()), base, head, progress_bar(quiet))

    def wanted(finding: Finding) -> bool:
        return (not selected or finding.rule in selected) and finding.rule not in dropped

    fresh = [f for f in apply_policy(outcome.new, config) if wanted(f)]
    known = [f for f in apply_policy(outcome.through_change, config) if wanted(f)]
    lines = SourceLines(options.root, dict(head), outcome)
    shown, suppressed = _inline_ignores(fresh + known, lines, settings)
    is_new = {id(f) for f in fresh}
    new = tuple(f for f in shown if id(f) in is_new)
    through = tuple(f for f in shown if id(f) not in is_new)
    new_suppressed = [(f, reason) for f, reason in suppressed if id(f) in is_new]
    reported = sorted([(f, False) for f in new] + [(f, True) for f in through], key=lambda pair: pair[0].sort_key())
    if fmt == "json":
        emit(json_report.render_gate(new, through, outcome.changed_files, outcome.head.stats))
    elif fmt == "sarif":
        emit(sarif_report.render([f for f, _ in reported], options.root, config.severities,
                                 ["unchanged" if pre else "new" for _, pre in reported], suppressed=new_suppressed))
    else:
        emit(checkpatch_report.render(reported, lines.get, terse=terse, show_types=show_types,
                                      summary=not quiet))
    if not quiet:
        click.echo(text_report.gate_summary(new, through, outcome), err=True)
    floor = SEVERITY_ORDER[fail_on]
    leave(Exit.FINDINGS if any(SEVERITY_ORDER[f.severity] >= floor for f in new) else Exit.CLEAN)


def patch_side(root: Path, patch_files: tuple[Path, ...], strip: int) -> tuple[tuple[str, bytes | None], ...]:
    """The files a series of patches changes, as they read with each applied in turn."""

    def read(path: str) -> bytes | None:
        try:
            return (root / path).read_bytes()
        except OSError:
            return None

    series = []
    nothing = ""  # why the last patch had nothing to check
    for patch_file in patch_files:
        try:
            text = sys.stdin.buffer.read() if str(patch_file) == "-" else patch_file.read_bytes()
        except OSError as exc:
            raise PatchError(f"{patch_file}: cannot read the patch: {exc.strerror or exc}") from None
        try:
            series.append((patch_file, patches.parse(text, strip)))
        except NothingToCheck as exc:
            nothing = f"{patch_file}: {exc}"
            continue  # a rename or a mode change in the series: nothing of its own to check
        except PatchError as exc:
            raise PatchError(f"{patch_file}: the patch does not apply: {exc}") from None
    if not series:
        raise NothingToCheck(nothing)
    applied: dict[str, bytes | None] = {}

    def current(path: str) -> bytes | None:
        return applied[path] if path in applied else read(path)

    for patch_file, parsed in series:
        try:
            applied.update(patches.apply(parsed, current))
        except PatchError as exc:
            raise PatchError(f"{patch_file}: the patch does not apply: {exc}") from None
    return tuple(sorted(applied.items()))


class TreeLines:
    """Lines of the tree as scanned, the files given in memory first, each file
    read and split once."""

    def __init__(self, root: Path, given: dict[str, bytes | None]):
        self.root, self.given = root, given
        self.files: dict[str, list[bytes]] = {}

    def text(self, path: str, line: int) -> str | None:
        if path not in self.files:
            data = self.given[path] if path in self.given else _read(self.root / path)
            self.files[path] = (data or b"").splitlines()
        lines = self.files[path]
        if not 0 < line <= len(lines):
            return None
        return lines[line - 1].decode("utf-8", "replace")


class SourceLines(TreeLines):
    """Lines of the head side, for the report, and whether the change touched them."""

    def __init__(self, root: Path, head: dict[str, bytes | None], outcome: GateResult):
        super().__init__(root, head)
        self.changed = outcome.changed_lines

    def get(self, path: str, line: int) -> tuple[str, bool] | None:
        text = self.text(path, line)
        return None if text is None else (text, line in self.changed.get(path, ()))


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


@main.command("rules")
def rules_command() -> None:
    """List the checks gfpcheck reports."""
    emit("".join(f"{check.id:20} {check.severity:8} {check.short}\n" for check in CHECKS))


@main.command("explain")
@click.argument("rule")
def explain_command(rule: str) -> None:
    """Describe a check: what it finds, an example, and how to fix it."""
    check = lookup(rule)
    if check is None:
        raise click.BadParameter(f"unknown rule {rule!r}; `gfpcheck rules` lists them", param_hint="RULE")
    emit(f"{check.id} ({check.severity}): {check.short}\n\n{check.full}\n\nExample:\n"
         + check.indented_example
         + f"\n\nHow to fix:\n{check.help}\n")


@main.command("why")
@click.argument("function")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--file", "file", help="The root-relative file that defines FUNCTION, when several do.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@scan_options
def why_command(function, paths, file, fmt, **settings) -> None:
    """Say every context FUNCTION is entered in (handle held, scope open, NOFS or
    NOIO believed, clean entry), per family, each with its shortest chain, as
    the analysis of PATHS (default: .) knows it: the question to ask before
    changing a mask."""
    options, _config = build_options(tuple(paths) or (Path("."),), settings)
    result = scan(replace(options, keep_analysis=True, reuse_result=False), progress_bar(settings["quiet"]))
    fids = definitions(result.analysis, function, file)
    if not fids:
        where = f" in {file}" if file else ""
        hint = "; check the name, or --file (a path relative to the root)" if file else \
            "; check the name and that its file is scanned (and built, with --kconfig)"
        leave(_say(f"error: no function {function}(){where} in the scanned tree{hint}", Exit.ERROR))
    answers = why(result.analysis, fids)
    emit(why_report.render_json(answers) if fmt == "json" else why_report.render_text(answers))
    leave(Exit.CLEAN)
