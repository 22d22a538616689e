"""Tampered Parquet and ``.npy`` values are refused.

Whole loads check the size and digest before a byte is parsed: the parsers are
trapped here, so a load that parsed first would fail the test with the trap's
error instead of ``ChecksumMismatchError``. Column loads cannot hash the whole
file: a damaged page inside the chosen column's chunk is caught by the page's
CRC, and a file of another size by the size check. Locally and on moto's S3.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from numpy.lib import format as npy_format

import linea_luigi as ll

ROWS = 2000


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(15)
    return pd.DataFrame(
        {
            "a": np.arange(ROWS, dtype=np.int64),
            "b": rng.random(ROWS),
            "c": [f"text {i}" for i in range(ROWS)],
        }
    )


def _array() -> np.ndarray[Any, Any]:
    return np.random.default_rng(15).random((300, 40))


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


TAMPERS: dict[str, Callable[[bytes], bytes]] = {
    "flip-middle": lambda b: _flip(b, len(b) // 2),
    "truncate-one": lambda b: b[:-1],
    "truncate-half": lambda b: b[: len(b) // 2],
    "append-one": lambda b: b + b"\x00",
}
#: tampers that change the size: a column load's size check catches them
RESIZED = ["truncate-one", "truncate-half", "append-one"]


class Files:
    """The stored bytes behind ``artifact.uri``, read and replaced as another tool would."""

    def __init__(self, storage_options: dict[str, Any] | None = None) -> None:
        self.options = storage_options or {}

    def read(self, uri: str) -> bytes:
        fs, path = fsspec.core.url_to_fs(uri, **self.options)
        return bytes(fs.cat_file(path))

    def write(self, uri: str, data: bytes) -> None:
        fs, path = fsspec.core.url_to_fs(uri, **self.options)
        fs.pipe_file(path, data)
        assert bytes(fs.cat_file(path)) == data


@pytest.fixture(params=["local", "s3"])
def where(
    request: pytest.FixtureRequest, sqlite_url: str, storage_dir: Path
) -> tuple[ll.ArtifactStore, Files]:
    """A store and its files: a local folder, or a bucket on moto's S3 server."""
    if request.param == "local":
        return ll.ArtifactStore(sqlite_url, str(storage_dir)), Files()
    endpoint = request.getfixturevalue("endpoint")
    bucket = request.getfixturevalue("bucket")
    options = {"client_kwargs": {"endpoint_url": endpoint}}
    # no local cache: loads must read the tampered object (tests/test_cache.py covers the cache)
    store = ll.ArtifactStore(
        sqlite_url, f"s3://{bucket}/values", storage_options=options, cache_dir="none"
    )
    return store, Files(options)


class Parsed(AssertionError):
    """Raised by a trapped parser: something parsed bytes that were never verified."""


@pytest.fixture
def parsers_trapped() -> Iterator[Callable[[], None]]:
    """Make pyarrow's and numpy's readers raise ``Parsed`` until the returned call lifts it."""

    def trap(*args: Any, **kwargs: Any) -> Any:
        raise Parsed("a tampered value was handed to a parser")

    with pytest.MonkeyPatch.context() as traps:  # its own: undo() lifts these traps only
        traps.setattr(pq, "read_table", trap)
        traps.setattr(pq, "ParquetFile", trap)
        traps.setattr(npy_format, "read_magic", trap)
        traps.setattr(np, "load", trap)
        yield traps.undo


VALUES: dict[str, Callable[[], Any]] = {"parquet": _frame, "npy": _array}


def _equal(loaded: Any, original: Any) -> bool:
    if isinstance(original, pd.DataFrame):
        return bool(loaded.equals(original))
    return bool(np.array_equal(loaded, original))


@pytest.mark.parametrize("tamper", TAMPERS)
@pytest.mark.parametrize("serializer", VALUES)
def test_a_tampered_value_is_refused_before_parsing(
    where: tuple[ll.ArtifactStore, Files],
    parsers_trapped: Callable[[], None],
    serializer: str,
    tamper: str,
) -> None:
    store, files = where
    value = VALUES[serializer]()
    artifact = store.save(value, "v")
    assert artifact.serializer == serializer
    with pytest.raises(Parsed):  # the traps sit on the very parsers a load uses
        store.load("v")
    original = files.read(artifact.uri)
    assert len(original) == artifact.size_bytes
    files.write(artifact.uri, TAMPERS[tamper](original))

    for load in (artifact.load, lambda: store.load("v")):
        with pytest.raises(ll.ChecksumMismatchError) as info:
            load()
        assert artifact.uri in str(info.value)
        assert "'v' v0" in str(info.value)

    parsers_trapped()  # the trap is real: the untampered value does go through a parser
    files.write(artifact.uri, original)
    assert _equal(store.load("v"), value)


