"""The command line, ``linea-luigi`` (also ``python -m linea_luigi``): commands and rendering."""

from .commands import main

__all__ = ["main"]
