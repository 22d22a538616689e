"""Column loads: ``columns=`` through every entry point, and only those columns are read.

What is read is measured, not assumed: locally the kernel's count of bytes this
process read (``rchar`` in ``/proc/self/io``), on S3 the bytes a loopback proxy
relayed from the server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pandas.testing as pdt
import polars as pl
import polars.testing as plt
import pyarrow as pa
import pytest
from fault_support import DOWN, TcpProxy
from luigi_support import use_as_default

import linea_luigi as ll

WriteCfg = Callable[[str], Path]
WANTED = ["d", "a"]


def _small() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "a": rng.integers(0, 100, 50),
            "b": rng.normal(size=50),
            "c": [f"s{i}" for i in range(50)],
            "d": pd.date_range("2024-01-01", periods=50, freq="D", tz="UTC"),
            "e": pd.array([None if i % 7 == 0 else i for i in range(50)], dtype="Int64"),
        }
    )


def _check(got: Any) -> None:
    assert type(got) is pd.DataFrame
    assert list(got.columns) == WANTED
    pdt.assert_frame_equal(got, _small()[WANTED])


# -- the entry points -------------------------------------------------------------------


def test_store_load_and_load_artifact(store: ll.ArtifactStore) -> None:
    store.save(_small(), "frame")
    _check(store.load("frame", columns=WANTED))
    _check(store.load("frame", 0, columns=WANTED))
    _check(store.load_artifact(store.get("frame"), columns=WANTED))
    pdt.assert_frame_equal(store.load("frame"), _small())  # no columns: the whole frame


def test_artifact_and_target_load(store: ll.ArtifactStore) -> None:
    art = store.save(_small(), "frame")
    _check(art.load(columns=WANTED))
    _check(store.get("frame").load(columns=WANTED))
    _check(ll.ArtifactTarget("frame", store=store).load(columns=WANTED))
    _check(ll.ArtifactTarget("frame", version=0, store=store).load(columns=WANTED))


def test_default_store_configured_by_luigi_cfg(luigi_cfg: WriteCfg, tmp_path: Path) -> None:
    luigi_cfg(
        "[artifact_store]\n"
        f"db_connection = sqlite:///{tmp_path / 'cfg.sqlite'}\n"
        f"artifact_storage_dir = {tmp_path / 'cfg-artifacts'}\n"
    )
    ll.artifact_store().save(_small(), "frame")
    _check(ll.load("frame", columns=WANTED))
    _check(ll.load("frame", 0, columns=WANTED))
    _check(ll.ArtifactTarget("frame").load(columns=WANTED))


def test_default_store_configured_by_options(store: ll.ArtifactStore) -> None:
    use_as_default(store).save(_small(), "frame")
    _check(ll.load("frame", columns=WANTED))


def test_index_comes_with_the_columns(store: ll.ArtifactStore) -> None:
    df = _small().set_index("c")
    store.save(df, "indexed")
    got = store.load("indexed", columns=WANTED)
    assert list(got.columns) == WANTED
    pdt.assert_frame_equal(got, df[WANTED])


def test_polars_and_arrow_column_loads(store: ll.ArtifactStore) -> None:
    table = pa.Table.from_pandas(_small(), preserve_index=False)
    store.save(table, "tbl")
    got = store.load("tbl", columns=WANTED)
    assert isinstance(got, pa.Table) and got.column_names == WANTED
    assert got.equals(table.select(WANTED))

    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    store.save(frame, "pl")
    got = store.load("pl", columns=WANTED)
    assert isinstance(got, pl.DataFrame) and got.columns == WANTED
    plt.assert_frame_equal(got, frame.select(WANTED))


# -- refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize("columns", [["nope"], ["a", "nope"]], ids=["unknown", "one-unknown"])
def test_unknown_column_is_named(store: ll.ArtifactStore, columns: list[str]) -> None:
    store.save(_small(), "frame")
    with pytest.raises(ll.ArtifactStoreError) as err:
        store.load("frame", columns=columns)
    assert "nope" in str(err.value), str(err.value)
    assert isinstance(err.value, (ll.InvalidArgumentError, ll.SerializationError))


@pytest.mark.parametrize(
    ("value", "serializer"),
    [
        (np.arange(12).reshape(3, 4), None),
        ({"a": [1, 2]}, None),
        (_small(), "cloudpickle"),
        (pd.DataFrame({"m": [1, "a", {"x": 1}]}), None),  # the mixed-object fallback
    ],
    ids=["npy", "pickle", "forced-pickle-frame", "fallback-frame"],
)
def test_columns_on_a_value_that_is_not_parquet(
    store: ll.ArtifactStore, value: Any, serializer: str | None
) -> None:
    art = store.save(value, "x", serializer=serializer)
    assert art.serializer != "parquet"
    with pytest.raises(ll.InvalidArgumentError) as err:
        store.load("x", columns=["a"])
    assert art.serializer in str(err.value), str(err.value)
    with pytest.raises(ll.InvalidArgumentError):
        art.load(columns=["a"])


# -- only the columns' bytes are read ---------------------------------------------------


def _wide(rows: int) -> pd.DataFrame:
    """Ten float columns of noise (Snappy cannot shrink it): each about a tenth of the file."""
    rng = np.random.default_rng(5)
    return pd.DataFrame({f"c{i}": rng.normal(size=rows) for i in range(10)})


def _rchar() -> int:
    """Bytes this process has read through read-like system calls so far."""
    with open("/proc/self/io") as fh:
        fields = dict(line.split(": ") for line in fh.read().splitlines())
    return int(fields["rchar"])


def test_local_column_load_reads_a_fraction(store: ll.ArtifactStore) -> None:
    df = _wide(650_000)
    art = store.save(df, "wide")
    assert art.serializer == "parquet" and art.size_bytes > 45 * 2**20

    before = _rchar()
    whole = store.load("wide")
    full_read = _rchar() - before
    assert full_read >= art.size_bytes  # the measurement sees the file being read
    pdt.assert_frame_equal(whole, df)
    del whole

    before = _rchar()
    one = store.load("wide", columns=["c3"])
    column_read = _rchar() - before
    pdt.assert_frame_equal(one, df[["c3"]])
    assert column_read < 0.3 * art.size_bytes, (column_read, art.size_bytes)
    assert column_read < 0.3 * full_read, (column_read, full_read)


@pytest.fixture
def proxy(endpoint: str) -> Iterator[TcpProxy]:
    relay = TcpProxy(int(endpoint.rsplit(":", 1)[1]))
    yield relay
    relay.cut()


def test_s3_column_load_transfers_a_fraction(
    bucket: str, endpoint: str, proxy: TcpProxy, sqlite_url: str
) -> None:
    root = f"s3://{bucket}/cols"
    endpoint_options = {"client_kwargs": {"endpoint_url": endpoint}}
    writer = ll.ArtifactStore(sqlite_url, root, endpoint_options, cache_dir="none")
    df = _wide(500_000)
    art = writer.save(df, "wide")
    assert art.uri.startswith(f"s3://{bucket}/") and art.uri.endswith(".parquet")
    assert art.size_bytes > 35 * 2**20
    proxied = {"client_kwargs": {"endpoint_url": f"http://127.0.0.1:{proxy.port}"}}
    reader = ll.ArtifactStore(sqlite_url, root, proxied, cache_dir="none")

    before = proxy.relayed[DOWN]
    pdt.assert_frame_equal(reader.load("wide"), df)
    full_down = proxy.relayed[DOWN] - before
    assert full_down >= art.size_bytes  # the proxy sees the whole file go by

    before = proxy.relayed[DOWN]
    pdt.assert_frame_equal(reader.load("wide", columns=["c7", "c2"]), df[["c7", "c2"]])
    column_down = proxy.relayed[DOWN] - before
    assert column_down < 0.35 * art.size_bytes, (column_down, art.size_bytes)
