"""gfpcheck: find GFP allocation-context bugs in Linux kernel C sources."""

from importlib import metadata

try:
    __version__ = metadata.version("gfpcheck")
except metadata.PackageNotFoundError:  # run from a checkout that was never installed
    __version__ = "0.1.0+unknown"
