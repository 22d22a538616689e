"""Streamed S3 multipart uploads whose parts go up while the value is still being written.

s3fs's file object uploads a part when its 50 MiB buffer fills and waits for
the answer, so pickling, hashing and uploading take turns. ``MultipartWriter``
cuts the stream into parts and hands each full part to s3fs's event loop at
once, with at most ``max_in_flight`` parts uploading; the next part fills
meanwhile. The memory it holds beyond the value is bounded by the part size:
the part filling, and each part in flight (about twice: asyncio's transport
copies what the socket does not take at once). Parts are ``PART_SIZE``
(8 MiB), or ``default_block_size`` when ``storage_options`` set it.

Publishing stays atomic. The object exists only once ``commit()`` completed the
multipart upload; ``discard()`` cancels the parts in flight, waits for them to
stop, then aborts the upload. A value smaller than one part never starts a
multipart upload: ``commit()`` sends it with one PUT.

Every request goes through s3fs's own client (``S3FileSystem._call_s3``: its
credentials, ``storage_options``, retries and error translation) on the
filesystem's event loop. A writer lives for one save only; fsspec gives a forked
child a new loop, and ``ValueStorage`` a new filesystem, so nothing crosses a fork.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections import deque
from typing import Any

from fsspec.asyn import sync

from ..errors import StorageError
from ..settings.urls import mask_secrets

#: S3's limits: every part but the last 5 MiB to 5 GiB, at most 10,000 parts
MIN_PART_SIZE = 5 * 2**20
MAX_PART_SIZE = 5 * 2**30
MAX_PARTS = 10_000
#: boto3's default part size too. Measured on 256 MiB saves (bench/RESULTS.md): 8 MiB
#: parts, 4 in flight, were fastest (16-50 MiB parts and 2, 3 or 6 in flight were slower)
#: and held ~90 MiB beyond the value (50 MiB parts, 3 in flight: ~560 MiB)
PART_SIZE = 8 * 2**20
MAX_IN_FLIGHT = 4
#: parts double in size after every this many (unless the store wants equal sizes), so
#: a stream of unknown length fits in 10,000 parts: 1,023,000 x PART_SIZE (~8 TiB at
#: 8 MiB, beyond S3's 5 TiB object limit), the largest part 512 x PART_SIZE
GROW_EVERY = 1_000
_MAX_DOUBLINGS = 9


def part_size_for(fs: Any) -> int:
    """``PART_SIZE``, or the ``default_block_size`` given in ``storage_options``."""
    configured = getattr(fs, "default_block_size", None)
    if configured and configured != getattr(type(fs), "default_block_size", None):
        return int(configured)
    return PART_SIZE


def supports(fs: Any) -> bool:
    """Whether ``fs`` is a (synchronous) s3fs filesystem this writer can drive."""
    return (
        callable(getattr(fs, "_call_s3", None))
        and callable(getattr(fs, "split_path", None))
        and not getattr(fs, "asynchronous", False)
    )


class MultipartWriter:
    """Write-only binary stream to one S3 object; ``commit()`` publishes, ``discard()`` aborts.

    ``write`` runs in the caller's thread; uploads run on ``fs``'s event loop.
    State used by the coroutines (``_created``, ``_tasks``) is touched on the
    loop only; the futures of parts in flight only in the caller's thread.
    """

    def __init__(
        self,
        fs: Any,
        path: str,
        *,
        part_size: int | None = None,
        max_in_flight: int | None = None,
    ) -> None:
        part_size = part_size_for(fs) if part_size is None else part_size
        max_in_flight = MAX_IN_FLIGHT if max_in_flight is None else max_in_flight
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"S3 parts must hold at least {MIN_PART_SIZE} bytes, not {part_size}")
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, not {max_in_flight}")
        self._fs = fs
        #: s3fs's one way to send a request: its client, retries and error translation
        self._call_s3 = fs._call_s3
        self._loop = fs.loop
        self._path = path
        bucket, key, _ = fs.split_path(path)
        self._where = {"Bucket": bucket, "Key": key}
        self._part_size = part_size
        self._fixed = bool(getattr(fs, "fixed_upload_size", False))
        self._max_in_flight = max_in_flight
        self._buffer = bytearray()
        self._sent = 0  # parts handed to the loop
        self._in_flight: deque[concurrent.futures.Future[dict[str, Any]]] = deque()
        self._parts: list[dict[str, Any]] = []  # answers of finished parts, in order
        self._created: asyncio.Future[Any] | None = None  # create_multipart_upload
        self._tasks: set[asyncio.Task[Any]] = set()  # part uploads running on the loop
        self.closed = False

    # -- the caller's side ------------------------------------------------------------

    def write(self, data: Any) -> int:
        if self.closed:
            raise ValueError("write to a closed MultipartWriter")
        view = memoryview(data).cast("B")
        n = len(view)
        while view:
            part_size = self._next_part_size()
            room = part_size - len(self._buffer)
            self._buffer += view[:room]  # the one copy: the caller may reuse its buffer
            view = view[room:]
            if len(self._buffer) == part_size:
                self._send(self._take_buffer())
        return n

    def writable(self) -> bool:
        return not self.closed

    def flush(self) -> None:
        """Nothing to do: a part goes up as soon as it is full."""

    def commit(self) -> None:
        """Upload what is left, wait for every part and publish the object."""
        if self.closed:
            raise ValueError("commit of a closed MultipartWriter")
        if self._sent == 0:  # smaller than one part: a single PUT
            sync(self._loop, self._call_s3, "put_object", Body=self._take_buffer(), **self._where)
        else:
            if self._buffer:
                self._send(self._take_buffer())
            while self._in_flight:
                self._collect(wait=True)
            sync(self._loop, self._complete)
        self.closed = True
        self._fs.invalidate_cache(self._path)

    def discard(self) -> None:
        """Stop the parts in flight and abort the upload; nothing becomes visible.

        Memory is released first. If the abort cannot reach the storage, the
        error propagates and ``discard()`` may be called again later.
        """
        self.closed = True
        self._buffer = bytearray()
        while self._in_flight:
            self._in_flight.popleft().cancel()
        self._parts = []
        sync(self._loop, self._abort)

    # -- internals: caller's thread -----------------------------------------------------

    def _next_part_size(self) -> int:
        if self._fixed:
            return self._part_size
        grown = self._part_size << min(self._sent // GROW_EVERY, _MAX_DOUBLINGS)
        return min(grown, MAX_PART_SIZE)

    def _take_buffer(self) -> bytearray:
        body, self._buffer = self._buffer, bytearray()
        return body

    def _send(self, body: bytearray) -> None:
        if self._sent >= MAX_PARTS:
            raise StorageError(
                f"Cannot write {mask_secrets(f's3://{self._path}')}: the value needs more "
                f"than S3's {MAX_PARTS} parts (of {self._part_size} bytes at first). Raise the "
                "part size (storage_options default_block_size)."
            )
        self._collect(wait=len(self._in_flight) >= self._max_in_flight)
        self._sent += 1
        upload = self._upload_part(self._sent, body)
        self._in_flight.append(asyncio.run_coroutine_threadsafe(upload, self._loop))

    def _collect(self, *, wait: bool) -> None:
        """Record finished parts (waiting for the oldest if ``wait``); raise a part's failure."""
        for future in self._in_flight:  # a failure anywhere stops the stream early
            if future.done() and not future.cancelled():
                error = future.exception()
                if error is not None:
                    raise error
        while self._in_flight and (wait or self._in_flight[0].done()):
            self._parts.append(self._in_flight.popleft().result())
            wait = False

    # -- internals: the event loop ----------------------------------------------------

    async def _upload_id(self) -> str:
        if self._created is None:
            self._created = asyncio.ensure_future(
                self._call_s3("create_multipart_upload", **self._where)
            )
        # shielded: a cancelled part must not cancel the upload the others share
        created = await asyncio.shield(self._created)
        return str(created["UploadId"])

    async def _upload_part(self, number: int, body: bytearray) -> dict[str, Any]:
        task = asyncio.current_task()  # run_coroutine_threadsafe made it a task
        if task is not None:
            self._tasks.add(task)
        try:
            upload_id = await self._upload_id()
            out = await self._call_s3(
                "upload_part", PartNumber=number, UploadId=upload_id, Body=body, **self._where
            )
        finally:
            if task is not None:
                self._tasks.discard(task)
        part = {"PartNumber": number, "ETag": out["ETag"]}
        if "ChecksumSHA256" in out:  # what s3fs carries over too
            part["ChecksumSHA256"] = out["ChecksumSHA256"]
        return part

    async def _complete(self) -> None:
        await self._call_s3(
            "complete_multipart_upload",
            UploadId=await self._upload_id(),
            MultipartUpload={"Parts": self._parts},
            **self._where,
        )

    async def _abort(self) -> None:
        if self._tasks:  # cancelled just before: let them stop before the abort
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._created is None:
            return  # no multipart upload was started
        try:
            upload_id = await self._upload_id()
        except Exception:
            return  # creating it failed: there is nothing to abort
        await self._call_s3("abort_multipart_upload", UploadId=upload_id, **self._where)
