"""Statements the store, gc and the browser share: one module per table family (artifacts,
lineage, aliases, versions, history), ``removal`` (rows before values) and ``chunks`` (the
size of an ``IN`` list)."""