def test_a_flipped_npy_byte_would_load_silently(store: ll.ArtifactStore) -> None:
    """numpy reads the flipped file without complaint: only the digest stands in the way."""
    array = _array()
    artifact = store.save(array, "v")
    files = Files()
    tampered = TAMPERS["flip-middle"](files.read(artifact.uri))
    files.write(artifact.uri, tampered)
    with pytest.raises(ll.ChecksumMismatchError):
        store.load("v")
    fs, path = fsspec.core.url_to_fs(artifact.uri)
    with fs.open(path, "rb") as handle:
        wrong = np.load(handle, allow_pickle=False)
    assert wrong.shape == array.shape and not np.array_equal(wrong, array)


# -- column loads ------------------------------------------------------------------------------


def _chunk(data: bytes, column: str) -> tuple[int, int, int]:
    """``(chunk start, first data page, chunk end)`` of ``column`` in row group 0 of ``data``."""
    metadata = pq.ParquetFile(pa.BufferReader(data)).metadata
    assert metadata.num_row_groups == 1
    names = [metadata.schema.column(i).name for i in range(metadata.num_columns)]
    chunk = metadata.row_group(0).column(names.index(column))
    start = chunk.data_page_offset
    if chunk.has_dictionary_page and chunk.dictionary_page_offset is not None:
        start = min(start, chunk.dictionary_page_offset)
    return start, chunk.data_page_offset, start + chunk.total_compressed_size


def _flip_in_data_page(data: bytes, column: str) -> bytes:
    """Flip one byte three quarters into ``column``'s data page: past its header, in its data."""
    _, page, end = _chunk(data, column)
    assert end - page > 64, "the data page is too small to hit past its header"
    return _flip(data, page + (end - page) * 3 // 4)


def test_column_load_reads_the_columns(where: tuple[ll.ArtifactStore, Files]) -> None:
    store, _ = where
    frame = _frame()
    artifact = store.save(frame, "f")
    pd.testing.assert_frame_equal(store.load("f", columns=["b"]), frame[["b"]])
    pd.testing.assert_frame_equal(artifact.load(columns=["c", "a"]), frame[["c", "a"]])


def test_a_flipped_byte_in_a_chosen_column_fails_its_page_checksum(
    where: tuple[ll.ArtifactStore, Files],
) -> None:
    store, files = where
    frame = _frame()
    artifact = store.save(frame, "f")
    original = files.read(artifact.uri)
    tampered = _flip_in_data_page(original, "b")
    assert len(tampered) == len(original)  # the size check cannot see it
    files.write(artifact.uri, tampered)

    for load in (
        lambda: store.load("f", columns=["b"]),
        lambda: artifact.load(columns=["a", "b"]),
    ):
        with pytest.raises(ll.ChecksumMismatchError) as info:
            load()
        message = str(info.value)
        assert "page" in message and "checksum" in message, message
        assert artifact.uri in message
    # a column load reads only its columns: another column's pages are not looked at
    pd.testing.assert_frame_equal(store.load("f", columns=["a", "c"]), frame[["a", "c"]])
    with pytest.raises(ll.ChecksumMismatchError):  # the whole load still checks the digest
        store.load("f")

    files.write(artifact.uri, original)
    pd.testing.assert_frame_equal(store.load("f", columns=["b"]), frame[["b"]])


def test_the_flipped_page_is_read_without_complaint_when_crcs_are_not_checked(
    store: ll.ArtifactStore,
) -> None:
    """Without the page checksum the same file parses: the CRC is what catches it."""
    artifact = store.save(_frame(), "f")
    files = Files()
    tampered = _flip_in_data_page(files.read(artifact.uri), "b")
    unchecked = pq.ParquetFile(pa.BufferReader(tampered), page_checksum_verification=False)
    try:
        read = unchecked.read(columns=["b"]).column("b").to_pylist()
    except (OSError, pa.ArrowException):
        read = None  # a decoder may notice on its own; the checked read must not depend on it
    assert read != _frame()["b"].tolist()
    checked = pq.ParquetFile(pa.BufferReader(tampered), page_checksum_verification=True)
    with pytest.raises(OSError, match=r"(?i)checksum|crc"):
        checked.read(columns=["b"])


@pytest.mark.parametrize("tamper", RESIZED)
def test_a_column_load_of_a_resized_file_fails_the_size_check(
    where: tuple[ll.ArtifactStore, Files], parsers_trapped: Callable[[], None], tamper: str
) -> None:
    store, files = where
    artifact = store.save(_frame(), "f")
    with pytest.raises(Parsed):  # the traps sit on the very parser a column load uses
        store.load("f", columns=["a"])
    tampered = TAMPERS[tamper](files.read(artifact.uri))
    files.write(artifact.uri, tampered)
    with pytest.raises(ll.ChecksumMismatchError) as info:
        store.load("f", columns=["a"])
    assert f"expected {artifact.size_bytes} bytes" in str(info.value)
