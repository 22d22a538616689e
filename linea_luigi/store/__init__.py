"""The store layer: ``ArtifactStore`` (orchestration), garbage collection, the default store."""

from .artifact_store import ArtifactStore

__all__ = ["ArtifactStore"]
