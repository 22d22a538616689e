"""Two workers on different pandas major versions share one store.

The second worker is a real second virtual environment with the other pandas
(``cross_version_support``), running this checkout's ``linea_luigi`` against
the same SQLite database and storage folder. A frame stored as Parquet crosses
in both directions and compares equal; a frame pickled under this pandas
fails there with an error that names both versions, so the user knows what
to fix. In CI a second environment that cannot be made fails the tests.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from ci_support import unavailable
from cross_version_support import (
    EnvironmentUnavailable,
    OtherEnv,
    canonical,
    other_env,
    sample_frame,
    suite_pandas_major,
)

import linea_luigi as ll

log = logging.getLogger(__name__)
#: dtype names that both mean "a column of text" (pandas 3's default ``str``, 2's ``object``)
TEXT = {"str", "string", "object"}


@pytest.fixture(scope="session")
def other() -> OtherEnv:
    try:
        env = other_env()
    except EnvironmentUnavailable as exc:
        unavailable(f"the second environment with the other pandas could not be made: {exc}")
    how = "found in the cache" if env.built_in_s is None else f"built in {env.built_in_s:.1f} s"
    log.warning("second environment (pandas %s) %s: %s", env.pandas_version, how, env.python)
    assert int(env.pandas_version.split(".")[0]) != suite_pandas_major()
    return env


def _same_frame(theirs: dict[str, Any], ours: dict[str, Any]) -> None:
    """Equal values, categories, index and dtypes, text columns' dtype names aside."""
    assert theirs["type"] == ours["type"] == "pandas.DataFrame"
    assert theirs["order"] == ours["order"]
    for name in ours["order"]:
        mine, yours = dict(ours["columns"][name]), dict(theirs["columns"][name])
        if mine["dtype"] in TEXT:
            assert yours.pop("dtype") in TEXT and mine.pop("dtype") in TEXT, name
        assert yours == mine, name
    their_index, our_index = dict(theirs["index"]), dict(ours["index"])
    assert their_index.pop("dtype") in TEXT and our_index.pop("dtype") in TEXT
    assert their_index == our_index


def _expected_columns(frame: pd.DataFrame) -> dict[str, Any]:
    return canonical(frame[["when", "count"]])


def test_a_parquet_frame_saved_here_loads_there(
    other: OtherEnv, store: ll.ArtifactStore, sqlite_url: str, storage_dir: Path, tmp_path: Path
) -> None:
    frame = sample_frame()
    artifact = store.save(frame, "frame")
    assert (artifact.serializer, artifact.value_type) == ("parquet", "pandas.DataFrame")
    assert artifact.libraries is not None and artifact.libraries["pandas"] == pd.__version__
    assert artifact.libraries["pandas"] != other.pandas_version
    pd.testing.assert_frame_equal(store.load("frame"), frame)  # and here, of course

    there = other.run("load", sqlite_url, str(storage_dir), "frame", cwd=tmp_path)
    assert there["pandas"] == other.pandas_version
    assert Path(there["linea_luigi"]).is_relative_to(Path(ll.__file__).parents[1])
    assert "error" not in there, there.get("message")
    _same_frame(there["frame"], canonical(frame))
    _same_frame(there["columns"], _expected_columns(frame))
    assert there["frame"]["columns"]["kind"]["dtype"] == "category"
    assert there["frame"]["columns"]["when"]["dtype"] == str(frame["when"].dtype)
    assert there["frame"]["columns"]["count"]["dtype"] == "Int64"


def test_a_parquet_frame_saved_there_loads_here(
    other: OtherEnv, store: ll.ArtifactStore, sqlite_url: str, storage_dir: Path, tmp_path: Path
) -> None:
    store.save({"first": "this process"}, "setup")  # the database is made here, then shared
    there = other.run("save", sqlite_url, str(storage_dir), "frame", "auto", cwd=tmp_path)
    assert "error" not in there, there.get("message")
    assert there["serializer"] == "parquet"
    artifact = store.get("frame")
    assert artifact.libraries is not None
    assert artifact.libraries["pandas"] == other.pandas_version
    loaded = store.load("frame")
    _same_frame(canonical(loaded), there["frame"])
    pd.testing.assert_frame_equal(loaded, sample_frame(), check_dtype=False)


def test_a_pickled_frame_fails_there_naming_both_versions(
    other: OtherEnv, store: ll.ArtifactStore, sqlite_url: str, storage_dir: Path, tmp_path: Path
) -> None:
    frame = sample_frame()
    artifact = store.save(frame, "pickled", serializer="cloudpickle")
    assert (artifact.serializer, artifact.value_type) == ("cloudpickle", "pandas.DataFrame")
    assert artifact.libraries is not None and artifact.libraries["pandas"] == pd.__version__
    pd.testing.assert_frame_equal(store.load("pickled"), frame)  # fine under the same pandas

    there = other.run("load", sqlite_url, str(storage_dir), "pickled", cwd=tmp_path)
    assert there.get("error") == "SerializationError", there
    message = there["message"]
    assert f"written with pandas {pd.__version__}" in message, message
    assert f"this process has pandas {other.pandas_version}" in message, message
    assert "'pickled' v0" in message
