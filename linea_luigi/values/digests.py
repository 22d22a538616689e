"""Streaming digests (BLAKE3 by default, SHA-256 on request), overlapped with I/O.

A stored digest names its algorithm, ``"blake3:<64 hex>"`` or
``"sha256:<64 hex>"`` (the convention of OCI content digests), so values keep
verifying after the default changes. BLAKE3 is a cryptographic hash that runs
at memory speed (several GB/s on one core, more with threads), where SHA-256
without CPU extensions manages about 250 MB/s and would bound every large save
and load.

Hashing and file I/O both release the GIL on large buffers, so a large chunk is
hashed on a helper thread while the same memory is written (or the next chunk
read). Large writes are cut into chunks so that buffering file objects (s3fs
keeps its pending part in memory) never hold more than one chunk extra.
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO, Protocol

import blake3

from ..errors import ChecksumMismatchError
from ..settings.settings import BLAKE3, DEFAULT_DIGEST, DIGEST_ALGORITHMS, SHA256
from .progress import Progress

CHUNK = 8 * 1024 * 1024
#: below this a chunk is hashed inline: a thread hand-off would cost more
_THREAD_MIN = 1024 * 1024


class _Hasher(Protocol):
    def update(self, data: Any, /) -> Any: ...

    def hexdigest(self) -> str: ...


def new_hasher(algorithm: str) -> _Hasher:
    """A fresh incremental hasher for ``algorithm`` (one of ``DIGEST_ALGORITHMS``)."""
    if algorithm == BLAKE3:
        # One thread: blake3's own pool (Rayon) deadlocks in a forked child, and
        # Luigi forks workers. One core already hashes faster than a disk
        # reads; large values are hashed on our helper thread, beside the I/O.
        return blake3.blake3()
    if algorithm == SHA256:
        return hashlib.sha256()
    raise ChecksumMismatchError(
        f"Unknown digest algorithm {algorithm!r}; this linea_luigi verifies "
        f"{', '.join(DIGEST_ALGORITHMS)}. Upgrade linea_luigi to read this value."
    )


def algorithm_of(digest: str) -> str:
    """The algorithm named by a stored digest such as ``"blake3:…"``."""
    algorithm, sep, _ = digest.partition(":")
    if not sep:
        raise ChecksumMismatchError(
            f"The recorded digest {digest[:24]!r} names no algorithm; expected 'blake3:<hex>' "
            "or 'sha256:<hex>'."
        )
    return algorithm


class _Overlap:
    """One helper thread, created only when a chunk is big enough to need it."""

    def __init__(self, algorithm: str) -> None:
        self.algorithm = algorithm
        self._hasher = new_hasher(algorithm)
        self._pool: ThreadPoolExecutor | None = None
        self._pending: Future[Any] | None = None

    def submit(self, chunk: memoryview) -> None:
        self.wait()
        if len(chunk) < _THREAD_MIN:
            self._hasher.update(chunk)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="linea-hash")
        self._pending = self._pool.submit(self._hasher.update, chunk)

    def wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def finish(self) -> str:
        """The digest of everything submitted, as ``"<algorithm>:<hex>"``."""
        self.wait()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        return f"{self.algorithm}:{self._hasher.hexdigest()}"


class HashingWriter:
    """File-like writer that forwards to ``raw`` and hashes and counts every byte."""

    def __init__(
        self, raw: BinaryIO, algorithm: str = DEFAULT_DIGEST, progress: Progress | None = None
    ) -> None:
        self._raw = raw
        self._hash = _Overlap(algorithm)
        self._progress = progress
        self.size = 0

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        n = len(view)
        if n < _THREAD_MIN:  # the common case: pickle's small frames
            self._hash.submit(view)
            self._raw.write(view)
        else:
            for start in range(0, n, CHUNK):
                chunk = view[start : start + CHUNK]
                self._hash.submit(chunk)  # hashes while the chunk is written
                self._raw.write(chunk)
                if self._progress is not None:
                    self._progress.advance(len(chunk))
            # the caller may reuse its buffer once we return: finish hashing it first
            self._hash.wait()
        self.size += n
        return n

    def finish(self) -> str:
        """The digest (``"<algorithm>:<hex>"``) of everything written."""
        return self._hash.finish()


def read_hashed(
    raw: BinaryIO, size: int, algorithm: str, progress: Progress | None = None
) -> tuple[memoryview, str, int]:
    """Read up to ``size`` bytes into one buffer, hashing chunk k while reading k+1.

    Returns the buffer, its digest (``"<algorithm>:<hex>"``) and the number of
    bytes the stored object really has as far as it matters here: fewer than
    ``size`` when it is short, ``size + 1`` when it is longer than recorded.
    The buffer is private memory of this process (see ``_Buffer``), so what
    is unpickled later is exactly what was hashed here.
    """
    if size < _THREAD_MIN:
        return _read_small(raw, size, algorithm, progress)
    buf = _Buffer(size)
    overlap = _Overlap(algorithm)
    pos = 0
    try:
        while pos < size:
            chunk = buf.chunk(pos, min(pos + CHUNK, size))
            got = _readinto(raw, chunk)
            if got == 0:
                break
            overlap.submit(chunk[:got])
            pos += got
            if progress is not None:
                progress.advance(got)
    finally:
        digest = overlap.finish()
    actual = pos + 1 if pos == size and raw.read(1) else pos
    return buf.view[:pos], digest, actual


def _read_small(
    raw: BinaryIO, size: int, algorithm: str, progress: Progress | None
) -> tuple[memoryview, str, int]:
    """``read_hashed`` for a value below one chunk: one read into one buffer, hashed inline.

    The buffer has a byte to spare, so a stored object longer than recorded
    shows in the same read instead of costing another.
    """
    view = memoryview(bytearray(size + 1))
    pos = 0
    while pos <= size:
        got = _readinto(raw, view[pos:])
        if got == 0:
            break
        pos += got
    data = view[: min(pos, size)]
    hasher = new_hasher(algorithm)
    hasher.update(data)
    if progress is not None:
        progress.advance(len(data))
    return data, f"{algorithm}:{hasher.hexdigest()}", pos


class _Buffer:
    """A writable buffer for a value, its pages made ready chunk by chunk.

    Small values use a ``bytearray``. Large ones use private anonymous memory
    (not a file mapping: nobody else can change it after it was hashed) whose
    pages are populated just before each chunk is read into them: zero-filling
    the whole buffer up front, as ``bytearray(n)`` does, costs as much as
    reading it, and faulting pages in during the read costs more. Populating
    chunk k+1 runs while the helper thread hashes chunk k.
    """

    def __init__(self, size: int) -> None:
        self._memory: mmap.mmap | None = None
        if size >= _THREAD_MIN and hasattr(mmap, "MAP_ANONYMOUS"):
            flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
            self._memory = mmap.mmap(-1, size, flags=flags)
            # huge pages, as numpy asks for its arrays: fewer, larger pages to populate
            # (a frame's 181 MiB verified read 0.082 -> 0.050 s; bench/RESULTS.md, issue 15)
            with contextlib.suppress(OSError, ValueError, AttributeError):
                self._memory.madvise(mmap.MADV_HUGEPAGE)
            self.view = memoryview(self._memory)
        else:
            self.view = memoryview(bytearray(size))

    def chunk(self, start: int, end: int) -> memoryview:
        if self._memory is not None:
            try:
                aligned = start - start % mmap.PAGESIZE  # after a short read
                self._memory.madvise(_MADV_POPULATE_WRITE, aligned, end - aligned)
            except (OSError, ValueError):  # an older kernel: pages fault in during the read
                self._memory = None
        return self.view[start:end]


#: Linux 5.14+ ``MADV_POPULATE_WRITE`` (Python 3.11's mmap module lacks the name)
_MADV_POPULATE_WRITE = getattr(mmap, "MADV_POPULATE_WRITE", 23)


def _readinto(raw: BinaryIO, target: memoryview) -> int:
    readinto = getattr(raw, "readinto", None)
    if readinto is not None:
        return int(readinto(target) or 0)
    data = raw.read(len(target))
    target[: len(data)] = data
    return len(data)
