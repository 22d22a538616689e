"""Value storage on any fsspec filesystem: a URL plus ``storage_options``.

Publishing is atomic on every backend: on filesystems with directories the
value is written under a temporary sibling name and renamed into place; on
object stores it is uploaded as one object (multipart uploads are only
completed at the end and aborted on error), so a reader never sees half a value.

A local folder is read and written with the operating system's own calls:
fsspec's local layer normalises every path on every call, which cost more
than writing a small value itself. Every other protocol goes through fsspec.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO, cast

import fsspec
from fsspec.spec import AbstractFileSystem

from ..errors import ConfigError, StorageError

_RENAMING_PROTOCOLS = {"file", "local"}
TMP_MARKER = ".tmp-"

_filesystems: dict[tuple[int, str, str], tuple[AbstractFileSystem, str]] = {}
_fs_lock = threading.Lock()


def _resolve(root: str, storage_options: dict[str, Any]) -> tuple[AbstractFileSystem, str]:
    """The filesystem and root path for this process (fsspec objects are per pid)."""
    key = (os.getpid(), root, json.dumps(storage_options, sort_keys=True, default=str))
    found = _filesystems.get(key)
    if found is None:
        with _fs_lock:
            found = _filesystems.get(key)
            if found is None:
                try:
                    fs, path = fsspec.core.url_to_fs(root, **storage_options)
                except (ValueError, ImportError, TypeError) as exc:
                    raise ConfigError(
                        f"Cannot open artifact storage {root!r} with storage_options keys "
                        f"{sorted(storage_options)}: {exc}. Check the URL's scheme and the options."
                    ) from exc
                found = (fs, str(path).rstrip("/") or "/")
                _filesystems[key] = found
    return found


class ValueStorage:
    """Open, read and delete values by location relative to a storage root."""

    def __init__(self, root: str, storage_options: dict[str, Any] | None = None) -> None:
        root = str(root)
        if "://" not in root:
            root = os.path.abspath(os.path.expanduser(root))
        self._root = root
        self._options = dict(storage_options or {})
        fs, path = _resolve(self._root, self._options)  # reject bad URLs now, not at first save
        self.root_uri = fs.unstrip_protocol(path)
        self._renames = bool(_RENAMING_PROTOCOLS & set(_protocols(fs)))
        #: the folder, when values are local files handled with os calls
        self._local: str | None = path if self._renames else None
        self._made_dirs: set[str] = set()

    def __getstate__(self) -> dict[str, Any]:
        return {
            "_root": self._root,
            "_options": self._options,
            "root_uri": self.root_uri,
            "_renames": self._renames,
            "_local": self._local,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._made_dirs = set()

    @property
    def _fs(self) -> tuple[AbstractFileSystem, str]:
        return _resolve(self._root, self._options)

    def _path(self, location: str) -> str:
        return f"{self._fs[1]}/{location}"

    def uri(self, location: str) -> str:
        """Full URL of a stored value (e.g. ``file:///…`` or ``s3://bucket/…``)."""
        return f"{self.root_uri}/{location}"

    @contextmanager
    def open_write(self, location: str) -> Iterator[BinaryIO]:
        """Write a value; it becomes visible at ``location`` only if the block succeeds."""
        if self._local is not None:
            with self._open_local_write(location) as handle:
                yield handle
            return
        fs, _ = self._fs
        final = self._path(location)
        try:
            if self._renames:
                fs.makedirs(fs._parent(final), exist_ok=True)
                temp = f"{final}{TMP_MARKER}{uuid.uuid4().hex}"
                handle = fs.open(temp, "wb")
            else:
                temp = final
                handle = fs.open(final, "wb", autocommit=False)
        except OSError as exc:
            raise StorageError(f"Cannot open {self.uri(location)} for writing: {exc}") from exc
        try:
            yield handle
            handle.close()
            if self._renames:
                fs.mv(temp, final)
            else:
                handle.commit()
        except BaseException:
            self._abandon(fs, handle, temp)
            raise

    def _abandon(self, fs: AbstractFileSystem, handle: Any, temp: str) -> None:
        """Throw away a partial write; never let it become visible."""
        try:
            if self._renames:
                handle.close()
                fs.rm_file(temp)
            else:
                handle.discard()
                handle.closed = True
        except Exception:  # best effort: an orphaned temp file is harmless
            pass

    @contextmanager
    def _open_local_write(self, location: str) -> Iterator[BinaryIO]:
        final = os.path.join(cast(str, self._local), location)
        temp = f"{final}{TMP_MARKER}{uuid.uuid4().hex}"
        folder = os.path.dirname(final)
        try:
            if folder not in self._made_dirs:
                os.makedirs(folder, exist_ok=True)
                self._made_dirs.add(folder)
            try:
                handle = open(temp, "wb")  # noqa: SIM115 (closed below, or abandoned)
            except FileNotFoundError:  # the folder was removed since we made it
                os.makedirs(folder, exist_ok=True)
                handle = open(temp, "wb")  # noqa: SIM115
        except OSError as exc:
            raise StorageError(f"Cannot open {self.uri(location)} for writing: {exc}") from exc
        try:
            yield handle
            handle.close()
            os.replace(temp, final)
        except BaseException:
            handle.close()
            with contextlib.suppress(OSError):  # an orphaned temp file is harmless
                os.remove(temp)
            raise

    @contextmanager
    def open_read(self, location: str) -> Iterator[BinaryIO]:
        fs, _ = self._fs
        try:
            if self._local is not None:
                handle = open(os.path.join(self._local, location), "rb", buffering=0)  # noqa: SIM115
            else:
                handle = fs.open(self._path(location), "rb")
        except FileNotFoundError as exc:
            raise StorageError(
                f"The stored value {self.uri(location)} is missing: the metadata row exists "
                "but its value was removed outside linea_luigi. Delete this version and save again."
            ) from exc
        except OSError as exc:
            raise StorageError(f"Cannot read {self.uri(location)}: {exc}") from exc
        with handle:
            yield handle

    def exists(self, location: str) -> bool:
        if self._local is not None:
            return os.path.exists(os.path.join(self._local, location))
        fs, _ = self._fs
        return bool(fs.exists(self._path(location)))

    def delete(self, location: str) -> None:
        """Remove one value; a value already gone is not an error."""
        fs, _ = self._fs
        try:
            if self._local is not None:
                os.remove(os.path.join(self._local, location))
            else:
                fs.rm_file(self._path(location))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StorageError(f"Cannot delete {self.uri(location)}: {exc}") from exc


def _protocols(fs: AbstractFileSystem) -> tuple[str, ...]:
    proto = fs.protocol
    return (proto,) if isinstance(proto, str) else tuple(proto)
