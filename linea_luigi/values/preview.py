"""Previews of stored values that never run their code: a Parquet footer, an ``.npy`` header.

The artifact browser runs inside the scheduler, so what it shows about a
value must come from reading data, never from executing it: pickles are not
opened at all, Parquet is read through pyarrow (footer, then the first pages
of the first row group, never the whole file) and ``.npy`` through its header
only. Every file is treated as possibly hostile: sizes are checked before
anything is parsed, output is cut to a few kilobytes, and a file that cannot
be read gives an ``unavailable`` document with a plain reason instead of an
exception.

Documents (JSON-able dicts, the shapes of ``/api/artifacts/<name>/<version>``)::

    {"kind": "parquet", "rows", "columns_total", "columns": [{"name", "type"}],
     "head": [[cell, ...], ...], "truncated": [reason, ...]}
    {"kind": "npy", "dtype", "shape", "fortran_order"}
    {"kind": "pickle", "note"}
    {"kind": "unavailable", "note"}
"""

from __future__ import annotations

import ast
import io
import struct
from typing import Any, BinaryIO

#: what is said instead of a preview of a pickle (copy it before changing it)
PICKLE_PREVIEW: dict[str, Any] = {
    "kind": "pickle",
    "note": "not previewed: pickled values are never opened by the server",
}

#: rows shown of a Parquet value (from its first row group)
HEAD_ROWS = 20
#: columns shown of a Parquet value
MAX_COLUMNS = 50
#: longest cell, column name or type shown, in characters
MAX_CELL = 200
#: largest Parquet footer parsed: a bigger one is refused before parsing
MAX_FOOTER = 16 * 1024 * 1024
#: largest ``.npy`` header parsed
MAX_NPY_HEADER = 64 * 1024
#: read-ahead of each Parquet column stream: the first pages, not the whole chunk
_BUFFER = 64 * 1024
#: columns read together: bounds memory when cells are huge (20 rows of 1 MB each)
_COLUMN_GROUP = 8
_ARROW_EXTRA = "pip install 'linea-luigi[arrow]'"
_PAR1 = b"PAR1"
_FOOTER_TAIL = struct.Struct("<I4s")


def unavailable(note: str) -> dict[str, Any]:
    """The document of a value that cannot be previewed, and why."""
    return {"kind": "unavailable", "note": note}


def of_file(serializer: str, handle: BinaryIO, size: int) -> dict[str, Any]:
    """The preview of a stored value of ``size`` bytes written by ``serializer``.

    ``handle`` is a seekable binary file over the stored bytes; only the ranges
    a preview needs are read from it. Pickles are never read.
    """
    if serializer == "parquet":
        return _parquet(handle, size)
    if serializer == "npy":
        return _npy(handle, size)
    if serializer == "cloudpickle":
        return dict(PICKLE_PREVIEW)
    return unavailable(f"no preview for values written by the {serializer!r} serializer")


# -- Parquet ---------------------------------------------------------------------------------


def _footer_problem(handle: BinaryIO, size: int) -> str | None:
    """Why the file's footer must not be parsed (None: it may be)."""
    if size < 12:
        return f"not a Parquet file: {size} bytes is shorter than its markers"
    handle.seek(size - _FOOTER_TAIL.size)
    length, magic = _FOOTER_TAIL.unpack(handle.read(_FOOTER_TAIL.size))
    if magic != _PAR1:
        return "not a Parquet file: no PAR1 marker at its end"
    if length > MAX_FOOTER:
        return (
            f"its Parquet footer declares {length} bytes of metadata, more than the "
            f"{MAX_FOOTER // (1024 * 1024)} MiB a preview reads"
        )
    if length + 12 > size:
        return f"its Parquet footer declares {length} bytes of metadata, more than the file holds"
    return None


