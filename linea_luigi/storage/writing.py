"""Publishing values: each one visible at its location in full, or not at all.

The invariant every strategy here keeps, so that a reader (``load``, another
process, ``gc``) never sees half a value: nothing appears at the final location
until the last byte was written and the block that wrote it succeeded; on any
error (raised by the writer's block, by the storage, or an interrupt) the
partial value is thrown away and the error propagates.

- A local folder: written with the operating system's own calls under a
  temporary sibling name (``layout.temp_sibling``) and renamed into place
  (``os.replace``). fsspec's local layer normalises every path on every call,
  which cost more than writing a small value itself: this is the hot path, with
  no syscalls beyond open, the writes, close and rename.
- S3 (through s3fs): one multipart upload whose parts go up while the value is
  still being written (``multipart.MultipartWriter``), completed only at the end
  and aborted on error; a small value is one PUT at the end.
- The other object stores whose files honour ``autocommit=False`` (GCS, Azure):
  the file's own upload, committed at the end or discarded.
- Everywhere else (``memory://``, SFTP, ...): a temporary sibling, moved into place.

A partial upload whose abort fails (the storage went away) is kept and its
abort retried after the next successful write, a few times at most.

Failures of the storage leave as ``StorageError`` (``errors.StorageErrors``).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, BinaryIO, cast

from fsspec.spec import AbstractFileSystem

from . import layout, multipart
from .errors import StorageErrors, first_line

log = logging.getLogger(__name__)

#: an abandoned upload whose abort failed is retried after this many later successes at most
_DISCARD_RETRIES = 3


class ValueWriter:
    """Writes the values of one storage root (one per ``ValueStorage``).

    Holds what it learnt while writing: the folders it made (not made again)
    and the uploads whose abort failed (aborted later, by the process that
    started them only: a forked child holds a copy but not the connections).
    """

    def __init__(
        self,
        errors: StorageErrors,
        display_root: str,
        *,
        local: str | None,
        transactional: bool,
        multipart: bool,
    ) -> None:
        self._errors = errors
        self._display_root = display_root
        self._local = local
        self._transactional = transactional
        self._multipart = multipart
        self._made_dirs: set[str] = set()
        #: (pid, handle, location, tries) of uploads whose abort failed (see ``_abandon``)
        self._undiscarded: list[tuple[int, Any, str, int]] = []

    @contextmanager
    def open_local(self, location: str) -> Iterator[BinaryIO]:
        """Write under the local folder: a temporary sibling, renamed into place.

        The hot path: no syscalls beyond open, the writes, close and rename
        (and one ``makedirs`` per folder and process).
        """
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
            self._fail("open", location, exc)
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
            self._fail("write", location, exc)
            raise

    def open_remote(
        self, fs: AbstractFileSystem, path: str, location: str
    ) -> AbstractContextManager[BinaryIO]:
        """Write through fsspec to ``path`` (``location`` under the root)."""
        if self._multipart:
            return self._open_multipart(fs, path, location)
        return self._open_fsspec(fs, path, location)

    @contextmanager
    def _open_multipart(
        self, fs: AbstractFileSystem, path: str, location: str
    ) -> Iterator[BinaryIO]:
        try:
            writer = multipart.MultipartWriter(fs, path)
        except Exception as exc:
            self._fail("open", location, exc)
            raise
        try:
            yield cast(BinaryIO, writer)
            writer.commit()
        except BaseException as exc:
            self._abandon(writer, location)
            self._fail("write", location, exc)
            raise
        if self._undiscarded:  # the storage answers again: abort what an outage left behind
            self._retry_discards()

    @contextmanager
    def _open_fsspec(self, fs: AbstractFileSystem, final: str, location: str) -> Iterator[BinaryIO]:
        """A transactional file (committed or discarded), else a temporary sibling moved."""
        temp = final if self._transactional else layout.temp_sibling(final)
        try:
            if self._transactional:  # nothing is visible until commit()
                handle = fs.open(final, "wb", autocommit=False)
            else:
                fs.makedirs(fs._parent(final), exist_ok=True)
                handle = fs.open(temp, "wb")
        except Exception as exc:
            self._fail("open", location, exc)
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
            self._fail("write", location, exc)
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
                self._uri(location),
                self._errors.scrub(first_line(exc)),
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
                log.info("aborted the partial upload of %s left by an outage", self._uri(location))
            except Exception as exc:
                if tries + 1 < _DISCARD_RETRIES:
                    self._undiscarded.append((pid, handle, location, tries + 1))
                else:
                    log.warning(
                        "gave up aborting the partial upload of %s: %s",
                        self._uri(location),
                        self._errors.scrub(first_line(exc)),
                    )

    def _fail(self, doing: str, location: str, exc: BaseException) -> None:
        self._errors.raise_if_failure(doing, self._uri(location), exc, writing=True)

    def _uri(self, location: str) -> str:
        return f"{self._display_root}/{location}"
