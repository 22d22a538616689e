"""Luigi integration: ``ArtifactTarget``, ``ArtifactTaskMixin`` and task identity keys."""

from __future__ import annotations

from ..settings import register_luigi_config
from .identity import identity_key
from .mixin import ArtifactTaskMixin
from .target import ArtifactTarget

register_luigi_config()

__all__ = ["ArtifactTarget", "ArtifactTaskMixin", "identity_key"]
