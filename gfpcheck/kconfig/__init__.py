"""What a kernel configuration builds: its .config read, Kbuild's choice of
.c files, and the preprocessor conditionals and IS_ENABLED() it decides."""

from .conditions import apply_config
from .dotconfig import KconfigError, KernelConfig, load_config
from .kbuild import BuiltSet, built_sources

__all__ = ["BuiltSet", "KconfigError", "KernelConfig", "apply_config", "built_sources", "load_config"]
