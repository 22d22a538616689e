"""Serializers chosen by value type: round trips, what the record says, forced choices.

Frames go to Parquet, arrays to ``.npy``, everything else to cloudpickle; the
record names the serializer, the value's type and the libraries that wrote it.
Detection must not import pandas, polars or pyarrow for values that are not
theirs, and without pyarrow frames fall back to cloudpickle (checked in child
processes, whose imports are their own).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import platform
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import pandas as pd
import pandas.testing as pdt
import polars as pl
import polars.testing as plt
import pyarrow as pa
import pytest
from luigi_support import REPO, run_python

import linea_luigi as ll

PYTHON = platform.python_version()


@dataclass(frozen=True)
class Point:
    """A user's own class: pickled, recorded by module and qualified name."""

    x: int
    y: int


class Outer:
    @dataclass(frozen=True)
    class Inner:
        label: str


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def _check_record(art: ll.Artifact, serializer: str, value_type: str, ext: str) -> None:
    assert (art.serializer, art.value_type) == (serializer, value_type)
    assert art.uri.startswith("file://") and art.uri.endswith(ext), art.uri
    assert art.location.endswith(ext)
    assert art.libraries is not None and art.libraries["python"] == PYTHON


# -- pandas -----------------------------------------------------------------------------

PANDAS_FRAMES = {
    "range-index-nan": pd.DataFrame({"a": [1.0, np.nan, 3.0], "n": [1, 2, 3]}),
    "named-index": pd.DataFrame({"v": [1, 2]}, index=pd.Index(["r1", "r2"], name="row")),
    "multi-index": pd.DataFrame(
        {"v": [1.5, 2.5, 3.5, 4.5]},
        index=pd.MultiIndex.from_product([["a", "b"], [1, 2]], names=["k", "n"]),
    ),
    "categoricals": pd.DataFrame(
        {
            "c": pd.Categorical(["lo", "hi", "lo"], categories=["lo", "hi", "unused"]),
            "o": pd.Categorical(["s", "l", "m"], categories=["s", "m", "l"], ordered=True),
        }
    ),
    "tz-timestamps": pd.DataFrame(
        {
            "paris": pd.date_range("2024-03-30 22:00", periods=4, freq="h", tz="Europe/Paris"),
            "utc": pd.to_datetime(["2024-01-01", None, "2024-01-03", "2024-01-04"], utc=True),
        }
    ),
    "nullable": pd.DataFrame(
        {
            "i": pd.array([1, None, 3], dtype="Int64"),
            "b": pd.array([True, None, False], dtype="boolean"),
        }
    ),
    "strings": pd.DataFrame(
        {
            "string": pd.array(["a", None, "ccc"], dtype="string"),
            "str": pd.Series(["x", "y", None], dtype="str"),
        }
    ),
}


@pytest.mark.parametrize("case", sorted(PANDAS_FRAMES))
def test_pandas_frames_round_trip_as_parquet(store: ll.ArtifactStore, case: str) -> None:
    df = PANDAS_FRAMES[case]
    art = store.save(df, "frame")
    _check_record(art, "parquet", "pandas.DataFrame", ".parquet")
    assert art.libraries is not None
    assert art.libraries["pandas"] == pd.__version__
    assert art.libraries["pyarrow"] == pa.__version__
    assert "cloudpickle" not in art.libraries
    back = store.load("frame")
    assert type(back) is pd.DataFrame
    pdt.assert_frame_equal(back, df, check_index_type=True, check_column_type=True)
    assert type(back.index) is type(df.index)  # a RangeIndex stays one
    assert store.get("frame") == art  # the record read back says the same


def test_ordered_categorical_stays_ordered(store: ll.ArtifactStore) -> None:
    store.save(PANDAS_FRAMES["categoricals"], "cats")
    back = store.load("cats")
    assert back["o"].cat.ordered and not back["c"].cat.ordered
    assert list(back["c"].cat.categories) == ["lo", "hi", "unused"]


