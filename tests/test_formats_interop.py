"""The stored files are standard: other tools read ``artifact.uri`` with nothing of ours.

A pandas frame, a polars frame and a pyarrow table saved with the ``auto``
serializer are plain ``.parquet`` files that pyarrow alone, DuckDB and polars
read; an array is a plain ``.npy`` file that ``np.load`` reads (pickles refused).
Locally (``file://`` URLs) and on moto's S3 server on loopback, where each tool
is handed the same ``storage_options`` (or their equivalent) as the store.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

import duckdb
import fsspec
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fault_support import S3_ENV

import linea_luigi as ll

ROWS = 257
COLUMNS = ["id", "x", "s"]
#: what every tool must find in the columns ``COLUMNS``, row by row
EXPECTED = [{"id": i, "x": i / 4, "s": f"row {i} é"} for i in range(ROWS)]


def _columns() -> dict[str, Any]:
    return {
        "id": np.arange(ROWS, dtype=np.int64),
        "x": np.arange(ROWS) / 4,
        "s": [row["s"] for row in EXPECTED],
    }


FRAMES: dict[str, Callable[[], Any]] = {
    "pandas": lambda: pd.DataFrame(_columns()),
    "polars": lambda: pl.DataFrame(_columns()),
    "pyarrow": lambda: pa.table(_columns()),
}

ARRAYS: dict[str, Callable[[], np.ndarray[Any, Any]]] = {
    "float32-3d": lambda: np.arange(120, dtype=np.float32).reshape(4, 5, 6) / 7,
    "int16-fortran": lambda: np.asfortranarray(np.arange(-50, 50, dtype=np.int16).reshape(10, 10)),
    "bool": lambda: np.arange(33) % 3 == 0,
    "datetime64": lambda: np.arange("2024-01-01", "2024-02-01", dtype="datetime64[D]"),
    "complex-0d": lambda: np.array(1.5 - 2j),
}


def local_path(uri: str) -> Path:
    """The file a ``file://`` URL names (a tool that wants a path gets one)."""
    parsed = urlparse(uri)
    assert parsed.scheme == "file", uri
    return Path(url2pathname(unquote(parsed.path)))


def _check_parquet_artifact(artifact: ll.Artifact) -> None:
    assert artifact.serializer == "parquet"
    assert artifact.uri.endswith(".parquet") and artifact.location.endswith(".parquet")


def _check_npy_artifact(artifact: ll.Artifact) -> None:
    assert artifact.serializer == "npy"
    assert artifact.uri.endswith(".npy") and artifact.location.endswith(".npy")


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    return table.select(COLUMNS).to_pylist()


def _duckdb_rows(con: duckdb.DuckDBPyConnection, source: str) -> list[dict[str, Any]]:
    """Every row of the Parquet file ``source`` as DuckDB reads it, in file order."""
    escaped = source.replace("'", "''")
    result = con.sql(f"SELECT {', '.join(COLUMNS)} FROM '{escaped}'").fetchall()
    return [dict(zip(COLUMNS, row, strict=True)) for row in result]


# -- locally -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", FRAMES)
def test_frames_are_parquet_files_other_tools_read(store: ll.ArtifactStore, kind: str) -> None:
    frame = FRAMES[kind]()
    artifact = store.save(frame, f"frame-{kind}")
    _check_parquet_artifact(artifact)
    assert artifact.uri.startswith("file:///")
    path = local_path(artifact.uri)
    assert path.is_file() and path.stat().st_size == artifact.size_bytes

    assert _rows(pq.read_table(artifact.uri)) == EXPECTED  # the URL itself
    assert _rows(pq.read_table(path)) == EXPECTED
    assert pq.ParquetFile(path).metadata.num_rows == ROWS
    with duckdb.connect() as con:
        assert _duckdb_rows(con, str(path)) == EXPECTED
        [(count,)] = con.sql(f"SELECT count(*) FROM '{path}' WHERE x >= 10").fetchall()
        assert count == ROWS - 40
    assert pl.read_parquet(path).select(COLUMNS).to_dicts() == EXPECTED
    if kind == "pandas":  # pandas' own reader gets the same frame back
        pd.testing.assert_frame_equal(pd.read_parquet(path), frame)


