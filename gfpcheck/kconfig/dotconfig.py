"""A kernel `.config`: which CONFIG_ symbols are set, and to what.

`CONFIG_X=y` builds X in, `=m` as a module, a string or number is a value;
`# CONFIG_X is not set` and a symbol the file never names are both unset, as
they are to the preprocessor (a .config names every symbol its kernel has).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

_SET = re.compile(r"(CONFIG_[A-Za-z0-9_]+)=(.*)")
_UNSET = re.compile(r"# (CONFIG_[A-Za-z0-9_]+) is not set")


class KconfigError(Exception):
    """A configuration file that cannot be used."""


@dataclass(frozen=True)
class KernelConfig:
    """The symbols a .config sets (`CONFIG_X` -> "y", "m", or its value)."""

    values: dict[str, str] = field(hash=False, compare=False)
    source: str  # where it was read, as the user named it
    digest: str  # of the settings alone: the same settings from another file are the same build

    def value(self, symbol: str) -> str | None:
        return self.values.get(symbol)

    def enabled(self, symbol: str) -> bool:
        """Built in or as a module: what IS_ENABLED() says."""
        return self.values.get(symbol) in ("y", "m")


def parse_config(text: str, source: str) -> KernelConfig:
    """The settings of a .config's text.  Raises KconfigError when the text names no
    CONFIG_ symbol at all: that is not a kernel configuration."""
    values: dict[str, str] = {}
    named = 0
    for line in text.splitlines():
        line = line.strip()
        match = _SET.fullmatch(line)
        if match:
            value = match.group(2).strip()
            if value.startswith('"') and value.endswith('"') and len(value) >= 2:
                value = value[1:-1]
            values[match.group(1)] = value
            named += 1
        elif _UNSET.fullmatch(line):
            named += 1
    if not named:
        raise KconfigError(f"{source}: not a kernel configuration (no CONFIG_ settings); "
                          "give the .config of a configured kernel tree")
    canonical = "\n".join(f"{k}={values[k]}" for k in sorted(values))
    return KernelConfig(values, source, hashlib.sha256(canonical.encode()).hexdigest()[:24])


def load_config(path: Path) -> KernelConfig:
    """The .config at `path`; raises KconfigError with a one-line reason."""
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise KconfigError(f"{path}: is a directory; give the kernel's .config file") from None
    except OSError as exc:
        raise KconfigError(f"{path}: cannot read the kernel configuration: {exc.strerror or exc}") from None
    return parse_config(data.decode("utf-8", "replace"), str(path))
