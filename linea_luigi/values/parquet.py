"""The ``parquet`` serializer: data frames as plain Parquet files other tools read.

pandas, polars and pyarrow frames are written by pyarrow with pandas'
metadata (index, dtypes and categoricals round-trip, as ``df.to_parquet``
writes them) and a CRC on every page, so that a column load, which cannot
check the whole file's digest, still detects a damaged page. Which library a
frame is loaded back as comes from the record's ``value_type``.

pyarrow, pandas and polars are imported only when a value is theirs:
``takes`` decides by the type's module name, and a pipeline of small dicts
never pays for importing them. pyarrow comes with the ``arrow`` extra.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, BinaryIO

from ..errors import InvalidArgumentError, SerializationError

log = logging.getLogger(__name__)

EXTRA = "pip install 'linea-luigi[arrow]'"
COMPRESSION = "snappy"
PANDAS, POLARS, ARROW = "pandas.DataFrame", "polars.DataFrame", "pyarrow.Table"
#: the schema metadata key pandas uses for ``DataFrame.attrs``
_ATTRS = b"PANDAS_ATTRS"


class Unrepresentable(Exception):
    """A frame whose contents Parquet cannot hold faithfully (``auto`` pickles it instead)."""


def frame_kind(value: Any) -> str | None:
    """``PANDAS`` / ``POLARS`` / ``ARROW`` for exactly those types, else None; imports nothing.

    Exact types only: a subclass (a GeoDataFrame, say) carries behaviour and
    attributes that Parquet would drop, so it is pickled.
    """
    kind = type(value)
    top = kind.__module__.partition(".")[0]
    if top not in ("pandas", "polars", "pyarrow"):
        return None
    module = sys.modules[top]
    if top == "pandas" and kind is getattr(module, "DataFrame", None):
        return PANDAS
    if top == "polars" and kind is getattr(module, "DataFrame", None):
        return POLARS
    if top == "pyarrow" and kind is getattr(module, "Table", None):
        return ARROW
    return None


def arrow() -> tuple[Any, Any]:
    """``(pyarrow, pyarrow.parquet)``, or ``SerializationError`` saying which extra installs it."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as exc:
        raise SerializationError(f"Parquet needs pyarrow: {EXTRA}.") from exc
    return pyarrow, pyarrow.parquet


def available() -> bool:
    """Whether pyarrow can be imported here (``auto`` pickles frames when it cannot)."""
    try:
        arrow()
    except SerializationError:
        return False
    return True


class ParquetSerializer:
    """pandas / polars frames and pyarrow tables as Parquet (see the module docstring)."""

    name = "parquet"
    extension = ".parquet"

    def takes(self, value: Any) -> bool:
        return frame_kind(value) is not None

    def prepare(self, value: Any) -> Any:
        """The ``pyarrow.Table`` to write; ``Unrepresentable`` when Parquet would lose data."""
        kind = frame_kind(value)
        pa, _ = arrow()
        if kind == ARROW:
            return value
        if kind == POLARS:
            return value.to_arrow()
        labels = list(value.columns)
        if not all(isinstance(c, str) for c in labels):
            raise Unrepresentable("column names that are not all strings do not round-trip")
        try:
            table = pa.Table.from_pandas(value)
        except (pa.ArrowException, ValueError, TypeError) as exc:
            why = "; ".join(str(a) for a in exc.args) or type(exc).__name__
            raise Unrepresentable(why.splitlines()[0][:300]) from exc
        if value.attrs:
            metadata = dict(table.schema.metadata or {})
            metadata[_ATTRS] = json.dumps(value.attrs).encode()
            table = table.replace_schema_metadata(metadata)
        return table

    def dump(self, table: Any, out: BinaryIO) -> set[str]:
        """Write the prepared table; returns the packages involved."""
        _, pq = arrow()
        pq.write_table(table, _Sink(out), compression=COMPRESSION, write_page_checksum=True)
        packages = {"pyarrow"}
        metadata = table.schema.metadata or {}
        if b"pandas" in metadata:
            packages |= {"pandas", "numpy"}
        return packages

    def load(
        self,
        data: memoryview,
        value_type: str | None = None,
        written: Mapping[str, str] | None = None,
    ) -> Any:
        """The frame in ``data`` (verified bytes), as the library that saved it."""
        pa, pq = arrow()
        source = pa.BufferReader(pa.py_buffer(data))
        try:
            table = pq.read_table(source)
        except (pa.ArrowException, OSError) as exc:
            raise SerializationError(f"Cannot read the stored Parquet value: {exc}") from exc
        del source
        # the decoded table holds copies: the file's bytes can go before the frame is
        # built, halving the peak. pyarrow's reader threads drop their exports of the
        # buffer a moment after read_table returns, so a release may need a few tries;
        # past them the bytes are freed with the last reference instead.
        _release(data)
        return as_library(table, value_type)