def test_a_pandas_index_is_a_column_for_other_tools(store: ll.ArtifactStore) -> None:
    """A named index is stored as pandas stores it: a column others see, the index for pandas."""
    frame = pd.DataFrame(_columns()).set_index("s")
    path = local_path(store.save(frame, "indexed").uri)
    assert pq.read_table(path).column("s").to_pylist() == [r["s"] for r in EXPECTED]
    with duckdb.connect() as con:
        assert con.sql(f"SELECT s FROM '{path}' WHERE id = 3").fetchall() == [("row 3 é",)]
    pd.testing.assert_frame_equal(pd.read_parquet(path), frame)


@pytest.mark.parametrize("kind", ARRAYS)
def test_arrays_are_npy_files_np_load_reads(store: ll.ArtifactStore, kind: str) -> None:
    array = ARRAYS[kind]()
    artifact = store.save(array, f"array-{kind}")
    _check_npy_artifact(artifact)
    path = local_path(artifact.uri)
    loaded = np.load(path, allow_pickle=False)
    assert loaded.dtype == array.dtype and loaded.shape == array.shape
    assert np.array_equal(loaded, array)
    assert loaded.flags.f_contiguous == array.flags.f_contiguous
    with path.open("rb") as handle:  # the header is the standard one
        assert handle.read(6) == b"\x93NUMPY"


# -- on S3 -------------------------------------------------------------------------------------


@pytest.fixture
def s3_store(bucket: str, endpoint: str, tmp_path: Path) -> ll.ArtifactStore:
    return ll.ArtifactStore(
        db_url=f"sqlite:///{tmp_path / 'meta.sqlite'}",
        storage_dir=f"s3://{bucket}/values",
        storage_options=_options(endpoint),
    )


def _options(endpoint: str) -> dict[str, Any]:
    return {"client_kwargs": {"endpoint_url": endpoint}}


def _polars_options(endpoint: str) -> dict[str, str]:
    """The same server and credentials in the words of polars' own S3 client."""
    return {
        "aws_endpoint_url": endpoint,
        "aws_access_key_id": S3_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": S3_ENV["AWS_SECRET_ACCESS_KEY"],
        "aws_region": S3_ENV["AWS_DEFAULT_REGION"],
        "aws_allow_http": "true",
    }


@pytest.mark.parametrize("kind", FRAMES)
def test_frames_on_s3_are_read_by_other_tools(
    s3_store: ll.ArtifactStore, endpoint: str, bucket: str, kind: str
) -> None:
    frame = FRAMES[kind]()
    artifact = s3_store.save(frame, f"frame-{kind}")
    _check_parquet_artifact(artifact)
    assert artifact.uri.startswith(f"s3://{bucket}/values/")
    fs, path = fsspec.core.url_to_fs(artifact.uri, **_options(endpoint))
    assert fs.size(path) == artifact.size_bytes

    assert _rows(pq.read_table(path, filesystem=fs)) == EXPECTED
    with duckdb.connect() as con:
        con.register_filesystem(fs)  # DuckDB reads s3:// through the same fsspec filesystem
        assert _duckdb_rows(con, artifact.uri) == EXPECTED
    read = pl.read_parquet(artifact.uri, storage_options=_polars_options(endpoint))
    assert read.select(COLUMNS).to_dicts() == EXPECTED
    with fs.open(path, "rb") as handle:  # any file object will do, too
        assert pl.read_parquet(handle).select(COLUMNS).to_dicts() == EXPECTED


def test_arrays_on_s3_are_read_by_np_load(
    s3_store: ll.ArtifactStore, endpoint: str, bucket: str
) -> None:
    for kind, make in ARRAYS.items():
        array = make()
        artifact = s3_store.save(array, f"array-{kind}")
        _check_npy_artifact(artifact)
        assert artifact.uri.startswith(f"s3://{bucket}/values/")
        fs, path = fsspec.core.url_to_fs(artifact.uri, **_options(endpoint))
        with fs.open(path, "rb") as handle:
            loaded = np.load(handle, allow_pickle=False)
        assert loaded.dtype == array.dtype and np.array_equal(loaded, array), kind
