"""The JSON documents of artifacts, shared by the browser's API and ``linea-luigi --json``.

One definition, so ``/api/artifacts/<name>/<version>`` and ``show --json``
cannot drift apart: stable keys, ISO 8601 UTC times.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from ..model import Artifact, TaskRun, as_utc


def iso_utc(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``: unambiguous in JSON and across machines."""
    if moment is None:
        return None
    return as_utc(moment).isoformat().replace("+00:00", "Z")


def short_time(moment: datetime) -> str:
    """``2026-11-25 14:20:36Z``: a table cell, seconds precision, UTC."""
    return as_utc(moment).strftime("%Y-%m-%d %H:%M:%SZ")


def libraries_text(libraries: Mapping[str, str] | None) -> str:
    """``pandas 3.1.1, pyarrow 26.0.1, python 3.11.7``: what wrote a value, by name."""
    if not libraries:
        return "-"
    return ", ".join(f"{name} {libraries[name]}" for name in sorted(libraries))


def artifact_json(a: Artifact) -> dict[str, Any]:
    """The JSON object of one artifact (stable keys, ISO 8601 UTC times)."""
    return {
        "name": a.name,
        "version": a.version,
        "created_at": iso_utc(a.created_at),
        "size_bytes": a.size_bytes,
        "digest": a.digest,
        "task_id": a.task_id,
        "task_family": a.task_family,
        "identity_key": a.identity_key,
        "params": dict(a.params) if a.params is not None else None,
        "uri": a.uri,
        "serializer": a.serializer,
        "value_type": a.value_type,
        "libraries": dict(a.libraries) if a.libraries is not None else None,
        "python_version": a.python_version,
    }


def detail_json(
    a: Artifact,
    upstream: Iterable[Artifact],
    downstream: Iterable[Artifact],
    runs: Iterable[TaskRun],
    aliases: Iterable[str],
    preview: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One version with its lineage, aliases, task runs and preview (``show --json``, the API).

    ``preview`` is ``values.preview``'s document (None: not asked for).
    """
    doc = artifact_json(a)
    doc["upstream"] = [{"name": u.name, "version": u.version} for u in upstream]
    doc["downstream"] = [{"name": d.name, "version": d.version} for d in downstream]
    doc["aliases"] = list(aliases)
    doc["runs"] = [
        {
            "record_id": r.record_id,
            "status": r.status,
            "host": r.host,
            "scheduled_at": iso_utc(r.scheduled_at),
            "started_at": iso_utc(r.started_at),
            "finished_at": iso_utc(r.finished_at),
            "failed_at": iso_utc(r.failed_at),
        }
        for r in runs
    ]
    doc["preview"] = preview
    return doc
