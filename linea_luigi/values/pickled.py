"""The ``cloudpickle`` serializer: any Python value, with large buffers out of band.

It writes pickle protocol 5 with large buffers (numpy arrays, pandas blocks,
...) taken out of band and appended raw after the pickle stream, 64-byte
aligned::

    MAGIC | pickle stream | pad | buffer 0 | pad | buffer 1 | ... | footer

    footer = (offset, length) * n  |  n  |  pickle length  |  END

So saving never builds a serialized copy of the value in memory (buffers are
written straight from the value's own memory), and loading reads the file once
into one buffer that the restored arrays then use without a copy. The
packages whose objects were pickled are noted on the way (``reducer_override``,
which the pickler calls for every object that is not a builtin container or
scalar), so the record can name their versions.
"""

from __future__ import annotations

import pickle
import struct
from collections.abc import Mapping
from typing import Any, BinaryIO

import cloudpickle

from ..errors import SerializationError
from . import libraries

MAGIC = b"LLPKL01\n"
END = b"LLPKLEND"
_ALIGN = 64
_U64 = struct.Struct("<Q")
_PAIR = struct.Struct("<QQ")
_TAIL = struct.Struct("<QQ8s")


class _Counter:
    """Pass-through writer that knows its position (fsspec files may not ``tell``).

    Remembers an error of the output itself (a full disk, a failed upload), so
    that ``dump`` lets it through for the storage to report instead of
    blaming the value.
    """

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self.pos = 0
        self.failed: BaseException | None = None

    def write(self, data: Any) -> int:
        try:
            n = self._out.write(data)
        except BaseException as exc:
            self.failed = exc
            raise
        self.pos += len(memoryview(data).cast("B"))
        return n if n is not None else 0

    def pad_to(self, align: int) -> None:
        gap = -self.pos % align
        if gap:
            self.write(b"\0" * gap)


class _NotingPickler(cloudpickle.CloudPickler):  # type: ignore[misc]
    """cloudpickle's pickler, noting the top-level package of every object it reduces."""

    def __init__(self, out: Any, buffers: list[pickle.PickleBuffer]) -> None:
        # buffer_callback returning None puts the buffer out of band
        super().__init__(out, protocol=5, buffer_callback=buffers.append)
        self.modules: set[str] = set()

    def reducer_override(self, obj: Any) -> Any:
        self.modules.add(type(obj).__module__)
        return super().reducer_override(obj)


class CloudpickleSerializer:
    """cloudpickle, protocol 5, out-of-band buffers (see the module docstring)."""

    name = "cloudpickle"
    extension = ".pkl"

    def takes(self, value: Any) -> bool:
        return True

    def prepare(self, value: Any) -> Any:
        return value

    def dump(self, value: Any, out: BinaryIO) -> set[str]:
        """Write ``value``; returns the packages whose objects were pickled."""
        counter = _Counter(out)
        counter.write(MAGIC)
        buffers: list[pickle.PickleBuffer] = []
        pickler = _NotingPickler(counter, buffers)
        try:
            pickler.dump(value)
        except Exception as exc:
            if exc is counter.failed:
                raise  # the output failed, not the value: the storage reports it
            raise SerializationError(
                f"Cannot serialize a value of type {type(value).__module__}."
                f"{type(value).__qualname__} with cloudpickle: {exc}"
            ) from exc
        pickle_len = counter.pos - len(MAGIC)
        table: list[tuple[int, int]] = []
        for buf in buffers:
            with buf.raw() as raw:
                counter.pad_to(_ALIGN)
                table.append((counter.pos, raw.nbytes))
                counter.write(raw)
        for entry in table:
            counter.write(_PAIR.pack(*entry))
        counter.write(_TAIL.pack(len(table), pickle_len, END))
        packages = {libraries.top_package(m) for m in pickler.modules}
        return {"cloudpickle", *(p for p in packages if p is not None)}

    def load(
        self,
        data: memoryview,
        value_type: str | None = None,
        written: Mapping[str, str] | None = None,
    ) -> Any:
        view = memoryview(data)
        if len(view) < len(MAGIC) + _TAIL.size or bytes(view[: len(MAGIC)]) != MAGIC:
            raise SerializationError("The stored bytes are not a linea_luigi cloudpickle value.")
        n, pickle_len, end = _TAIL.unpack_from(view, len(view) - _TAIL.size)
        table_at = len(view) - _TAIL.size - n * _PAIR.size
        if end != END or table_at < len(MAGIC) + pickle_len:
            raise SerializationError("The stored value's footer is damaged.")
        buffers = [
            view[off : off + length]
            for off, length in (
                _PAIR.unpack_from(view, table_at + i * _PAIR.size) for i in range(n)
            )
        ]
        stream = view[len(MAGIC) : len(MAGIC) + pickle_len]
        try:
            value = pickle.loads(stream, buffers=buffers)
        except Exception as exc:
            hint = (
                f" Install the module {exc.name!r} in this environment."
                if isinstance(exc, ModuleNotFoundError) and exc.name
                else ""
            )
            raise SerializationError(
                f"Cannot unpickle the stored value: {exc}.{hint}"
                + libraries.explain_failure(written)
            ) from exc
        return value
