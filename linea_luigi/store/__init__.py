"""The store layer: ``ArtifactStore`` and what it orchestrates.

``artifact_store`` (the order of operations), ``records`` (the database side:
engine, transactions, rows as ``Artifact``), ``value_io`` (values written
hashed, read verified), ``gc`` (retention and orphan values), ``params``
(``find``'s parameter matching), ``messages`` (error messages), ``default``
(the configured default store). Statements live in ``db.queries``.
"""

from .artifact_store import ArtifactStore

__all__ = ["ArtifactStore"]
