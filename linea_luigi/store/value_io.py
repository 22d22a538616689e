"""A value's way to and from storage: hashed as it is written, verified before it is parsed.

The store's order of operations rests on both halves: ``write`` returns only
once the value is complete and hashed (its row is committed after), and
``read`` returns only bytes of the recorded size and digest, the very buffer
that was hashed, never read again from storage. Column loads of Parquet
values (``read_columns``) are the one exception, by design: they read a few
byte ranges, so they check the file's size and every page's CRC instead of
the whole-file digest. Progress lines are shown for large values when
someone is watching (``values.progress``).

With a local cache of remote values (``storage.cache``), a load reads a
verified entry instead of storage, and both a load that reads storage and a
save copy the bytes into the cache as they pass: the entry is published
only once they matched their digest (a load) or the upload completed (a
save). A column load reads a cached entry's byte ranges when there is one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

from ..errors import ArtifactStoreError, ChecksumMismatchError, SerializationError
from ..model import Artifact
from ..settings.urls import mask_secrets
from ..storage import ValueStorage, layout
from ..storage.cache import ValueCache
from ..values import libraries, parquet, progress
from ..values import preview as value_preview
from ..values.digests import HashingWriter, algorithm_of, read_hashed
from ..values.serializers import CLOUDPICKLE, Choice, choose, get_serializer
from .messages import bad_page, columns_need_parquet, corrupt

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Written:
    """A value written and hashed, not yet published: the columns its row records."""

    location: str
    serializer: str
    size_bytes: int
    digest: str
    value_type: str
    libraries: dict[str, str]

    def columns(self) -> dict[str, Any]:
        """The row's columns for this value (a flat copy: ``asdict`` would copy deeply)."""
        return dict(self.__dict__)

    @classmethod
    def of(
        cls,
        location: str,
        value: Any,
        choice: Choice,
        writer: HashingWriter,
        digest: str,
        packages: set[str],
    ) -> Written:
        """The columns of ``value`` as ``choice`` wrote it through ``writer``.

        ``packages``: those the serializer noted; the value's own package is added.
        """
        own = libraries.top_package(type(value).__module__)
        if own is not None:
            packages.add(own)
        versions = libraries.versions(packages)
        return cls(
            location, choice.serializer.name, writer.size, digest, choice.value_type, versions
        )


def write(
    values: ValueStorage,
    value: Any,
    name: str,
    checksum: str,
    serializer: str,
    cache: ValueCache | None = None,
) -> Written:
    """Serialize ``value`` (of artifact ``name``) with ``serializer`` (or ``auto``).

    With a ``cache``, the bytes are also copied into it while they are
    uploaded, and the copy is published under the digest once the upload
    completed (a failed save leaves no copy).
    """
    choice = choose(value, serializer)
    chosen = choice.serializer
    location = layout.new_location(name, chosen.extension)
    filling = None if cache is None else cache.filling()
    try:
        with values.open_write(location) as handle:
            shown = progress.start(f"saving {name}", None)
            target = handle if filling is None else filling.writer(handle)
            writer = HashingWriter(target, checksum, shown)
            try:
                packages = chosen.dump(choice.prepared, writer)  # type: ignore[arg-type]
            finally:
                digest = writer.finish()
                if shown is not None:
                    shown.close()
    except BaseException:
        if filling is not None:
            filling.discard()
        raise
    if filling is not None:
        filling.publish(digest)
    return Written.of(location, value, choice, writer, digest, packages)


def discard(values: ValueStorage, location: str) -> None:
    """Remove a value whose row was never committed (a failed save); at worst it stays."""
    try:
        values.delete(location)
    except Exception:  # the row was never committed, so this is only an orphan
        log.warning("could not remove unpublished value %s", values.uri(location))


