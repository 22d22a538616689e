"""The command line, ``linea-luigi`` (also ``python -m linea_luigi``).

``app`` holds the group ``main``, its global options and the error line; the
command modules register their commands on ``main`` when imported, which is
why they are imported here: ``reading`` (list, versions, show, get, lineage),
``upkeep`` (delete, tag, untag, gc, migrate), ``cache`` (cache, cache clear)
and ``doctor``. ``params`` holds the argument types and ``render`` the
tables, JSON arrays and trees.
"""

from . import cache, doctor, reading, upkeep  # noqa: F401  (imported to register their commands)
from .app import main

__all__ = ["main"]
