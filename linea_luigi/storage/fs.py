"""Value storage on any fsspec filesystem: a URL plus ``storage_options``.

Publishing is atomic on every backend, so a reader never sees half a value:
on S3 a value is streamed as one multipart upload whose parts go up while the
value is still being written (``multipart.MultipartWriter``), completed only
at the end and aborted on error (a small value is one PUT at the end); on the
other object stores whose files honour ``autocommit=False`` (GCS, Azure) the
file's own upload is committed or discarded the same way; everywhere else
(local folders, ``memory://``, SFTP, ...) it is written under a temporary
sibling name and moved into place.

A local folder is read and written with the operating system's own calls:
fsspec's local layer normalises every path on every call, which cost more
than writing a small value itself. Every other protocol goes through fsspec.

Every failure of the storage itself while opening, writing, committing,
reading or deleting (a full disk, a missing bucket, refused credentials, an
unreachable endpoint), and every failure to connect to it at all, leaves as
one ``StorageError`` that names the location, says what to check and never
shows a credential: locations are shown through ``urls.mask_secrets``, and the
values of secret-looking ``storage_options`` are scrubbed. Errors that are not
the storage's (a value that cannot be pickled, ``KeyboardInterrupt``, our own
errors) pass through unchanged. The library's original error stays chained as
``__cause__`` for debugging, unless its text holds a credential.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, BinaryIO, cast

import fsspec
from fsspec.spec import AbstractFileSystem

from ..errors import ArtifactStoreError, ConfigError, StorageError
from ..settings.urls import is_secret_key, mask_secrets, secrets_in
from . import layout, multipart

log = logging.getLogger(__name__)

_RENAMING_PROTOCOLS = {"file", "local"}
#: protocols whose files publish only on ``commit()`` and throw away on ``discard()``
#: (fsspec's memory files, for one, are visible from the moment they are opened)
_TRANSACTIONAL_PROTOCOLS = {"s3", "s3a", "gs", "gcs", "abfs", "abfss", "az"}

_filesystems: dict[tuple[int, str, str], tuple[AbstractFileSystem, str]] = {}
_fs_lock = threading.Lock()

#: an abandoned upload whose abort failed is retried after this many later successes at most
_DISCARD_RETRIES = 3


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


class ValueStorage:
    """Open, read and delete values by location relative to a storage root."""

    def __init__(self, root: str, storage_options: dict[str, Any] | None = None) -> None:
        root = str(root)
        if "://" not in root:
            root = os.path.abspath(os.path.expanduser(root))
        self._root = root
        self._options = dict(storage_options or {})
        self._hidden = _hidden_values(root, self._options)
        fs, path = self._fs  # reject bad URLs and unreachable servers now, not at first save
        #: the root as recorded in the database: credentials included, never printed
        self.root_uri = fs.unstrip_protocol(path)
        #: the root for messages and ``Artifact.uri``: credentials masked
        self.display_root = self._scrub(self.root_uri)
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
        self._made_dirs: set[str] = set()
        #: (pid, handle, location, tries) of uploads whose abort failed (see ``_abandon``)
        self._undiscarded: list[tuple[int, Any, str, int]] = []

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
        self._hidden = _hidden_values(self._root, self._options)
        self.display_root = self._scrub(self.root_uri)
        self._made_dirs = set()
        self._undiscarded = []

    @property
    def _fs(self) -> tuple[AbstractFileSystem, str]:
        """The filesystem and root path, connected on first use in each process.

        A bad URL or option is a ``ConfigError``; a server that cannot be reached
        (refused, unknown host, timeout, rejected login) is a ``StorageError``.
        """
        try:
            return _resolve(self._root, self._options)
        except (ValueError, ImportError, TypeError) as exc:
            message = (
                f"Cannot open artifact storage {self._root!r} with storage_options keys "
                f"{sorted(self._options)}: {exc}. Check the URL's scheme and the options."
            )
            raise ConfigError(self._scrub(message)) from self._cause(exc)
        except Exception as exc:
            if isinstance(exc, ArtifactStoreError):
                raise
            message = (
                f"Cannot connect to the artifact storage {self._root}: {_first_line(exc)}. "
                f"{_hint(exc, writing=False)}"
            )
            raise StorageError(self._scrub(message)) from self._cause(exc)

    def _path(self, location: str) -> str:
        return f"{self._fs[1]}/{location}"

    def uri(self, location: str) -> str:
        """Full URL of a stored value (e.g. ``file:///…`` or ``s3://bucket/…``), for people.

        ``Artifact.uri`` is this: a credential in the root's URL is masked.
        """
        return f"{self.display_root}/{location}"

    # -- writing --------------------------------------------------------------------

    @contextmanager
    def open_write(self, location: str) -> Iterator[BinaryIO]:
        """Write a value; it becomes visible at ``location`` only if the block succeeds.

        A storage failure anywhere (opening, the writes of the block, the final
        upload or rename) raises ``StorageError`` after the partial value was
        thrown away.
        """
        if self._local is not None:
            with self._open_local_write(location) as handle:
                yield handle
            return
        if self._multipart:
            with self._open_multipart_write(location) as handle:
                yield handle
            return
        fs, _ = self._fs
        final = self._path(location)
        temp = final if self._transactional else layout.temp_sibling(final)
        try:
            if self._transactional:  # nothing is visible until commit()
                handle = fs.open(final, "wb", autocommit=False)
            else:
                fs.makedirs(fs._parent(final), exist_ok=True)
                handle = fs.open(temp, "wb")
        except Exception as exc:
            self._raise_storage_error("open", location, exc, writing=True)
            raise
        try:
            yield handle
            handle.close()
            if self._transactional:
                handle.commit()
            else:
                fs.mv(temp, final)
        except BaseException as exc:
            if self._transactional:
                self._abandon(handle, location)
            else:
                with contextlib.suppress(Exception):  # the error that matters is ``exc``
                    handle.close()
                with contextlib.suppress(Exception):  # an orphaned temp value is harmless
                    fs.rm_file(temp)
            self._raise_storage_error("write", location, exc, writing=True)
            raise
        if self._undiscarded:  # the storage answers again: abort what an outage left behind
            self._retry_discards()

    @contextmanager
    def _open_multipart_write(self, location: str) -> Iterator[BinaryIO]:
        try:
            writer = multipart.MultipartWriter(self._fs[0], self._path(location))
        except Exception as exc:
            self._raise_storage_error("open", location, exc, writing=True)
            raise
        try:
            yield cast(BinaryIO, writer)
            writer.commit()
        except BaseException as exc:
            self._abandon(writer, location)
            self._raise_storage_error("write", location, exc, writing=True)
            raise
        if self._undiscarded:  # the storage answers again: abort what an outage left behind
            self._retry_discards()

    def _abandon(self, handle: Any, location: str) -> None:
        """Throw away a partial upload; never let it become visible.

        If the abort itself fails (the storage is unreachable), the handle is
        kept and the abort retried after a later write succeeds, so an outage
        leaves no pending multipart upload behind once the storage is back.
        A killed process cannot do that: an ``AbortIncompleteMultipartUpload``
        lifecycle rule on the bucket covers that case.
        """
        try:
            handle.discard()
        except Exception as exc:  # the storage is down: try again once it answers
            self._undiscarded.append((os.getpid(), handle, location, 0))
            log.warning(
                "could not abort the partial upload of %s (%s); retrying after the next "
                "successful write",
                self.uri(location),
                self._scrub(_first_line(exc)),
            )
            with contextlib.suppress(Exception):  # free the pending part's memory now
                handle.buffer = None
        finally:
            with contextlib.suppress(Exception):  # some file objects have a read-only flag
                handle.closed = True  # never flushed again, not even by __del__

    def _retry_discards(self) -> None:
        """Abort partial uploads an earlier outage left pending (this process's only)."""
        pending, self._undiscarded = self._undiscarded, []
        for pid, handle, location, tries in pending:
            if pid != os.getpid():
                continue  # a forked child cannot use its parent's connections
            try:
                handle.discard()
                log.info("aborted the partial upload of %s left by an outage", self.uri(location))
            except Exception as exc:
                if tries + 1 < _DISCARD_RETRIES:
                    self._undiscarded.append((pid, handle, location, tries + 1))
                else:
                    log.warning(
                        "gave up aborting the partial upload of %s: %s",
                        self.uri(location),
                        self._scrub(_first_line(exc)),
                    )

    @contextmanager
    def _open_local_write(self, location: str) -> Iterator[BinaryIO]:
        # the hot path: no syscalls beyond open, the writes, close and rename
        final = os.path.join(cast(str, self._local), location)
        temp = layout.temp_sibling(final)
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
            self._raise_storage_error("open", location, exc, writing=True)
            raise
        try:
            yield handle
            handle.close()  # flushes the last buffered bytes: a full disk may show here
            os.replace(temp, final)
        except BaseException as exc:
            with contextlib.suppress(OSError):  # closes the descriptor even when flushing fails
                handle.close()
            with contextlib.suppress(OSError):  # an orphaned temp file is harmless
                os.remove(temp)
            self._raise_storage_error("write", location, exc, writing=True)
            raise

    # -- reading --------------------------------------------------------------------

    @contextmanager
    def open_read(self, location: str) -> Iterator[BinaryIO]:
        """Read a value; storage failures in the block (e.g. mid-stream) raise ``StorageError``."""
        try:
            if self._local is not None:
                handle = open(os.path.join(self._local, location), "rb", buffering=0)  # noqa: SIM115
            else:
                handle = self._fs[0].open(self._path(location), "rb")
        except FileNotFoundError as exc:
            if _is_missing_bucket(exc):
                self._raise_storage_error("read", location, exc)
            raise StorageError(
                f"The stored value {self.uri(location)} is missing: the metadata row exists "
                "but its value was removed outside linea_luigi. Delete this version and save again."
            ) from self._cause(exc)
        except Exception as exc:
            self._raise_storage_error("read", location, exc)
            raise
        try:
            with handle:
                yield handle
        except BaseException as exc:
            self._raise_storage_error("read", location, exc)
            raise

    def exists(self, location: str) -> bool:
        try:
            if self._local is not None:
                return os.path.exists(os.path.join(self._local, location))
            return bool(self._fs[0].exists(self._path(location)))
        except Exception as exc:
            self._raise_storage_error("check", location, exc)
            raise

    def delete(self, location: str) -> None:
        """Remove one value; a value already gone is not an error."""
        try:
            if self._local is not None:
                os.remove(os.path.join(self._local, location))
            else:
                self._fs[0].rm_file(self._path(location))
        except FileNotFoundError as exc:
            if _is_missing_bucket(exc):
                self._raise_storage_error("delete", location, exc)
        except Exception as exc:
            self._raise_storage_error("delete", location, exc)
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
            self._raise_storage_error("list", "", exc)
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

    # -- errors -----------------------------------------------------------------------

    def _raise_storage_error(
        self, doing: str, location: str, exc: BaseException, *, writing: bool = False
    ) -> None:
        """Raise ``StorageError`` from ``exc`` if it is a storage failure; else return.

        The caller re-raises anything else unchanged (``raise``), so values
        that fail to pickle, interrupts and our own errors keep their identity.
        """
        if not _is_storage_failure(exc):
            return
        target = f"{doing} {self.uri(location)}" + (" for writing" if doing == "open" else "")
        message = f"Cannot {target}: {_first_line(exc)}. {_hint(exc, writing)}"
        raise StorageError(self._scrub(message)) from self._cause(exc)

    def _scrub(self, text: str) -> str:
        """``text`` with every credential we know of replaced by ``***``."""
        for secret in self._hidden:
            text = text.replace(secret, "***")
        return mask_secrets(text)

    def _cause(self, exc: BaseException) -> BaseException | None:
        """``exc`` to chain to our error, or None when its chain shows a credential."""
        for e in _chain(exc):
            if self._scrub(str(e)) != str(e):
                return None
        return exc


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


def _protocols(fs: AbstractFileSystem) -> tuple[str, ...]:
    proto = fs.protocol
    return (proto,) if isinstance(proto, str) else tuple(proto)


#: exception classes of storage client libraries, looked up only if already imported
_CLIENT_ERRORS = (
    ("ftplib", ("Error",)),
    ("paramiko", ("SSHException",)),
    ("botocore.exceptions", ("BotoCoreError", "ClientError")),
    ("aiohttp", ("ClientError",)),
    ("google.api_core.exceptions", ("GoogleAPIError",)),
    ("azure.core.exceptions", ("AzureError",)),
)


def _is_storage_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is the storage failing (OS or client library), not the value or us."""
    if isinstance(exc, ArtifactStoreError) or not isinstance(exc, Exception):
        return False
    if isinstance(exc, OSError):
        return True
    for module_name, names in _CLIENT_ERRORS:
        module = sys.modules.get(module_name)  # never imported: cannot have raised
        if module is not None:
            classes = tuple(getattr(module, n) for n in names if hasattr(module, n))
            if classes and isinstance(exc, classes):
                return True
    return False


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and its causes (s3fs puts botocore's error with its code in ``__cause__``)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


_CREDENTIAL_CODES = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "AllAccessDisabled",
}
_CREDENTIAL_CLASSES = {"NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"}
_CONNECTION_CLASSES = {
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ConnectionClosedError",
    "HTTPClientError",
    "ClientConnectionError",
    "ServerDisconnectedError",
    "ServerTimeoutError",
}


def _is_missing_bucket(exc: BaseException) -> bool:
    return any(
        _error_code(e) == "NoSuchBucket" or "bucket does not exist" in str(e).lower()
        for e in _chain(exc)
    )


def _hint(exc: BaseException, writing: bool) -> str:
    """What to check, from the first cause in ``exc``'s chain that says what went wrong."""
    for e in _chain(exc):
        code = _error_code(e)
        names = {cls.__name__ for cls in type(e).__mro__}
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return "The disk is full (or over quota): free space there, then save again."
        if isinstance(e, OSError) and e.errno == errno.EFBIG:
            return (
                "The value is larger than a file may be here (the process's file size "
                "limit, `ulimit -f`, or the filesystem's): raise the limit or store elsewhere."
            )
        if isinstance(e, OSError) and e.errno == errno.EROFS:
            return "The filesystem is mounted read-only: point artifact_storage_dir elsewhere."
        if code == "NoSuchBucket" or "bucket does not exist" in str(e).lower():
            return "Check that the bucket exists (create it, or fix artifact_storage_dir)."
        if (
            code in _CREDENTIAL_CODES
            or names & _CREDENTIAL_CLASSES
            or isinstance(e, PermissionError)
        ):
            return (
                "Check the credentials (storage_options key/secret/token, or the provider's "
                "environment variables or profile) and that they may "
                f"{'write' if writing else 'read'} this location."
            )
        if names & _CONNECTION_CLASSES or isinstance(
            e, (ConnectionError, TimeoutError, socket.gaierror)
        ):
            return (
                "Check that the storage endpoint is reachable (the network, the host and port "
                "in artifact_storage_dir, storage_options client_kwargs endpoint_url), "
                "then try again."
            )
    action = "writable" if writing else "readable"
    return f"Check that the storage location exists and is reachable and {action}."


def _first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message, without a final period (we add our own)."""
    text = str(exc).strip()
    return text.splitlines()[0].rstrip(".") if text else type(exc).__name__


#: shorter values are not credentials, and masking them would garble locations
_SECRET_MIN = 8
_SECRET_VARIABLES = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AZURE_STORAGE_KEY")


def _hidden_values(root: str, options: dict[str, Any]) -> tuple[str, ...]:
    """Credentials to scrub from messages: in the root's URL, the options and variables.

    A library may show them other than as ``mask_secrets`` finds them (s3fs
    puts a URL's user-info into the bucket name, botocore re-encodes it), so
    they are replaced wherever they appear. Longest first: none is left half shown.
    """
    found = {s for s in secrets_in(root) if len(s) >= _SECRET_MIN}
    found.update(_secrets(options))
    return tuple(sorted(found, key=len, reverse=True))


def _secrets(options: Any, key: str = "") -> Iterator[str]:
    """Values of credential-like options (and variables): never shown in a message."""
    if isinstance(options, dict):
        for k, v in options.items():
            yield from _secrets(v, str(k))
    elif isinstance(options, (list, tuple)):
        for v in options:
            yield from _secrets(v, key)
    elif isinstance(options, str) and len(options) >= _SECRET_MIN and is_secret_key(key):
        yield options
    if not key:
        for name in _SECRET_VARIABLES:
            value = os.environ.get(name, "")
            if len(value) >= _SECRET_MIN:
                yield value
