"""The ``npy`` serializer: numpy arrays as standard ``.npy`` files (``np.load`` reads them).

Written as numpy's own format (a header, then the raw data) straight from the
array's memory, so saving makes no serialized copy; loaded as an array over
the verified buffer, so loading makes none either. Object arrays are never
written here (they would need pickle inside the file): ``auto`` pickles them.
"""

from __future__ import annotations

import io
import math
import sys
from collections.abc import Mapping
from typing import Any, BinaryIO

from ..errors import SerializationError

#: the longest header read (numpy's own default limit is 10,000 bytes)
MAX_HEADER = 65536


def is_array(value: Any) -> bool:
    """Whether ``value`` is exactly a ``numpy.ndarray`` of a non-object dtype; imports nothing."""
    numpy = sys.modules.get("numpy") if type(value).__module__ == "numpy" else None
    return numpy is not None and type(value) is numpy.ndarray and not value.dtype.hasobject


class NpySerializer:
    """Non-object numpy arrays as ``.npy`` (see the module docstring)."""

    name = "npy"
    extension = ".npy"

    def takes(self, value: Any) -> bool:
        return is_array(value)

    def prepare(self, value: Any) -> Any:
        """The array as numpy's format can hold it: C or Fortran contiguous."""
        import numpy

        if value.flags.c_contiguous or value.flags.f_contiguous:
            return value
        return numpy.ascontiguousarray(value)

    def dump(self, array: Any, out: BinaryIO) -> set[str]:
        """Write the header, then the data straight from the array's memory."""
        from numpy.lib import format as npy_format

        header = npy_format.header_data_from_array_1_0(array)
        try:
            npy_format.write_array_header_1_0(out, header)
        except ValueError:  # a header over 64 KiB (many fields): format 2.0
            npy_format.write_array_header_2_0(out, header)
        data = array.T if header["fortran_order"] else array
        if data.size:
            out.write(memoryview(data.reshape(-1).view("u1")))
        return {"numpy"}

    def load(
        self,
        data: memoryview,
        value_type: str | None = None,
        written: Mapping[str, str] | None = None,
    ) -> Any:
        """The array over ``data`` (verified bytes): no copy, writable like ``np.load``'s."""
        import numpy

        dtype, shape, fortran, offset = read_header(data)
        count = math.prod(shape)
        if len(data) - offset != count * dtype.itemsize:
            raise SerializationError(
                f"The stored .npy value holds {len(data) - offset} data bytes, but its header "
                f"describes {count * dtype.itemsize}."
            )
        flat = numpy.frombuffer(data, dtype=dtype, count=count, offset=offset)
        return flat.reshape(shape, order="F" if fortran else "C")


def read_header(data: memoryview | bytes) -> tuple[Any, tuple[int, ...], bool, int]:
    """``(dtype, shape, fortran_order, data offset)`` of a ``.npy`` file's first bytes.

    Refuses object dtypes: loading them would unpickle.
    """
    from numpy.lib import format as npy_format

    head = io.BytesIO(bytes(data[: MAX_HEADER + 16]))
    try:
        version = npy_format.read_magic(head)
        readers = {
            (1, 0): npy_format.read_array_header_1_0,
            (2, 0): npy_format.read_array_header_2_0,
        }
        if version not in readers:
            raise ValueError(f"format version {version[0]}.{version[1]} is not read here")
        shape, fortran, dtype = readers[version](head, max_header_size=MAX_HEADER)
    except (ValueError, SyntaxError, EOFError) as exc:
        raise SerializationError(f"The stored value is not a readable .npy file: {exc}") from exc
    if dtype.hasobject:
        raise SerializationError(
            "The stored .npy file holds Python objects, which would need unpickling; "
            "linea_luigi never writes such files and will not load one."
        )
    return dtype, tuple(shape), bool(fortran), head.tell()
