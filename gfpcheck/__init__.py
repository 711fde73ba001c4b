"""gfpcheck: find GFP allocation-context bugs in Linux kernel C sources."""

__version__ = "0.1.0"