def _release(data: memoryview, tries: int = 40, pause: float = 0.0005) -> None:
    for _ in range(tries):
        try:
            data.release()
            return
        except BufferError:
            time.sleep(pause)


class _Sink:
    """What pyarrow writes through: ``out``'s writes, and a ``close`` that leaves it open.

    pyarrow closes the stream it wrote a file to; ours belongs to the storage
    writer, which publishes it after the last byte (``storage.writing``).
    """

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self.closed = False

    def write(self, data: Any) -> int:
        return self._out.write(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def read_columns(handle: BinaryIO, columns: Sequence[str], value_type: str | None) -> Any:
    """Only ``columns`` of the Parquet file ``handle``: its footer and their column chunks.

    Every page read is checked against its CRC; a mismatch is a
    ``ChecksumMismatchError`` (raised by the caller from ``PageChecksumError``).
    """
    pa, pq = arrow()
    try:
        source = pq.ParquetFile(handle, page_checksum_verification=True, pre_buffer=True)
        names = source.schema_arrow.names
        missing = [c for c in columns if c not in names]
        if missing:
            raise InvalidArgumentError(
                f"No column {missing[0]!r} in this value; its columns are "
                f"{', '.join(map(repr, names[:20]))}{', …' if len(names) > 20 else ''}."
            )
        table = source.read(columns=list(columns), use_pandas_metadata=True)
    except (pa.ArrowException, OSError) as exc:
        if "checksum" in str(exc).lower() or "CRC" in str(exc):
            raise PageChecksumError(str(exc)) from exc
        raise SerializationError(f"Cannot read the stored Parquet value: {exc}") from exc
    return as_library(table, value_type)


class PageChecksumError(Exception):
    """A page of a Parquet file does not match its CRC (the caller names the artifact)."""


def as_library(table: Any, value_type: str | None) -> Any:
    """``table`` as the type it was saved as: a pandas or polars frame, or the table itself."""
    if value_type == ARROW:
        return table
    try:
        if value_type == POLARS:
            import polars

            return polars.from_arrow(table)
        frame = table.to_pandas()
    except ImportError as exc:
        library = "polars" if value_type == POLARS else "pandas"
        raise SerializationError(
            f"This value was saved as a {value_type or PANDAS}; install {library} to load it, "
            "or load it as a pyarrow.Table with pyarrow.parquet.read_table(artifact.uri)."
        ) from exc
    attrs = (table.schema.metadata or {}).get(_ATTRS)
    if attrs is not None:
        frame.attrs = json.loads(attrs)
    return frame


def check_columns(columns: object) -> list[str]:
    """``columns`` as a list of names, or ``InvalidArgumentError``."""
    if isinstance(columns, str) or not isinstance(columns, Sequence) or not columns:
        raise InvalidArgumentError(
            f"columns must be a non-empty list of column names, got {columns!r:.80}."
        )
    if not all(isinstance(c, str) for c in columns):
        raise InvalidArgumentError(f"columns must be names (strings), got {columns!r:.80}.")
    return list(columns)
