"""Configuration: options, URLs and their masking, luigi.cfg, and the resolved ``Settings``.

The lowest layer but errors: it imports nothing else of the package, so every
layer above may read settings without pulling in the store, the database or Luigi.
"""

from .luigi_cfg import ConfigWarning, register_luigi_config
from .options import options
from .resolve import explain, resolve_settings
from .settings import Settings

__all__ = [
    "ConfigWarning",
    "Settings",
    "explain",
    "options",
    "register_luigi_config",
    "resolve_settings",
]