def test_mixed_object_column_falls_back_to_cloudpickle(
    store: ll.ArtifactStore, caplog: pytest.LogCaptureFixture
) -> None:
    df = pd.DataFrame({"m": [1, "a", {"x": 1}], "n": [1, 2, 3]})
    caplog.set_level(logging.WARNING)
    art = store.save(df, "mixed")
    _check_record(art, "cloudpickle", "pandas.DataFrame", ".pkl")
    assert art.libraries is not None and art.libraries["pandas"] == pd.__version__
    assert art.libraries["cloudpickle"] == cloudpickle.__version__
    warned = [
        r
        for r in caplog.records
        if r.levelno >= logging.WARNING and r.name.startswith("linea_luigi")
    ]
    assert len(warned) == 1, caplog.text
    assert "pickle" in warned[0].getMessage().lower()
    pdt.assert_frame_equal(store.load("mixed"), df)


# -- polars and pyarrow -----------------------------------------------------------------


def test_polars_frame_round_trips_as_polars(store: ll.ArtifactStore) -> None:
    df = pl.DataFrame(
        {
            "i": [1, None, 3],
            "f": [0.5, float("nan"), None],
            "s": ["a", None, "ccc"],
            "b": [True, False, None],
            "d": [dt.date(2024, 1, 1), None, dt.date(2024, 1, 3)],
            "t": pl.Series([dt.datetime(2024, 1, 1, 12), None, dt.datetime(2024, 1, 3)]),
        }
    ).with_columns(pl.col("t").dt.replace_time_zone("UTC"))
    art = store.save(df, "pl")
    _check_record(art, "parquet", "polars.DataFrame", ".parquet")
    assert art.libraries is not None and art.libraries["polars"] == pl.__version__
    assert art.libraries["pyarrow"] == pa.__version__
    back = store.load("pl")
    assert isinstance(back, pl.DataFrame)
    plt.assert_frame_equal(back, df)


def test_arrow_table_round_trips_as_arrow(store: ll.ArtifactStore) -> None:
    table = pa.table(
        {
            "i": pa.array([1, 2, None], pa.int32()),
            "s": ["x", None, "z"],
            "l": [[1], [], None],
            "ts": pa.array([0, 1000, None], pa.timestamp("ms", tz="UTC")),
        }
    )
    art = store.save(table, "tbl")
    _check_record(art, "parquet", "pyarrow.Table", ".parquet")
    assert art.libraries is not None and art.libraries["pyarrow"] == pa.__version__
    back = store.load("tbl")
    assert isinstance(back, pa.Table)
    assert back.equals(table), (back.schema, table.schema)


# -- numpy ------------------------------------------------------------------------------

_BASE = np.arange(60, dtype=np.float64).reshape(3, 4, 5)
ARRAYS = {
    "float64": np.array([0.5, np.nan, -np.inf, 1e300]),
    "int8": np.array([-128, 0, 127], dtype=np.int8),
    "bool": np.array([True, False, True]),
    "complex": np.array([1 + 2j, -3.5j], dtype=np.complex128),
    "datetime64": np.array(["2024-01-01T12:00", "NaT"], dtype="datetime64[s]"),
    "structured": np.array([(1, 2.5, b"ab"), (3, -1.0, b"c")], dtype="i4,f8,S2"),
    "0-d": np.array(3.25),
    "empty": np.zeros((0, 3), dtype=np.int16),
    "3-D": _BASE,
    "fortran": np.asfortranarray(_BASE[0]),
    "non-contiguous": _BASE[:, ::2, 1:4],
}


@pytest.mark.parametrize("case", list(ARRAYS))
def test_arrays_round_trip_as_npy(store: ll.ArtifactStore, case: str) -> None:
    value = ARRAYS[case]
    art = store.save(value, "arr")
    _check_record(art, "npy", "numpy.ndarray", ".npy")
    assert art.libraries is not None and art.libraries["numpy"] == np.__version__
    assert "cloudpickle" not in art.libraries
    back = store.load("arr")
    assert isinstance(back, np.ndarray)
    assert (back.dtype, back.shape) == (value.dtype, value.shape)
    np.testing.assert_array_equal(back, value)


def test_object_array_is_pickled(store: ll.ArtifactStore) -> None:
    value = np.array([1, "a", None, {"k": 2}], dtype=object)
    art = store.save(value, "objs")
    _check_record(art, "cloudpickle", "numpy.ndarray", ".pkl")
    assert art.libraries is not None and art.libraries["numpy"] == np.__version__
    back = store.load("objs")
    assert back.dtype == object and list(back) == list(value)


