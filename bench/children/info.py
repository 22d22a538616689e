"""What code a child measures: the ``linea_luigi`` it imports and package versions."""

from __future__ import annotations

from importlib import metadata
from typing import Any

PACKAGES = ("luigi", "sqlalchemy", "cloudpickle", "fsspec", "s3fs", "numpy", "gokart", "moto")


def describe() -> dict[str, Any]:
    import linea_luigi

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "-"
    return {"seconds": 0.0, "linea_file": linea_luigi.__file__, "versions": versions}
