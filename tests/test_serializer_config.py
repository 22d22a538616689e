"""Choosing the serializer: per call, per store, by luigi.cfg, by ``ll.options``, per mixin task.

Order, first hit wins: ``save(serializer=...)`` > the task's ``artifact_serializer``
> the store's setting (``ArtifactStore(serializer=...)``, else ``ll.options`` >
luigi.cfg ``[artifact_store] serializer`` > ``"auto"``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import luigi
import pandas as pd
import pytest
from luigi.execution_summary import LuigiStatusCode
from luigi_support import build, use_as_default

import linea_luigi as ll

WriteCfg = Callable[[str], Path]
CHOICES = ("auto", "parquet", "npy", "cloudpickle")


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"a": [1, 2, 3], "s": ["x", "y", "z"]})


def _cfg(tmp_path: Path, serializer: str) -> str:
    return (
        "[artifact_store]\n"
        f"db_connection = sqlite:///{tmp_path / 'cfg.sqlite'}\n"
        f"artifact_storage_dir = {tmp_path / 'cfg-artifacts'}\n"
        f"serializer = {serializer}\n"
    )


def _names_the_choices(message: str, bad: str) -> None:
    assert bad in message, message
    for name in CHOICES:
        assert name in message, message


# -- store settings ---------------------------------------------------------------------


def test_default_is_auto(store: ll.ArtifactStore) -> None:
    assert store.save(_frame(), "f").serializer == "parquet"


def test_luigi_cfg_serializer_makes_frames_pickle(luigi_cfg: WriteCfg, tmp_path: Path) -> None:
    luigi_cfg(_cfg(tmp_path, "cloudpickle"))
    art = ll.artifact_store().save(_frame(), "f")
    assert (art.serializer, art.value_type) == ("cloudpickle", "pandas.DataFrame")
    assert art.uri.endswith(".pkl")
    pd.testing.assert_frame_equal(ll.load("f"), _frame())
    # a per-call choice wins over the configuration
    assert ll.artifact_store().save(_frame(), "f", serializer="parquet").serializer == "parquet"


def test_options_serializer_wins_over_luigi_cfg(luigi_cfg: WriteCfg, tmp_path: Path) -> None:
    luigi_cfg(_cfg(tmp_path, "auto"))
    ll.options.set("serializer", "cloudpickle")
    assert ll.options.get("serializer") == "cloudpickle"
    assert ll.artifact_store().save(_frame(), "f").serializer == "cloudpickle"
    ll.options.set("serializer", None)  # back to luigi.cfg's auto
    assert ll.artifact_store().save(_frame(), "f").serializer == "parquet"

    luigi_cfg(_cfg(tmp_path, "cloudpickle"))
    ll.options.set("serializer", "auto")
    assert ll.artifact_store().save(_frame(), "f").serializer == "parquet"


def test_bad_serializer_in_luigi_cfg_is_a_config_error(luigi_cfg: WriteCfg, tmp_path: Path) -> None:
    luigi_cfg(_cfg(tmp_path, "csv"))
    with pytest.raises(ll.ConfigError) as err:
        ll.resolve_settings()
    _names_the_choices(str(err.value), "csv")


def test_bad_serializer_in_options_is_a_config_error(sqlite_url: str, storage_dir: Path) -> None:
    ll.options.set("database_url", sqlite_url)
    ll.options.set("artifact_storage_dir", str(storage_dir))
    with pytest.raises(ll.ConfigError) as err:
        ll.options.set("serializer", "csv")  # refused here, or when the settings are read
        ll.resolve_settings()
    _names_the_choices(str(err.value), "csv")


def test_store_argument(sqlite_url: str, storage_dir: Path) -> None:
    pickling = ll.ArtifactStore(sqlite_url, str(storage_dir), serializer="cloudpickle")
    assert pickling.save(_frame(), "f").serializer == "cloudpickle"
    assert pickling.save(_frame(), "f", serializer="parquet").serializer == "parquet"
    auto = ll.ArtifactStore(sqlite_url, str(storage_dir), serializer="auto")
    assert auto.save(_frame(), "f").serializer == "parquet"
    assert [a.serializer for a in auto.versions("f")] == ["cloudpickle", "parquet", "parquet"]
    with pytest.raises(ll.ConfigError) as err:
        ll.ArtifactStore(sqlite_url, str(storage_dir), serializer="csv")
    _names_the_choices(str(err.value), "csv")


def test_store_argument_wins_over_options(sqlite_url: str, storage_dir: Path) -> None:
    ll.options.set("serializer", "cloudpickle")
    store = ll.ArtifactStore(sqlite_url, str(storage_dir), serializer="auto")
    assert store.save(_frame(), "f").serializer == "parquet"


# -- the mixin --------------------------------------------------------------------------


class SzPickled(ll.ArtifactTaskMixin, luigi.Task):
    artifact_serializer = "cloudpickle"

    def run(self) -> None:
        self.save(_frame())


class SzDefault(ll.ArtifactTaskMixin, luigi.Task):
    def run(self) -> None:
        self.save(_frame())


class SzPair(ll.ArtifactTaskMixin, luigi.Task):
    artifact_outputs = ("frame", "raw")
    artifact_serializer = {"frame": "parquet", "raw": "cloudpickle"}  # noqa: RUF012

    def run(self) -> None:
        self.save({"frame": _frame(), "raw": _frame()})


class SzBad(ll.ArtifactTaskMixin, luigi.Task):
    artifact_serializer = "csv"

    def run(self) -> None:
        self.save(_frame())


FAILURES: list[BaseException] = []


@SzBad.event_handler(luigi.Event.FAILURE)
def _failed(task: luigi.Task, exception: BaseException) -> None:
    FAILURES.append(exception)


@SzBad.event_handler(luigi.Event.BROKEN_TASK)
def _broken(task: luigi.Task, exception: BaseException) -> None:
    FAILURES.append(exception)


@pytest.fixture
def default(store: ll.ArtifactStore) -> Iterator[ll.ArtifactStore]:
    FAILURES.clear()
    yield use_as_default(store)
    FAILURES.clear()


def test_mixin_task_serializer(default: ll.ArtifactStore) -> None:
    assert build([SzPickled(), SzDefault()])["completed"] == {"SzPickled", "SzDefault"}
    assert default.get("SzPickled").serializer == "cloudpickle"
    assert default.get("SzDefault").serializer == "parquet"
    pd.testing.assert_frame_equal(SzPickled().load_output(), _frame())


def test_mixin_serializer_per_output(default: ll.ArtifactStore) -> None:
    assert build([SzPair()])["completed"] == {"SzPair"}
    frame, raw = default.get("SzPair.frame"), default.get("SzPair.raw")
    assert (frame.serializer, raw.serializer) == ("parquet", "cloudpickle")
    assert frame.uri.endswith(".parquet") and raw.uri.endswith(".pkl")
    values: dict[str, Any] = SzPair().load_output()
    for value in values.values():
        pd.testing.assert_frame_equal(value, _frame())


def test_mixin_bad_serializer_fails_the_task(default: ll.ArtifactStore) -> None:
    result = luigi.build([SzBad()], local_scheduler=True, detailed_summary=True)
    assert result.status != LuigiStatusCode.SUCCESS, result.summary_text
    refused = [e for e in FAILURES if isinstance(e, ll.InvalidArgumentError)]
    assert refused, FAILURES
    assert "csv" in str(refused[0]) and "cloudpickle" in str(refused[0])
    assert not default.exists("SzBad")
