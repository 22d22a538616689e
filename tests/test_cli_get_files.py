"""``linea-luigi get -o``: Parquet and ``.npy`` artifacts written as their stored file, verified.

Locally and on the loopback S3 server: the written file is byte for byte the
stored one and other tools read it (pyarrow, pandas, polars, ``np.load``); a
file name whose extension promises another format is refused before anything
is written; a stored file changed after saving is refused and leaves no output.
Pickled values keep today's behaviour.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pandas as pd
import pandas.testing as pdt
import polars as pl
import polars.testing as plt
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result
from fault_support import s3_client

import linea_luigi as ll
from linea_luigi.cli import main


@dataclass
class Env:
    store: ll.ArtifactStore
    args: list[str]
    options: dict[str, Any]
    #: replaces the stored file of an artifact with other bytes (a tamperer's hand)
    plant: Callable[[ll.Artifact, bytes], None]

    def run(self, *argv: str) -> Result:
        return CliRunner().invoke(main, [*self.args, *argv])

    def stored(self, a: ll.Artifact) -> bytes:
        with fsspec.open(a.uri, "rb", **self.options) as handle:
            data: bytes = handle.read()
        return data


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def refused(result: Result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def local(sqlite_url: str, storage_dir: Path) -> Env:
    store = ll.ArtifactStore(sqlite_url, str(storage_dir))

    def plant(a: ll.Artifact, data: bytes) -> None:
        (storage_dir / a.location).write_bytes(data)

    return Env(store, ["--db-url", sqlite_url, "--storage-dir", str(storage_dir)], {}, plant)


@pytest.fixture
def s3(
    sqlite_url: str, bucket: str, endpoint: str, luigi_cfg: Callable[[str], Path]
) -> Iterator[Env]:
    options = {"client_kwargs": {"endpoint_url": endpoint}}
    # no local cache: get must read the (planted) stored objects
    luigi_cfg(f"[artifact_store]\nstorage_options = {json.dumps(options)}\ncache_dir = none\n")
    root = f"s3://{bucket}/get"
    store = ll.ArtifactStore(sqlite_url, root, options, cache_dir="none")
    client = s3_client(endpoint)

    def plant(a: ll.Artifact, data: bytes) -> None:
        client.put_object(Bucket=bucket, Key=a.uri.removeprefix(f"s3://{bucket}/"), Body=data)

    yield Env(store, ["--db-url", sqlite_url, "--storage-dir", root], options, plant)


@pytest.fixture(params=["local", "s3"])
def env(request: pytest.FixtureRequest) -> Env:
    result: Env = request.getfixturevalue(request.param)
    return result


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "n": pd.array([1, None, 3], dtype="Int64"),
            "text": ["a", "b", None],
            "when": pd.date_range("2024-03-01", periods=3, freq="h", tz="Europe/Paris"),
            "kind": pd.Categorical(["x", "y", "x"]),
        },
        index=pd.Index(["r1", "r2", "r3"], name="row"),
    )


# -- the stored file, as it is ---------------------------------------------------------------


def test_a_parquet_artifact_is_written_as_its_stored_file(env: Env, tmp_path: Path) -> None:
    a = env.store.save(frame(), "frame")
    assert a.serializer == "parquet"
    out = tmp_path / "frame.parquet"
    said = ok(env.run("get", "frame", "-o", str(out)))
    assert f"wrote frame:0 to {out} (a Parquet file as stored" in said
    assert out.read_bytes() == env.stored(a)
    pdt.assert_frame_equal(pq.read_table(out).to_pandas(), frame())
    pdt.assert_frame_equal(pd.read_parquet(out), frame())


def test_polars_frames_and_other_extensions_are_written_as_stored(env: Env, tmp_path: Path) -> None:
    df = pl.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    a = env.store.save(df, "polars")
    assert a.serializer == "parquet" and a.value_type == "polars.DataFrame"
    out = tmp_path / "polars.parquet"
    ok(env.run("get", "polars", "-o", str(out)))
    plt.assert_frame_equal(pl.read_parquet(out), df)
    for name in ("no-extension", "data.bin", "upper.PARQUET"):
        ok(env.run("get", "polars", "-o", str(tmp_path / name)))
        assert (tmp_path / name).read_bytes() == env.stored(a)


def test_an_npy_artifact_is_written_as_its_stored_file(env: Env, tmp_path: Path) -> None:
    array = np.arange(60, dtype=">i4").reshape(3, 4, 5)[:, ::2]  # big-endian, not contiguous
    a = env.store.save(array, "array")
    assert a.serializer == "npy"
    out = tmp_path / "array.npy"
    said = ok(env.run("get", "array", "-o", str(out)))
    assert "(a numpy .npy file as stored" in said
    assert out.read_bytes() == env.stored(a)
    loaded = np.load(out, allow_pickle=False)
    np.testing.assert_array_equal(loaded, array)
    assert loaded.dtype == array.dtype


# -- an extension that promises another format is refused ------------------------------------


def test_extensions_that_do_not_fit_are_refused_and_nothing_is_written(
    local: Env, tmp_path: Path
) -> None:
    local.store.save(frame(), "frame")
    local.store.save(np.zeros(4), "array")
    local.store.save({"a": 1}, "dict")
    local.store.save(b"\x00raw", "blob")
    cases = [
        ("frame", "x.npy", "(pandas.DataFrame)", "fits the extension .parquet, not .npy"),
        ("frame", "x.pkl", "a Parquet file", "-o frame.parquet"),
        ("array", "x.parquet", "(numpy.ndarray)", "fits the extension .npy, not .parquet"),
        ("dict", "x.npy", "(builtins.dict) is written as pickle", "fits the extension .pkl"),
        ("dict", "x.parquet", "(builtins.dict)", "not .parquet"),
        ("blob", "x.pkl", "raw bytes", "fits the extension .bin, not .pkl"),
    ]
    for name, file, what, fits in cases:
        out = tmp_path / file
        line = refused(local.run("get", name, "-o", str(out)))
        assert line.startswith(f"Error: Will not write {name}:0 to {out}:"), line
        assert what in line and fits in line, line
        assert not out.exists()
    kept = tmp_path / "kept.npy"
    kept.write_bytes(b"mine")
    refused(local.run("get", "frame", "-o", str(kept)))
    assert kept.read_bytes() == b"mine"  # an existing file is left alone too


def test_pickled_values_keep_their_formats(local: Env, tmp_path: Path) -> None:
    local.store.save({"a": [1, 2]}, "dict")
    local.store.save(np.arange(6).reshape(2, 3), "pickled-array", serializer="cloudpickle")
    local.store.save(np.array([1, "x"], dtype=object), "objects")
    local.store.save("héllo", "text")
    for name, file in (("dict", "d.pkl"), ("dict", "d"), ("objects", "o.pkl")):
        said = ok(local.run("get", name, "-o", str(tmp_path / file)))
        assert "(pickle," in said
        with open(tmp_path / file, "rb") as handle:
            value = pickle.load(handle)
        assert repr(value) == repr(local.store.load(name))
    ok(local.run("get", "pickled-array", "-o", str(tmp_path / "p.npy")))
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), np.arange(6).reshape(2, 3))
    said = ok(local.run("get", "text", "-o", str(tmp_path / "t.txt")))
    assert "(UTF-8 text" in said and (tmp_path / "t.txt").read_text("utf-8") == "héllo"
    assert ok(local.run("get", "dict")).strip() == "{'a': [1, 2]}"


# -- a changed stored file is refused, with no output left -----------------------------------


def test_a_tampered_stored_file_is_refused_and_leaves_no_output(env: Env, tmp_path: Path) -> None:
    parquet = env.store.save(frame(), "frame")
    array = env.store.save(np.arange(1000, dtype=np.float64), "array")
    data = bytearray(env.stored(parquet))
    data[len(data) // 2] ^= 0x01
    env.plant(parquet, bytes(data))
    env.plant(array, env.stored(array)[:-8])  # truncated
    for name, file in (("frame", "f.parquet"), ("array", "a.npy"), ("array", "a.bin")):
        out = tmp_path / file
        line = refused(env.run("get", name, "-o", str(out)))
        assert "is corrupt" in line and f"Artifact {name!r} v0" in line, line
        assert not out.exists()