# -- everything else --------------------------------------------------------------------

OTHERS: dict[str, tuple[Any, str]] = {
    "dict": ({"a": [1, 2], "b": "x"}, "builtins.dict"),
    "int": (42, "builtins.int"),
    "own class": (Point(1, 2), f"{Point.__module__}.Point"),
    "nested class": (Outer.Inner("x"), f"{Outer.__module__}.Outer.Inner"),
}


@pytest.mark.parametrize("case", list(OTHERS))
def test_other_values_are_pickled_with_their_type(store: ll.ArtifactStore, case: str) -> None:
    value, value_type = OTHERS[case]
    art = store.save(value, "other")
    _check_record(art, "cloudpickle", value_type, ".pkl")
    assert art.libraries is not None and art.libraries["cloudpickle"] == cloudpickle.__version__
    assert store.load("other") == value


def test_plain_pickle_records_only_python_and_cloudpickle(store: ll.ArtifactStore) -> None:
    art = store.save({"a": 1, "b": [2, 3]}, "plain")
    assert art.libraries == {"python": PYTHON, "cloudpickle": cloudpickle.__version__}


def test_pickled_dict_holding_a_frame_records_pandas(store: ll.ArtifactStore) -> None:
    value = {"df": pd.DataFrame({"a": [1, 2]}), "n": 3}
    art = store.save(value, "holder")
    _check_record(art, "cloudpickle", "builtins.dict", ".pkl")
    assert art.libraries is not None and art.libraries["pandas"] == pd.__version__
    back = store.load("holder")
    pdt.assert_frame_equal(back["df"], value["df"])


def test_dict_of_arrays_loads_as_before(store: ll.ArtifactStore) -> None:
    rng = np.random.default_rng(7)
    value = {"x": rng.normal(size=(200, 30)), "y": rng.integers(0, 9, 5000), "tag": "t"}
    art = store.save(value, "bundle")
    assert art.serializer == "cloudpickle" and art.uri.endswith(".pkl")
    back = store.load("bundle")
    assert sorted(back) == sorted(value) and back["tag"] == "t"
    np.testing.assert_array_equal(back["x"], value["x"])
    np.testing.assert_array_equal(back["y"], value["y"])


# -- forced serializers -----------------------------------------------------------------


def test_forced_cloudpickle_pickles_a_frame(store: ll.ArtifactStore) -> None:
    df = PANDAS_FRAMES["categoricals"]
    art = store.save(df, "forced", serializer="cloudpickle")
    _check_record(art, "cloudpickle", "pandas.DataFrame", ".pkl")
    pdt.assert_frame_equal(store.load("forced"), df)
    assert store.save(df, "forced", serializer="auto").serializer == "parquet"


@pytest.mark.parametrize(
    ("value", "forced", "able", "unable"),
    [
        ({"a": 1}, "npy", ["cloudpickle"], ["parquet"]),
        (np.arange(4), "parquet", ["npy", "cloudpickle"], []),
        (np.array([1, "a"], dtype=object), "npy", ["cloudpickle"], ["parquet"]),
    ],
    ids=["dict-as-npy", "array-as-parquet", "object-array-as-npy"],
)
def test_forcing_a_serializer_that_cannot_take_the_value_is_refused(
    store: ll.ArtifactStore,
    storage_dir: Path,
    value: Any,
    forced: str,
    able: list[str],
    unable: list[str],
) -> None:
    with pytest.raises(ll.InvalidArgumentError) as err:
        store.save(value, "refused", serializer=forced)
    message = str(err.value)
    assert forced in message
    for name in able:
        assert name in message, message
    for name in unable:
        assert name not in message, message
    assert not storage_dir.exists() or _files(storage_dir) == []
    assert not store.exists("refused")


def test_unknown_serializer_lists_the_choices(store: ll.ArtifactStore, storage_dir: Path) -> None:
    with pytest.raises(ll.InvalidArgumentError) as err:
        store.save({"a": 1}, "refused", serializer="csv")
    message = str(err.value)
    for name in ("csv", "auto", "parquet", "npy", "cloudpickle"):
        assert name in message, message
    assert not storage_dir.exists() or _files(storage_dir) == []
    assert not store.exists("refused")