def _parquet(handle: BinaryIO, size: int) -> dict[str, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return unavailable(f"Parquet previews need pyarrow: {_ARROW_EXTRA}")
    problem = _footer_problem(handle, size)
    if problem is not None:
        return unavailable(problem)
    watched = _Watched(handle)
    try:
        pf = pq.ParquetFile(
            watched,
            pre_buffer=False,
            buffer_size=_BUFFER,
            thrift_string_size_limit=MAX_FOOTER,
            page_checksum_verification=True,
        )
        return _parquet_doc(pa, pf)
    except (pa.ArrowException, OSError, ValueError, TypeError, LookupError, OverflowError) as exc:
        if watched.failure is not None:  # the storage failed, not the file: its caller says so
            raise watched.failure from exc
        return unavailable(f"it could not be read as Parquet: {_first_line(exc)}")


class _Watched:
    """The stored file as pyarrow reads it, remembering a failure of the storage itself.

    pyarrow reports a bad page and a failed read alike (``OSError``); only the
    first means the file is not Parquet.
    """

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self.failure: BaseException | None = None
        self.closed = False
        handle.seek(0)

    def _watch(self, call: Any, *args: Any) -> Any:
        try:
            return call(*args)
        except BaseException as exc:
            self.failure = exc
            raise

    def read(self, n: int = -1) -> bytes:
        data: bytes = self._watch(self._handle.read, n)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        position: int = self._watch(self._handle.seek, offset, whence)
        return position

    def tell(self) -> int:
        position: int = self._watch(self._handle.tell)
        return position

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True  # the caller owns the handle


def _parquet_doc(pa: Any, pf: Any) -> dict[str, Any]:
    """Rows, schema and first rows of an opened ``ParquetFile``."""
    schema = pf.schema_arrow
    fields = list(schema)[:MAX_COLUMNS]
    truncated: list[str] = []
    if len(schema) > len(fields):
        truncated.append(f"showing {len(fields)} of {len(schema)} columns")
    columns = [{"name": _cut(f.name), "type": _cut(str(f.type))} for f in fields]
    if any(len(f.name) > MAX_CELL or len(str(f.type)) > MAX_CELL for f in fields):
        truncated.append(f"long column names or types cut to {MAX_CELL} characters")
    rows = int(pf.metadata.num_rows)
    if len(set(schema.names)) == len(schema):
        head, cut = _head(pa, pf, [f.name for f in fields])
    else:  # a name picks every column called so: cells could not be told apart
        head, cut = [], False
        truncated.append("first rows not shown: the file has duplicate column names")
    if rows > len(head):
        truncated.append(f"showing the first {len(head)} of {rows} rows")
    if cut:
        truncated.append(f"long cells cut to {MAX_CELL} characters")
    return {
        "kind": "parquet",
        "rows": rows,
        "columns_total": len(schema),
        "columns": columns,
        "head": head,
        "truncated": truncated,
    }


def _head(pa: Any, pf: Any, names: list[str]) -> tuple[list[list[str]], bool]:
    """The first rows of the first row group, cells as text; whether a cell was cut.

    Read a few columns at a time, each from its first pages only, so a wide
    frame of huge cells never sits in memory whole.
    """
    if pf.metadata.num_row_groups == 0 or not names:
        return [], False
    by_column: list[list[str]] = []
    cut = False
    for start in range(0, len(names), _COLUMN_GROUP):
        group = names[start : start + _COLUMN_GROUP]
        batches = pf.iter_batches(
            batch_size=HEAD_ROWS, row_groups=[0], columns=group, use_threads=False
        )
        batch = next(iter(batches), None)
        if batch is None:
            return [], False
        for column in batch.columns:
            cells, was_cut = _cells(pa, column)
            by_column.append(cells)
            cut = cut or was_cut
    count = min(len(c) for c in by_column)
    return [[column[r] for column in by_column] for r in range(count)], cut


def _cells(pa: Any, column: Any) -> tuple[list[str], bool]:
    """One column's cells as text of at most ``MAX_CELL`` characters; whether one was cut.

    Strings and bytes are cut by arrow before they become Python objects, so a
    1 MB cell is never copied whole.
    """
    import pyarrow.compute as pc

    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.dictionary_decode()
        kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        column = pc.utf8_slice_codeunits(column, 0, MAX_CELL + 1)
    elif pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        column = pc.binary_slice(column, 0, MAX_CELL + 1)
    try:
        values = column.to_pylist()
    except (pa.ArrowException, ValueError, OverflowError):
        values = [column[i] for i in range(len(column))]  # arrow scalars print themselves
    texts = ["None" if v is None else str(v) for v in values]
    return [_cut(t) for t in texts], any(len(t) > MAX_CELL for t in texts)


# -- .npy ------------------------------------------------------------------------------------


def _npy(handle: BinaryIO, size: int) -> dict[str, Any]:
    try:
        import numpy as np
        from numpy.lib import format as npformat
    except ImportError:
        return unavailable(".npy previews need numpy: pip install numpy")
    handle.seek(0)
    start = handle.read(npformat.MAGIC_LEN)
    try:
        version = npformat.read_magic(io.BytesIO(start))
    except ValueError as exc:
        return unavailable(f"not a .npy file: {_first_line(exc)}")
    if version not in ((1, 0), (2, 0), (3, 0)):
        return unavailable(f"a .npy file of version {version[0]}.{version[1]}, unknown to numpy")
    length_format = "<H" if version == (1, 0) else "<I"
    raw_length = handle.read(struct.calcsize(length_format))
    if len(raw_length) != struct.calcsize(length_format):
        return unavailable("not a .npy file: it ends inside its header")
    (length,) = struct.unpack(length_format, raw_length)
    if length > MAX_NPY_HEADER:
        return unavailable(
            f"its .npy header declares {length} bytes, more than the "
            f"{MAX_NPY_HEADER // 1024} KiB a preview reads"
        )
    header = handle.read(length)
    if len(header) != length:
        return unavailable("not a .npy file: it ends inside its header")
    try:
        shape, fortran, dtype = _npy_header(npformat, version, start + raw_length + header)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError) as exc:
        return unavailable(f"its .npy header could not be read: {_first_line(exc)}")
    doc: dict[str, Any] = {
        "kind": "npy",
        "dtype": _cut(str(dtype)),
        "shape": [int(n) for n in shape],
        "fortran_order": bool(fortran),
    }
    if np.dtype(dtype).hasobject:
        doc["note"] = "an array of Python objects: its contents are never loaded by a preview"
    return doc


