"""A value's way to and from storage: hashed as it is written, verified before it is unpickled.

The store's order of operations rests on both halves: ``write`` returns only
once the value is complete and hashed (its row is committed after), and
``read`` returns only bytes of the recorded size and digest, the very buffer
that was hashed, never read again from storage. Progress lines are shown for
large values when someone is watching (``values.progress``).
"""

from __future__ import annotations

import logging
from typing import Any

from ..model import Artifact
from ..storage import ValueStorage
from ..values import progress
from ..values.digests import HashingWriter, algorithm_of, read_hashed
from ..values.serializers import DEFAULT_SERIALIZER, get_serializer
from .messages import corrupt

log = logging.getLogger(__name__)


def write(
    values: ValueStorage, location: str, value: Any, name: str, checksum: str
) -> tuple[str, int, str]:
    """Serialize ``value`` (of artifact ``name``) to ``location``: (serializer, size, digest)."""
    serializer = get_serializer(DEFAULT_SERIALIZER)
    with values.open_write(location) as handle:
        shown = progress.start(f"saving {name}", None)
        writer = HashingWriter(handle, checksum, shown)
        try:
            serializer.dump(value, writer)  # type: ignore[arg-type]
        finally:
            digest = writer.finish()
            if shown is not None:
                shown.close()
    return serializer.name, writer.size, digest


def discard(values: ValueStorage, location: str) -> None:
    """Remove a value whose row was never committed (a failed save); at worst it stays."""
    try:
        values.delete(location)
    except Exception:  # the row was never committed, so this is only an orphan
        log.warning("could not remove unpublished value %s", values.uri(location))


def read(values: ValueStorage, artifact: Artifact) -> memoryview:
    """The bytes of ``artifact``, checked against its size and digest.

    ``ChecksumMismatchError`` when they differ (nothing is unpickled);
    ``StorageError`` when the value cannot be read.
    """
    algorithm = algorithm_of(artifact.digest)
    shown = progress.start(f"loading {artifact.name} v{artifact.version}", artifact.size_bytes)
    try:
        with values.open_read(artifact.location) as handle:
            data, digest, actual = read_hashed(handle, artifact.size_bytes, algorithm, shown)
    finally:
        if shown is not None:
            shown.close()
    if actual != artifact.size_bytes or digest != artifact.digest:
        raise corrupt(artifact, actual, digest)
    return data


def load(artifact: Artifact, data: memoryview) -> Any:
    """The value of ``artifact`` from its verified bytes (see ``read``)."""
    return get_serializer(artifact.serializer).load(data)
