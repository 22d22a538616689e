"""Recorded library versions at load time: major-version warnings and unpickling failures.

The rows are edited in the database, as another process with other libraries
would have written them. Warnings are once per process and (library, version),
so each test records versions no other test uses.
"""

from __future__ import annotations

import importlib
import itertools
import json
import logging
import platform
import sys
import uuid
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest
import sqlalchemy as sa

import linea_luigi as ll

LOGGER = "linea_luigi.values.libraries"
PYTHON = platform.python_version()
_minor = itertools.count(int(uuid.uuid4().int % 10_000) * 100)


def _unique(major: int | str) -> str:
    """A version with this major that no other test of this process records."""
    return f"{major}.{next(_minor)}.0"


def _major(version: str) -> int:
    return int(version.split(".")[0])


def _record(store: ll.ArtifactStore, name: str, libraries: dict[str, str] | None) -> None:
    """Rewrite the recorded libraries of every version of ``name``."""
    engine = sa.create_engine(store.settings.database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text("UPDATE ll_artifacts SET libraries = :libs WHERE name = :name"),
                {"libs": None if libraries is None else json.dumps(libraries), "name": name},
            )
    finally:
        engine.dispose()


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


@pytest.fixture
def caught(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING)
    return caplog


# -- warnings ---------------------------------------------------------------------------


def test_other_major_of_cloudpickle_warns_once_per_version(
    store: ll.ArtifactStore, caught: pytest.LogCaptureFixture
) -> None:
    installed = cloudpickle.__version__
    old, older = _unique(_major(installed) - 2), _unique(_major(installed) - 2)
    store.save({"a": 1}, "p")
    store.save({"b": 2}, "q")
    _record(store, "p", {"python": PYTHON, "cloudpickle": old})
    _record(store, "q", {"python": PYTHON, "cloudpickle": older})
    assert store.get("p").libraries == {"python": PYTHON, "cloudpickle": old}

    assert store.load("p") == {"a": 1} and store.load("p") == {"a": 1}
    again = ll.ArtifactStore(store.settings.database_url, store.settings.storage_dir)
    assert again.load("p") == {"a": 1}  # once per process, not per store
    warned = _warnings(caught)
    assert len(warned) == 1, warned
    assert "cloudpickle" in warned[0] and old in warned[0] and installed in warned[0]

    store.load("q")
    store.load("q")
    warned = _warnings(caught)
    assert len(warned) == 2, warned
    assert older in warned[1] and installed in warned[1]


def test_pickled_frame_from_other_pandas_major_warns(
    store: ll.ArtifactStore, caught: pytest.LogCaptureFixture
) -> None:
    df = pd.DataFrame({"a": [1, 2], "s": ["x", "y"]})
    art = store.save(df, "old-frame", serializer="cloudpickle")
    assert art.libraries is not None
    old = _unique(_major(pd.__version__) - 1)
    _record(store, "old-frame", {**art.libraries, "pandas": old})
    pdt.assert_frame_equal(store.load("old-frame"), df)
    pdt.assert_frame_equal(store.load("old-frame"), df)
    warned = _warnings(caught)
    assert len(warned) == 1, warned
    assert "pandas" in warned[0] and old in warned[0] and pd.__version__ in warned[0]


def test_same_major_does_not_warn(
    store: ll.ArtifactStore, caught: pytest.LogCaptureFixture
) -> None:
    art = store.save({"a": np.arange(3)}, "same")
    assert art.libraries is not None
    _record(
        store,
        "same",
        {
            **art.libraries,
            "cloudpickle": _unique(_major(cloudpickle.__version__)),
            "numpy": _unique(_major(np.__version__)),
        },
    )
    np.testing.assert_array_equal(store.load("same")["a"], np.arange(3))
    assert _warnings(caught) == []


def test_parquet_is_not_warned_about(
    store: ll.ArtifactStore, caught: pytest.LogCaptureFixture
) -> None:
    """A Parquet file does not depend on the pandas that wrote it: nothing to warn about."""
    df = pd.DataFrame({"a": [1.5, 2.5]})
    art = store.save(df, "pq")
    assert art.serializer == "parquet" and art.libraries is not None
    _record(store, "pq", {**art.libraries, "pandas": _unique(_major(pd.__version__) - 1)})
    pdt.assert_frame_equal(store.load("pq"), df)
    assert _warnings(caught) == []


def test_rows_without_the_new_fields_load_quietly(
    store: ll.ArtifactStore, caught: pytest.LogCaptureFixture
) -> None:
    """Rows written before libraries were recorded (NULL) load as before, without warnings."""
    value = {"x": np.linspace(0, 1, 5), "n": 3}
    store.save(value, "older")
    engine = sa.create_engine(store.settings.database_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE ll_artifacts SET libraries = NULL, value_type = NULL"))
    engine.dispose()
    art = store.get("older")
    assert (art.libraries, art.value_type, art.serializer) == (None, None, "cloudpickle")
    back = store.load("older")
    np.testing.assert_array_equal(back["x"], value["x"])
    assert back["n"] == 3 and art.load()["n"] == 3
    assert [r for r in caught.records if r.name.startswith("linea_luigi")] == []


# -- failures name the versions ---------------------------------------------------------


class Fragile:
    """Pickles fine; refuses to be restored."""

    def __init__(self) -> None:
        self.state = 1

    def __setstate__(self, state: Any) -> None:
        raise RuntimeError("Fragile refuses to be restored")


def _gone_module_value(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """An instance of a class whose module is deleted afterwards (see ``_forget``)."""
    name = f"ll_gone_{uuid.uuid4().hex[:10]}"
    folder.mkdir()
    (folder / f"{name}.py").write_text(
        "class Thing:\n    def __init__(self):\n        self.n = 1\n"
    )
    monkeypatch.syspath_prepend(str(folder))
    return importlib.import_module(name).Thing()


def _forget(value: Any) -> None:
    module = type(value).__module__
    path = Path(sys.modules[module].__file__ or "")
    path.unlink()
    del sys.modules[module]
    importlib.invalidate_caches()


@pytest.mark.parametrize("kind", ["missing-module", "setstate-raises"])
def test_unpickle_failure_names_recorded_and_installed_versions(
    store: ll.ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    missing = kind == "missing-module"
    value = _gone_module_value(tmp_path / "mods", monkeypatch) if missing else Fragile()
    art = store.save(value, "fragile")
    assert art.serializer == "cloudpickle"
    if missing:
        _forget(value)
    _record(
        store,
        "fragile",
        {
            "python": PYTHON,
            "cloudpickle": cloudpickle.__version__,
            "pandas": "9.9.9",
            "numpy": "0.1.0",
        },
    )
    with pytest.raises(ll.SerializationError) as err:
        store.load("fragile")
    message = str(err.value)
    assert f"written with pandas 9.9.9; this process has pandas {pd.__version__}" in message
    assert f"written with numpy 0.1.0; this process has numpy {np.__version__}" in message