def _npy_header(npformat: Any, version: tuple[int, int], raw: bytes) -> tuple[Any, Any, Any]:
    """(shape, fortran_order, dtype) from the bytes of a whole ``.npy`` header.

    Versions 1 and 2 go through numpy's own readers; version 3 (a UTF-8 header,
    which numpy reads only inside ``np.load``) is the same dict, evaluated as a
    literal, never as code.
    """
    fp = io.BytesIO(raw)
    npformat.read_magic(fp)
    if version == (1, 0):
        result: tuple[Any, Any, Any] = npformat.read_array_header_1_0(
            fp, max_header_size=MAX_NPY_HEADER
        )
        return result
    if version == (2, 0):
        result = npformat.read_array_header_2_0(fp, max_header_size=MAX_NPY_HEADER)
        return result
    text = raw[npformat.MAGIC_LEN + 4 :].decode("utf-8")
    header = ast.literal_eval(text)
    if not isinstance(header, dict) or set(header) != set(npformat.EXPECTED_KEYS):
        raise ValueError(f"the header is not a dict with keys {sorted(npformat.EXPECTED_KEYS)}")
    shape, fortran = header["shape"], header["fortran_order"]
    if not isinstance(shape, tuple) or not all(isinstance(n, int) for n in shape):
        raise ValueError("its shape is not a tuple of integers")
    if not isinstance(fortran, bool):
        raise ValueError("its fortran_order is not a bool")
    return shape, fortran, npformat.descr_to_dtype(header["descr"])


# -- text ------------------------------------------------------------------------------------


def _cut(text: str) -> str:
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return _cut(lines[0] if lines else type(exc).__name__)
