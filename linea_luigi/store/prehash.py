"""A value's digest before anything is written, so an identical value is not uploaded again.

A save stores an identical value once (``store.saving``), but it learns the
digest while writing, so on remote storage the identical value is still
uploaded (and then removed). An ``.npy`` file is numpy's header followed by
the array's own memory, so its digest can be computed in memory first, at
BLAKE3's speed (about 5 GB/s on one core here: 0.05 s for 256 MiB, where
the upload takes seconds). Knowing it, the save looks for a stored copy
before writing anything and, when there is one, only inserts its row.

Only where it pays: remote storage (a local write costs about what hashing
does, so a save of a new value would only get slower), arrays of at least
``MIN_BYTES`` that ``.npy`` writes as they are (a non-contiguous array would
be copied twice). A pickle or a Parquet file would have to be produced twice
to be hashed first, so they are not.
"""

from __future__ import annotations

from typing import Any, BinaryIO, cast

from ..storage import ValueStorage
from ..values.digests import HashingWriter
from ..values.npy import NpySerializer, is_array
from ..values.serializers import choose
from .value_io import Written

#: smaller arrays are uploaded at once anyway: hashing them first would only add a query
MIN_BYTES = 8 << 20


class _Discard:
    """A file that keeps nothing: what is written to it is only hashed (``HashingWriter``)."""

    def write(self, data: Any) -> int:
        return memoryview(data).nbytes


def digest_first(values: ValueStorage, value: Any, wanted: str, checksum: str) -> Written | None:
    """``value``'s columns without writing it (``location`` empty), where that pays (see the
    module); else None."""
    if values.root_uri.startswith("file://") or not is_array(value) or value.nbytes < MIN_BYTES:
        return None
    choice = choose(value, wanted)
    serializer = choice.serializer
    if serializer.name != NpySerializer.name or choice.prepared is not value:
        return None
    writer = HashingWriter(cast(BinaryIO, _Discard()), checksum)
    try:
        packages = serializer.dump(value, cast(BinaryIO, writer))
    finally:
        digest = writer.finish()
    return Written.of("", value, choice, writer, digest, packages)