# -- imports and the missing extra (child processes) ------------------------------------

PROBE_IMPORTS = """
import json, sys
import numpy as np
import linea_luigi as ll

HEAVY = ("pandas", "polars", "pyarrow")
store = ll.ArtifactStore(sys.argv[1], sys.argv[2])
at_import = [m for m in HEAVY if m in sys.modules]
saved = [store.save({"k": [1, 2]}, "d").serializer, store.save(np.arange(5), "a").serializer]
store.load("d"), store.load("a")
after_small = [m for m in HEAVY if m in sys.modules]
import pandas as pd
framed = store.save(pd.DataFrame({"a": [1]}), "f").serializer
print(json.dumps({"import": at_import, "small": after_small, "saved": saved, "frame": framed,
                  "after_frame": [m for m in HEAVY if m in sys.modules]}))
"""


def _child(tmp_path: Path, source: str, *args: str) -> dict[str, Any]:
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(source))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(REPO)
    out = run_python([str(script), *args], env=env, cwd=tmp_path)
    return dict(json.loads(out.strip().splitlines()[-1]))


def test_detection_does_not_import_frame_libraries(
    tmp_path: Path, sqlite_url: str, storage_dir: Path
) -> None:
    got = _child(tmp_path, PROBE_IMPORTS, sqlite_url, str(storage_dir))
    assert got["import"] == [] and got["small"] == [], got
    assert got["saved"] == ["cloudpickle", "npy"]
    assert got["frame"] == "parquet" and "pyarrow" in got["after_frame"]  # the probe sees imports


NO_PYARROW = """
import importlib.abc, json, logging, sys

class NoArrow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "pyarrow" or name.startswith("pyarrow."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoArrow())

class Keep(logging.Handler):
    lines = []
    def emit(self, record):
        self.lines.append([record.name, record.levelname, record.getMessage()])

logging.getLogger().addHandler(Keep())
logging.getLogger().setLevel(logging.WARNING)
import pandas as pd
import linea_luigi as ll

store = ll.ArtifactStore(sys.argv[1], sys.argv[2])
df = pd.DataFrame({"a": [1, 2, 3], "b": [0.5, 1.5, 2.5]})
arts = [store.save(df, "nf"), store.save(df, "nf")]
logged = list(Keep.lines)
back = store.load("nf")
try:
    store.load("pq")
    failure = None
except Exception as exc:
    failure = [type(exc).__name__, isinstance(exc, ll.SerializationError), str(exc)]
print(json.dumps({
    "records": [[a.serializer, a.value_type, sorted(a.libraries or {})] for a in arts],
    "equal": bool(back.equals(df)), "logged": logged, "failure": failure,
    "arrow_imported": "pyarrow" in sys.modules and sys.modules["pyarrow"] is not None,
}))
"""


def test_without_pyarrow_frames_are_pickled_and_parquet_names_the_extra(
    tmp_path: Path, store: ll.ArtifactStore, sqlite_url: str, storage_dir: Path
) -> None:
    assert store.save(pd.DataFrame({"a": [1]}), "pq").serializer == "parquet"
    got = _child(tmp_path, NO_PYARROW, sqlite_url, str(storage_dir))
    assert not got["arrow_imported"]
    for serializer, value_type, libraries in got["records"]:
        assert (serializer, value_type) == ("cloudpickle", "pandas.DataFrame")
        assert "pyarrow" not in libraries and "pandas" in libraries
    assert got["equal"]
    ours = [line for line in got["logged"] if line[0].startswith("linea_luigi")]
    assert len(ours) == 1, got["logged"]  # once per process, not per save
    assert ours[0][1] == "WARNING" and "arrow" in ours[0][2].lower()
    assert got["failure"] is not None, "a parquet artifact loaded without pyarrow"
    _, is_serialization_error, message = got["failure"]
    assert is_serialization_error and "linea-luigi[arrow]" in message, got["failure"]
    assert "nf" in {a.name for a in store.list()}
    assert sys.modules.get("pyarrow") is not None  # this process was not touched
