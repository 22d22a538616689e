"""Value storage on any fsspec filesystem: a URL plus ``storage_options``.

``ValueStorage`` opens, reads, checks, deletes and lists values by their
location relative to a storage root; the names of those locations are the
layout's (``layout``). The rules it keeps, and where they live:

- publishing is atomic on every backend, so a reader never sees half a value
  (``writing``: a temporary sibling renamed into place, a transactional file,
  or an S3 multipart upload, ``multipart``);
- every failure of the storage itself, and every failure to connect to it, leaves
  as one ``StorageError`` that says what to check and never shows a credential;
  errors that are not the storage's pass through unchanged (``errors``);
- the fsspec filesystem is made once per process and root (``_resolve`` below:
  fsspec objects do not survive a fork).

A local folder is read and written with the operating system's own calls:
fsspec's local layer normalises every path on every call, which cost more
than writing a small value itself. Every other protocol goes through fsspec.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, BinaryIO

import fsspec
from fsspec.spec import AbstractFileSystem

from ..errors import ArtifactStoreError, ConfigError, StorageError
from . import multipart
from .errors import StorageErrors, is_missing_bucket
from .writing import ValueWriter

_RENAMING_PROTOCOLS = {"file", "local"}
#: protocols whose files publish only on ``commit()`` and throw away on ``discard()``
#: (fsspec's memory files, for one, are visible from the moment they are opened)
_TRANSACTIONAL_PROTOCOLS = {"s3", "s3a", "gs", "gcs", "abfs", "abfss", "az"}

_filesystems: dict[tuple[int, str, str], tuple[AbstractFileSystem, str]] = {}
_fs_lock = threading.Lock()


def _resolve(root: str, storage_options: dict[str, Any]) -> tuple[AbstractFileSystem, str]:
    """The filesystem and root path for this process (fsspec objects are per pid).

    Creating the filesystem may connect (FTP, SFTP): its errors are raised
    as they are, for ``ValueStorage._fs`` to translate.
    """
    key = (os.getpid(), root, json.dumps(storage_options, sort_keys=True, default=str))
    found = _filesystems.get(key)
    if found is None:
        with _fs_lock:
            found = _filesystems.get(key)
            if found is None:
                fs, path = fsspec.core.url_to_fs(root, **storage_options)
                found = (fs, str(path).rstrip("/") or "/")
                _filesystems[key] = found
    return found


def _protocols(fs: AbstractFileSystem) -> tuple[str, ...]:
    proto = fs.protocol
    return (proto,) if isinstance(proto, str) else tuple(proto)


class ValueStorage:
    """Open, read and delete values by location relative to a storage root."""

    def __init__(self, root: str, storage_options: dict[str, Any] | None = None) -> None:
        root = str(root)
        if "://" not in root:
            root = os.path.abspath(os.path.expanduser(root))
        self._root = root
        self._options = dict(storage_options or {})
        self._errors = StorageErrors(root, self._options)
        fs, path = self._fs  # reject bad URLs and unreachable servers now, not at first save
        #: the root as recorded in the database: credentials included, never printed
        self.root_uri = fs.unstrip_protocol(path)
        #: the root for messages and ``Artifact.uri``: credentials masked
        self.display_root = self._errors.scrub(self.root_uri)
        self._renames = bool(_RENAMING_PROTOCOLS & set(_protocols(fs)))
        #: the folder, when values are local files handled with os calls
        self._local: str | None = path if self._renames else None
        self._transactional = bool(_TRANSACTIONAL_PROTOCOLS & set(_protocols(fs)))
        #: S3 through s3fs: parts uploaded in the background (see ``multipart``)
        self._multipart = self._transactional and multipart.supports(fs)
        if self._multipart and multipart.part_size_for(fs) < multipart.MIN_PART_SIZE:
            raise ConfigError(
                f"storage_options default_block_size={multipart.part_size_for(fs)} is below "
                f"S3's smallest part ({multipart.MIN_PART_SIZE} bytes, 5 MiB); raise it."
            )
        self._writer = self._new_writer()

    def __getstate__(self) -> dict[str, Any]:
        return {
            "_root": self._root,
            "_options": self._options,
            "root_uri": self.root_uri,
            "_renames": self._renames,
            "_local": self._local,
            "_transactional": self._transactional,
            "_multipart": self._multipart,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("_multipart", False)  # pickled by an older linea_luigi
        self._errors = StorageErrors(self._root, self._options)
        self.display_root = self._errors.scrub(self.root_uri)
        self._writer = self._new_writer()

    def _new_writer(self) -> ValueWriter:
        """A fresh writer (also for an unpickled storage): no folders made, no aborts pending."""
        return ValueWriter(
            self._errors,
            self.display_root,
            local=self._local,
            transactional=self._transactional,
            multipart=self._multipart,
        )

    @property
    def _fs(self) -> tuple[AbstractFileSystem, str]:
        """The filesystem and root path, connected on first use in each process.

        A bad URL or option is a ``ConfigError``; a server that cannot be reached
        (refused, unknown host, timeout, rejected login) is a ``StorageError``.
        """
        try:
            return _resolve(self._root, self._options)
        except (ValueError, ImportError, TypeError) as exc:
            raise self._errors.misconfigured(exc) from self._errors.cause(exc)
        except ArtifactStoreError:
            raise
        except Exception as exc:
            raise self._errors.unreachable(exc) from self._errors.cause(exc)

    def _fail(self, doing: str, location: str, exc: BaseException) -> None:
        """Raise ``StorageError`` if ``exc`` is the storage's failure; else return."""
        self._errors.raise_if_failure(doing, self.uri(location), exc)

    def _path(self, location: str) -> str:
        return f"{self._fs[1]}/{location}"

    def uri(self, location: str) -> str:
        """Full URL of a stored value (e.g. ``file:///…`` or ``s3://bucket/…``), for people.

        ``Artifact.uri`` is this: a credential in the root's URL is masked.
        """
        return f"{self.display_root}/{location}"

    # -- writing --------------------------------------------------------------------

    def open_write(self, location: str) -> AbstractContextManager[BinaryIO]:
        """Write a value; it becomes visible at ``location`` only if the block succeeds.

        A storage failure anywhere (opening, the writes of the block, the final
        upload or rename) raises ``StorageError`` after the partial value was
        thrown away. How each backend keeps that promise: ``writing``.
        """
        if self._local is not None:
            return self._writer.open_local(location)
        fs, root = self._fs
        return self._writer.open_remote(fs, f"{root}/{location}", location)

    # -- reading --------------------------------------------------------------------

    def open_read(self, location: str) -> AbstractContextManager[BinaryIO]:
        """Read a value; storage failures in the block (e.g. mid-stream) raise ``StorageError``."""
        return self._reading(location, ranged=False)

    def open_ranges(self, location: str) -> AbstractContextManager[BinaryIO]:
        """A seekable file that reads only the byte ranges asked for (no read-ahead).

        For readers that skip most of a file (a Parquet footer and a few
        columns): on object storage each ``read`` is one ranged request.
        """
        return self._reading(location, ranged=True)

    @contextmanager
    def _reading(self, location: str, *, ranged: bool) -> Iterator[BinaryIO]:
        try:
            if self._local is not None:
                path = os.path.join(self._local, location)
                handle = open(path, "rb", buffering=-1 if ranged else 0)  # noqa: SIM115
            elif ranged:
                handle = self._fs[0].open(self._path(location), "rb", cache_type="none")
            else:
                handle = self._fs[0].open(self._path(location), "rb")
        except FileNotFoundError as exc:
            if is_missing_bucket(exc):
                self._fail("read", location, exc)
            raise StorageError(
                f"The stored value {self.uri(location)} is missing: the metadata row exists "
                "but its value was removed outside linea_luigi. Delete this version and save again."
            ) from self._errors.cause(exc)
        except Exception as exc:
            self._fail("read", location, exc)
            raise
        try:
            with handle:
                yield handle
        except BaseException as exc:
            self._fail("read", location, exc)
            raise

    def exists(self, location: str) -> bool:
        try:
            if self._local is not None:
                return os.path.exists(os.path.join(self._local, location))
            return bool(self._fs[0].exists(self._path(location)))
        except Exception as exc:
            self._fail("check", location, exc)
            raise

    def delete(self, location: str) -> None:
        """Remove one value; a value already gone is not an error."""
        try:
            if self._local is not None:
                os.remove(os.path.join(self._local, location))
            else:
                self._fs[0].rm_file(self._path(location))
        except FileNotFoundError as exc:
            if is_missing_bucket(exc):
                self._fail("delete", location, exc)
        except Exception as exc:
            self._fail("delete", location, exc)
            raise

    # -- listing (garbage collection only; never on the hot path) ----------------------

    def list_values(self) -> Iterator[StoredFile]:
        """Every file under the root, as locations relative to it, with size and mtime.

        ``modified`` is None where the backend does not say; callers treat
        such a file as new. Listing is uncached: a stale listing could report
        a value that was just written as missing, or a deleted one as present.
        """
        try:
            if self._local is not None:
                yield from self._list_local(self._local)
                return
            fs, root = self._fs
            fs.invalidate_cache(root)
            if not fs.exists(root):
                return
            for path, info in fs.find(root, detail=True).items():
                location = str(path)[len(root) :].lstrip("/")
                size = int(info.get("size") or 0)
                yield StoredFile(location, size, _modified(info))
        except Exception as exc:
            self._fail("list", "", exc)
            raise

    @staticmethod
    def _list_local(folder: str) -> Iterator[StoredFile]:
        for parent, _dirs, files in os.walk(folder):
            for file_name in files:
                path = os.path.join(parent, file_name)
                try:
                    st = os.stat(path)
                except FileNotFoundError:  # removed while we walked
                    continue
                location = os.path.relpath(path, folder).replace(os.sep, "/")
                modified = datetime.fromtimestamp(st.st_mtime, timezone.utc)
                yield StoredFile(location, st.st_size, modified)


@dataclass(frozen=True)
class StoredFile:
    """A file found under the storage root (``ValueStorage.list_values``)."""

    location: str
    size_bytes: int
    #: last modification (UTC), or None when the backend does not report it
    modified: datetime | None


def _modified(info: dict[str, Any]) -> datetime | None:
    """The modification time in an fsspec ``info`` dict (the key differs per backend)."""
    for key in ("LastModified", "mtime", "last_modified", "updated", "created"):
        value = info.get(key)
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return datetime.fromtimestamp(float(value), timezone.utc)
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    return None
