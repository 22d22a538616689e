"""Streaming sha256 that overlaps hashing with I/O.

hashlib and file I/O both release the GIL on large buffers, so a large chunk is
hashed on a helper thread while the same memory is written (or the next chunk
read). Large writes are cut into chunks so that buffering file objects (s3fs
keeps its pending part in memory) never hold more than one chunk extra.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO

CHUNK = 8 * 1024 * 1024
#: below this a chunk is hashed inline: a thread hand-off would cost more
_THREAD_MIN = 1024 * 1024


class _Overlap:
    """One helper thread, created only when a chunk is big enough to need it."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self._pool: ThreadPoolExecutor | None = None
        self._pending: Future[None] | None = None

    def submit(self, chunk: memoryview) -> None:
        self.wait()
        if len(chunk) < _THREAD_MIN:
            self.digest.update(chunk)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="linea-hash")
        self._pending = self._pool.submit(self.digest.update, chunk)

    def wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def finish(self) -> str:
        self.wait()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        return self.digest.hexdigest()


class HashingWriter:
    """File-like writer that forwards to ``raw`` and hashes and counts every byte."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._hash = _Overlap()
        self.size = 0

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        n = len(view)
        for start in range(0, n, CHUNK):
            chunk = view[start : start + CHUNK]
            self._hash.submit(chunk)  # hashes while the chunk is written
            self._raw.write(chunk)
        # the caller may reuse its buffer once we return: finish hashing it first
        self._hash.wait()
        self.size += n
        return n

    def finish(self) -> str:
        """The hex sha256 of everything written."""
        return self._hash.finish()


def read_hashed(raw: BinaryIO, size: int) -> tuple[bytearray, str, int]:
    """Read up to ``size`` bytes into one buffer, hashing chunk k while reading k+1.

    Returns the buffer, its hex sha256 and the number of bytes the stored
    object really has as far as it matters here: fewer than ``size`` when it is
    short, ``size + 1`` when it is longer than recorded.
    """
    buf = bytearray(size)
    overlap = _Overlap()
    pos = 0
    with memoryview(buf) as view:
        try:
            while pos < size:
                got = _readinto(raw, view[pos : min(pos + CHUNK, size)])
                if got == 0:
                    break
                overlap.submit(view[pos : pos + got])
                pos += got
        finally:
            digest = overlap.finish()
    actual = pos + 1 if pos == size and raw.read(1) else pos
    if pos < size:
        del buf[pos:]
    return buf, digest, actual


def _readinto(raw: BinaryIO, target: memoryview) -> int:
    readinto = getattr(raw, "readinto", None)
    if readinto is not None:
        return int(readinto(target) or 0)
    data = raw.read(len(target))
    target[: len(data)] = data
    return len(data)
