"""Small helpers the workload drivers share."""

from __future__ import annotations

from pathlib import Path


def linea_env(root: Path) -> dict[str, str]:
    """Environment that points the default store of a child at ``root``."""
    return {
        "LINEA_LUIGI_DATABASE_URL": f"sqlite:///{root}/meta.sqlite",
        "LINEA_LUIGI_ARTIFACT_STORAGE_DIR": f"{root}/artifacts",
    }
