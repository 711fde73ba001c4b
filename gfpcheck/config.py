"""A tree's own settings, `.gfpcheck.toml` at its root, and the baseline file.

    rules = ["scripts/gfpcheck"]        # extra rules directories, relative to the root
    exclude = ["drivers/staging/**"]    # more globs of root-relative paths to skip
    disable = ["nofs-needless"]         # checks not reported
    baseline = ".gfpcheck-baseline.json"
    [severity]
    nofs-inconsistent = "error"         # severity overrides

What is wrong with the file is one ConfigError naming the file and the key.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from .checks import BY_ID
from .files import write_atomically
from .findings import Finding

CONFIG_NAME = ".gfpcheck.toml"
# Version 2: fingerprints no longer name the file, so a finding survives a rename.
# Version 3: a finding reported at its fix site is fingerprinted by that and its source.
BASELINE_FORMAT = "gfpcheck-baseline/3"
OLD_BASELINE_FORMATS = ("gfpcheck-baseline/1", "gfpcheck-baseline/2")
SEVERITIES = ("error", "warning", "note")


class ConfigError(Exception):
    """A configuration or baseline file that cannot be used."""


@dataclass(frozen=True)
class Config:
    rules_dirs: tuple[Path, ...] = ()
    excludes: tuple[str, ...] = ()
    disabled: frozenset[str] = frozenset()
    severities: dict[str, str] = field(default_factory=dict)
    baseline: Path | None = None


def load_config(root: Path, path: Path | None = None) -> Config:
    """The settings of the tree at `root` (from `path` when given); defaults when there is no file."""
    explicit = path is not None
    path = path or root / CONFIG_NAME
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"{path}: no such configuration file") from None
        return Config()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not a gfpcheck configuration: values nested too deeply") from None
    known = {"rules", "exclude", "disable", "severity", "baseline"}
    for key in data:
        if key not in known:
            raise ConfigError(f"{path}: unknown key '{key}' (known: {', '.join(sorted(known))})")
    base = path.parent
    return Config(
        rules_dirs=tuple(base / d for d in _strings(data, "rules", path)),
        excludes=tuple(_strings(data, "exclude", path)),
        disabled=frozenset(_rule_ids(_strings(data, "disable", path), path, "disable")),
        severities=_severities(data.get("severity", {}), path),
        baseline=base / data["baseline"] if isinstance(data.get("baseline"), str) else _no_baseline(data, path),
    )


def _strings(data: dict, key: str, path: Path) -> list[str]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{path}: '{key}' must be a list of strings")
    return value


def _rule_ids(ids: list[str], path: Path, key: str) -> list[str]:
    for rule in ids:
        if rule not in BY_ID:
            raise ConfigError(f"{path}: {key}: unknown rule '{rule}' (`gfpcheck rules` lists them)")
    return ids


def _severities(table: object, path: Path) -> dict[str, str]:
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: 'severity' must be a table of rule = \"error\" | \"warning\" | \"note\"")
    _rule_ids(list(table), path, "severity")
    for rule, level in table.items():
        if level not in SEVERITIES:
            raise ConfigError(f"{path}: severity.{rule}: '{level}' is not one of {', '.join(SEVERITIES)}")
    return dict(sorted(table.items()))


def _no_baseline(data: dict, path: Path) -> None:
    if "baseline" in data:
        raise ConfigError(f"{path}: 'baseline' must be a path (a string)")


def apply_policy(findings: tuple[Finding, ...], config: Config) -> tuple[Finding, ...]:
    """Findings with disabled checks dropped and severities overridden."""
    return tuple(replace(f, severity=config.severities.get(f.rule, f.severity))
                 for f in findings if f.rule not in config.disabled)


# -- baselines ------------------------------------------------------------------

def write_baseline(path: Path, findings: tuple[Finding, ...]) -> None:
    """Record the findings' fingerprints, with enough beside each to read the file."""
    entries = sorted(({"fingerprint": f.fingerprint, "rule": f.rule, "file": f.file, "function": f.function,
                       "gfp": f.gfp} for f in findings), key=lambda e: (e["file"], e["function"], e["fingerprint"]))
    document = {"format": BASELINE_FORMAT, "findings": entries}
    try:
        # through a temporary file: a full disk leaves the old baseline whole
        write_atomically(path, (json.dumps(document, indent=2, sort_keys=True) + "\n").encode())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write the baseline: {exc.strerror or exc}") from None


def read_baseline(path: Path) -> frozenset[str]:
    """The fingerprints a baseline file records."""
    try:
        document = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such baseline file (write one with --write-baseline)") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a gfpcheck baseline: {getattr(exc, 'strerror', None) or exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not a gfpcheck baseline: nested too deeply") from None
    if isinstance(document, dict) and document.get("format") in OLD_BASELINE_FORMATS:
        raise ConfigError(f"{path}: written by an older gfpcheck whose fingerprints differ; "
                          f"record it again with --write-baseline")
    if not isinstance(document, dict) or document.get("format") != BASELINE_FORMAT \
            or not isinstance(document.get("findings"), list):
        raise ConfigError(f"{path}: not a gfpcheck baseline (expected format {BASELINE_FORMAT})")
    try:
        return frozenset(str(entry["fingerprint"]) for entry in document["findings"])
    except (TypeError, KeyError):
        raise ConfigError(f"{path}: not a gfpcheck baseline: an entry has no fingerprint") from None


def split_baselined(findings: tuple[Finding, ...], known: frozenset[str]) -> tuple[tuple[Finding, ...], int]:
    """Findings not in the baseline, and how many were."""
    shown = tuple(f for f in findings if f.fingerprint not in known)
    return shown, len(findings) - len(shown)
