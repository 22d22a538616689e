"""The artifact browser that ``linea-luigid`` serves beside Luigi's own pages.

Read-only by construction: the handlers answer ``GET`` (and ``HEAD``) only, read metadata
through ``reader`` and never load a value (unpickling stored bytes is code
execution, and a scheduler must never run the code its workers stored).

- ``reader``: the queries, one per listing page, on the store's database;
- ``graph``: the lineage neighbourhood of one version, laid out for SVG;
- ``handlers``: tornado handlers for the HTML pages and the JSON API;
- ``templates/``: tornado templates (autoescaped), no JavaScript needed but for
  the copy button.
"""

from __future__ import annotations

from .handlers import routes
from .reader import Catalog

__all__ = ["Catalog", "routes"]
