"""A value on its way into the local cache (``cache``): a temporary file, filled as the bytes pass.

A load copies the bytes it reads from storage (``Filling.reader``), a save
the bytes it uploads (``Filling.writer``), so a value is never read twice;
large chunks are written on a helper thread while the next one is read or
uploaded. The copy becomes an entry only through ``publish``, which the
caller calls once the bytes matched their digest (a load) or the upload
completed (a save); otherwise ``discard`` removes it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO, cast

#: below this a chunk is written inline: a thread hand-off would cost more
_THREAD_MIN = 1 << 20


class Filling:
    """One value on its way into the cache: a temporary file, published under its digest or removed.

    Large chunks are written on a helper thread while the caller reads or
    uploads the next ones. A failure to write stops the copy
    (``ValueCache.failed``) and never reaches the caller.
    """

    def __init__(
        self,
        temp: str,
        handle: BinaryIO,
        publish: Callable[[str, str, int], None],
        failed: Callable[[BaseException], None],
    ) -> None:
        self._temp = temp
        self._publish = publish
        self._failed = failed
        self._handle: BinaryIO | None = handle
        self._pool: ThreadPoolExecutor | None = None
        self._pending: Future[Any] | None = None
        self._error: BaseException | None = None
        self.size = 0

    def write(self, data: memoryview) -> None:
        """Copy ``data``, which must stay unchanged until ``wait`` returned.

        Large chunks are queued to the helper thread without waiting for
        the ones before (they are written in order): a load's buffer is
        never reused, so the copy may fall behind a burst of fast reads
        and catch up during the slow ones. A small chunk is written inline
        unless chunks are still queued (the order is kept).
        """
        handle = self._handle
        if handle is None:
            return
        self.size += len(data)
        pending = self._pending
        if len(data) < _THREAD_MIN and (pending is None or pending.done()):
            try:
                handle.write(data)
            except (OSError, ValueError) as exc:
                self._stop(exc)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="linea-cache")
        self._pending = self._pool.submit(self._write, handle, data)

    def _write(self, handle: BinaryIO, data: memoryview) -> None:
        """One queued chunk (on the helper thread); after a failure, the rest are skipped."""
        if self._error is None:
            try:
                handle.write(data)
            except (OSError, ValueError) as exc:
                self._error = exc

    def wait(self) -> None:
        """Until every chunk given so far is written (or the copy stopped)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()  # one thread, in order: all the earlier chunks are written too
        if self._error is not None and self._handle is not None:
            self._stop(self._error)

    def reader(self, raw: BinaryIO) -> BinaryIO:
        """``raw`` for reading, each chunk read also written here (see ``read_hashed``)."""
        return cast(BinaryIO, _TeeReader(raw, self))

    def writer(self, raw: BinaryIO) -> BinaryIO:
        """``raw`` for writing, each chunk also written here, in parallel."""
        return cast(BinaryIO, _TeeWriter(raw, self))

    def publish(self, digest: str) -> None:
        """Make the copy the entry of ``digest``: only once the caller checked the bytes."""
        self.wait()
        handle = self._finish()
        if handle is None:
            return
        try:
            handle.close()
            self._publish(self._temp, digest, self.size)
        except OSError as exc:
            self._failed(exc)
            remove_file(self._temp)

    def discard(self) -> None:
        """Throw the copy away (the value was bad, or its save failed)."""
        self.wait()
        handle = self._finish()
        if handle is not None:
            with contextlib.suppress(OSError):
                handle.close()
            remove_file(self._temp)

    def _finish(self) -> BinaryIO | None:
        handle, self._handle = self._handle, None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        return handle

    def _stop(self, exc: BaseException) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            with contextlib.suppress(OSError):
                handle.close()
            remove_file(self._temp)
            self._failed(exc)


class _TeeReader:
    """Reads from a value's storage file and copies every byte read into a ``Filling``."""

    def __init__(self, raw: BinaryIO, filling: Filling) -> None:
        self._raw = raw
        self._filling = filling

    def readinto(self, target: memoryview) -> int:
        readinto = getattr(self._raw, "readinto", None)
        if readinto is not None:
            got = int(readinto(target) or 0)
        else:
            data = self._raw.read(len(target))
            got = len(data)
            target[:got] = data
        if got:
            self._filling.write(target[:got])
        return got

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        if data:
            self._filling.write(memoryview(data))
        return data


class _TeeWriter:
    """Writes a value to storage and, at the same time, into a ``Filling``."""

    def __init__(self, raw: BinaryIO, filling: Filling) -> None:
        self._raw = raw
        self._filling = filling

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._filling.write(view)
        self._raw.write(view)
        self._filling.wait()  # the caller may reuse its buffer once we return
        return len(view)


def remove_file(path: str) -> bool:
    """Remove ``path``; whether it was this call that removed it."""
    try:
        os.remove(path)
    except OSError:
        return False
    return True
