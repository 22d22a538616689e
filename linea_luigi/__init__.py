"""linea_luigi: versioned artifacts for Luigi pipelines.

Values are serialized with cloudpickle into any fsspec location; their metadata
(versions, checksums, Luigi task identity, lineage) lives in one SQLAlchemy
schema on SQLite or PostgreSQL.
"""

from __future__ import annotations

from .errors import (
    ArtifactInUseError,
    ArtifactNotFoundError,
    ArtifactStoreError,
    ChecksumMismatchError,
    CommitOutcomeUnknownError,
    ConfigError,
    DatabaseError,
    DatabaseLockedError,
    InvalidArgumentError,
    SchemaTooNewError,
    SerializationError,
    StorageError,
    StoreMismatchError,
    TaskLockTimeoutError,
)
from .integration import ArtifactTarget, ArtifactTaskMixin
from .integration.history import DbTaskHistory
from .model import Artifact, TaskInfo, TaskRun
from .settings import Settings, resolve_settings
from .settings.options import options
from .store import ArtifactStore
from .store.default import artifact_store, delete, get, load, save

__version__ = "0.1.0"

__all__ = [
    "Artifact",
    "ArtifactInUseError",
    "ArtifactNotFoundError",
    "ArtifactStore",
    "ArtifactStoreError",
    "ArtifactTarget",
    "ArtifactTaskMixin",
    "ChecksumMismatchError",
    "CommitOutcomeUnknownError",
    "ConfigError",
    "DatabaseError",
    "DatabaseLockedError",
    "DbTaskHistory",
    "InvalidArgumentError",
    "SchemaTooNewError",
    "SerializationError",
    "Settings",
    "StorageError",
    "StoreMismatchError",
    "TaskInfo",
    "TaskLockTimeoutError",
    "TaskRun",
    "__version__",
    "artifact_store",
    "delete",
    "get",
    "load",
    "options",
    "resolve_settings",
    "save",
]