def read(values: ValueStorage, artifact: Artifact, cache: ValueCache | None = None) -> memoryview:
    """The bytes of ``artifact``, checked against its size and digest.

    ``ChecksumMismatchError`` when they differ (nothing is parsed);
    ``StorageError`` when the value cannot be read. With a ``cache``: its
    entry when it verifies, else storage's bytes, copied into the cache as
    they are read and published there only if they matched.
    """
    if cache is not None:
        hit = _cached(cache, artifact)
        if hit is not None:
            return hit
    algorithm = algorithm_of(artifact.digest)
    filling = None if cache is None else cache.filling(artifact.size_bytes)
    shown = progress.start(f"loading {artifact.name} v{artifact.version}", artifact.size_bytes)
    try:
        with values.open_read(artifact.location) as raw:
            source = raw if filling is None else filling.reader(raw)
            data, digest, actual = read_hashed(source, artifact.size_bytes, algorithm, shown)
    except BaseException:
        if filling is not None:
            filling.discard()
        raise
    finally:
        if shown is not None:
            shown.close()
    if actual != artifact.size_bytes or digest != artifact.digest:
        if filling is not None:
            filling.discard()
        raise corrupt(artifact, actual, digest)
    if filling is not None:
        filling.publish(artifact.digest)
    return data


def _cached(cache: ValueCache, artifact: Artifact) -> memoryview | None:
    """The cache's verified copy of ``artifact``, or None (a miss, or a damaged entry removed)."""
    what = f"{artifact.name} v{artifact.version}"
    shown = progress.start(f"loading {what} (cached)", artifact.size_bytes)
    try:
        return cache.read(artifact.digest, artifact.size_bytes, what, shown)
    finally:
        if shown is not None:
            shown.close()


def load(artifact: Artifact, data: memoryview) -> Any:
    """The value of ``artifact`` from its verified bytes (see ``read``).

    A Parquet load releases ``data`` once the table is decoded, so that the
    file's bytes and the frame are not both held while the frame is built.
    """
    serializer = get_serializer(artifact.serializer)
    written = artifact.libraries or {}
    try:
        value = serializer.load(data, artifact.value_type, written)
    except SerializationError as exc:
        raise SerializationError(f"Artifact {artifact.name!r} v{artifact.version}: {exc}") from exc
    if serializer.name == CLOUDPICKLE:
        libraries.warn_major_changes(written, f"{artifact.name} v{artifact.version}")
    return value


def read_columns(
    values: ValueStorage,
    artifact: Artifact,
    columns: Sequence[str],
    cache: ValueCache | None = None,
) -> Any:
    """Only ``columns`` of a Parquet ``artifact``: the footer and those columns' byte ranges.

    Checks the file's size against the record first, then every page read
    against its CRC (``ChecksumMismatchError`` either way). The ranges come
    from the ``cache``'s entry when it has one (a damaged entry is removed
    and storage read instead), else from storage.
    """
    if artifact.serializer != parquet.ParquetSerializer.name:
        raise columns_need_parquet(artifact)
    wanted = parquet.check_columns(columns)
    entry = None if cache is None else cache.open_entry(artifact.digest)
    if cache is not None and entry is not None:
        with entry:
            try:
                return _columns_of(entry, artifact, wanted)
            except ChecksumMismatchError as exc:
                cache.reject(entry, str(exc), f"{artifact.name} v{artifact.version}")
    with values.open_ranges(artifact.location) as handle:
        return _columns_of(handle, artifact, wanted)


def _columns_of(handle: BinaryIO, artifact: Artifact, wanted: list[str]) -> Any:
    """``wanted`` columns read from ``handle``, its size and each page's CRC checked."""
    size = handle.seek(0, 2)
    if size != artifact.size_bytes:
        raise corrupt(artifact, size, None)
    handle.seek(0)
    try:
        return parquet.read_columns(handle, wanted, artifact.value_type)
    except parquet.PageChecksumError as exc:
        raise bad_page(artifact, str(exc)) from None
    except SerializationError as exc:
        raise SerializationError(f"Artifact {artifact.name!r} v{artifact.version}: {exc}") from exc


def preview(values: ValueStorage, artifact: Artifact) -> dict[str, Any]:
    """What the value looks like, read without loading it (``values.preview``).

    Never unpickles: a pickle's preview says so without opening storage. A
    Parquet preview reads the footer and the first pages, an ``.npy`` one the
    header. A storage or format problem is described, not raised.
    """
    if artifact.serializer == CLOUDPICKLE:
        return dict(value_preview.PICKLE_PREVIEW)
    try:
        with values.open_ranges(artifact.location) as handle:
            return value_preview.of_file(artifact.serializer, handle, artifact.size_bytes)
    except ArtifactStoreError as exc:
        return {"kind": "unavailable", "note": mask_secrets(str(exc))}
