"""Artifacts saved before value types were recorded keep loading after migration 0004.

The old database is made by the old code itself: the package as it was in the
commit before ``0004_value_info`` was added, taken from git into a folder and
run in a child process. It saves pickled values (a dict, an array, a pandas
frame: everything was pickled then), with lineage and an alias, into a database
at ``0003_aliases``. Today's code then upgrades it on first use: the old rows
load as before, with ``value_type`` and ``libraries`` None, which ``show``
(text and ``--json``) and the JSON documents handle; new saves fill both.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

import linea_luigi as ll
from linea_luigi.cli import main
from linea_luigi.db.engine import dispose_all, transaction
from linea_luigi.db.migrations import HEAD, VERSION_TABLE, runner
from linea_luigi.settings.urls import parse_db_url
from linea_luigi.web.documents import artifact_json

REPO = Path(__file__).resolve().parents[1]
MIGRATION = "linea_luigi/db/migrations/versions/0004_value_info.py"
OLD_HEAD = "0003_aliases"

OLD_SAVES = """
import json, sys
import numpy as np
import pandas as pd
import linea_luigi as ll

db_url, storage_dir, old_code = sys.argv[1:4]
assert ll.__file__.startswith(old_code), ll.__file__  # the old package, not today's
store = ll.ArtifactStore(db_url, storage_dir)
config = store.save({"alpha": 0.5, "layers": [64, 32]}, "config")
array = store.save(np.arange(12.0).reshape(3, 4), "array", upstream=[config])
frame = pd.DataFrame({"x": [1, 2, 3], "s": ["a", "b", "c"]})
store.save(frame, "frame", upstream=[array])
store.set_alias("config", 0, "golden")
print(json.dumps([[a.name, a.version, a.serializer] for a in store.list()]))
"""


def _git(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, timeout=60)


def _old_commit() -> str:
    """The last commit whose package stopped at ``0003_aliases``: the one before 0004 was added."""
    added = _git("log", "--format=%H", "--diff-filter=A", "--", MIGRATION)
    if added.returncode != 0:
        pytest.fail(f"git cannot read this repository's history: {added.stderr.decode()}")
    commits = added.stdout.decode().split()
    if commits:
        return f"{commits[-1]}^"
    # 0004 is not committed yet (a working tree being built): HEAD is still the old code
    assert _git("cat-file", "-e", f"HEAD:{MIGRATION}").returncode != 0
    return "HEAD"


@pytest.fixture(scope="session")
def old_code(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package as it was before migration 0004, extracted from git (not checked out)."""
    commit = _old_commit()
    archive = _git("archive", "--format=tar", commit, "linea_luigi")
    assert archive.returncode == 0, archive.stderr.decode()
    folder = tmp_path_factory.mktemp("old-linea-luigi")
    unpacked = subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, timeout=60)
    assert unpacked.returncode == 0
    assert not (folder / MIGRATION).exists()
    return folder


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    if request.param == "sqlite":
        return sqlite_url
    return str(request.getfixturevalue("pg_url"))


def _query(url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sa.text(sql))]
    finally:
        engine.dispose()


def _columns(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return {c["name"] for c in sa.inspect(engine).get_columns("ll_artifacts")}
    finally:
        engine.dispose()


ROWS = "SELECT id, name, version, created_at, location, serializer, digest FROM ll_artifacts"


def _save_with_old_code(old_code: Path, db_url: str, storage_dir: Path, cwd: Path) -> Any:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(old_code)  # before site-packages, where today's package is
    child = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(OLD_SAVES), db_url, str(storage_dir), str(old_code)],
        env=env,
        cwd=cwd,  # not the repository: '' on sys.path must not find today's package
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert child.returncode == 0, child.stderr
    return json.loads(child.stdout.splitlines()[-1])


def test_old_pickles_keep_loading_after_the_upgrade(
    old_code: Path, db_url: str, storage_dir: Path, tmp_path: Path
) -> None:
    saved = _save_with_old_code(old_code, db_url, storage_dir, tmp_path)
    assert sorted(map(tuple, saved)) == [
        ("array", 0, "cloudpickle"),
        ("config", 0, "cloudpickle"),
        ("frame", 0, "cloudpickle"),  # frames were pickled too, then
    ]
    assert _query(db_url, f"SELECT version_num FROM {VERSION_TABLE}") == [(OLD_HEAD,)]
    assert not {"value_type", "libraries"} & _columns(db_url)
    before = _query(db_url, f"{ROWS} ORDER BY id")
    dispose_all()

    store = ll.ArtifactStore(db_url, str(storage_dir))
    assert store.load("config") == {"alpha": 0.5, "layers": [64, 32]}  # upgrades on first use
    assert _query(db_url, f"SELECT version_num FROM {VERSION_TABLE}") == [(HEAD,)]
    assert {"value_type", "libraries"} <= _columns(db_url)
    assert _query(db_url, f"{ROWS} ORDER BY id") == before  # the old rows, untouched
    differences = transaction(
        parse_db_url(db_url), runner.differences, write=False, doing="comparing"
    )
    assert differences == []

    assert np.array_equal(store.load("array"), np.arange(12.0).reshape(3, 4))
    pd.testing.assert_frame_equal(
        store.load("frame"), pd.DataFrame({"x": [1, 2, 3], "s": ["a", "b", "c"]})
    )
    assert store.load("config@golden") == {"alpha": 0.5, "layers": [64, 32]}
    assert [(a.name, a.version) for a in store.upstream("frame", 0)] == [("array", 0)]
    for name in ("config", "array", "frame"):
        old = store.get(name)
        assert (old.serializer, old.value_type, old.libraries) == ("cloudpickle", None, None)
        document = artifact_json(old)
        assert document["value_type"] is None and document["libraries"] is None
        json.dumps(document)  # JSON-able as it is
        assert store.preview(old)["kind"] == "pickle"  # never opened, type known or not


def test_show_handles_rows_without_value_info(
    old_code: Path, db_url: str, storage_dir: Path, tmp_path: Path
) -> None:
    _save_with_old_code(old_code, db_url, storage_dir, tmp_path)
    dispose_all()
    base = ["--db-url", db_url, "--storage-dir", str(storage_dir)]
    text = CliRunner().invoke(main, [*base, "show", "frame"])
    assert text.exit_code == 0, text.output
    lines = {line.split(":", 1)[0]: line for line in text.stdout.splitlines() if ":" in line}
    assert "value type" in lines and "libraries" in lines
    assert "None" not in text.stdout and "{}" not in text.stdout
    assert "cloudpickle" in lines["serializer"]

    as_json = CliRunner().invoke(main, [*base, "show", "array:0", "--json"])
    assert as_json.exit_code == 0, as_json.output
    doc = json.loads(as_json.stdout)
    assert (doc["name"], doc["version"], doc["serializer"]) == ("array", 0, "cloudpickle")
    assert doc["value_type"] is None and doc["libraries"] is None
    assert doc["preview"]["kind"] == "pickle"
    assert doc["upstream"] == [{"name": "config", "version": 0}]


def test_new_saves_record_value_info_beside_old_rows(
    old_code: Path, db_url: str, storage_dir: Path, tmp_path: Path
) -> None:
    _save_with_old_code(old_code, db_url, storage_dir, tmp_path)
    dispose_all()
    store = ll.ArtifactStore(db_url, str(storage_dir))
    pickled = store.save({"alpha": 0.25}, "config", upstream=[store.get("config", 0)])
    frame = store.save(pd.DataFrame({"x": [4, 5]}), "frame")
    array = store.save(np.ones((2, 2)), "array")
    assert [a.version for a in (pickled, frame, array)] == [1, 1, 1]
    dispose_all()

    again = ll.ArtifactStore(db_url, str(storage_dir))  # as read back from the database
    config = again.get("config")
    assert (config.serializer, config.value_type) == ("cloudpickle", "builtins.dict")
    assert config.libraries is not None
    assert set(config.libraries) >= {"python", "cloudpickle"}
    assert config.libraries["python"] == ".".join(map(str, sys.version_info[:3]))
    new_frame = again.get("frame")
    assert (new_frame.serializer, new_frame.value_type) == ("parquet", "pandas.DataFrame")
    assert new_frame.libraries is not None
    assert new_frame.libraries["pandas"] == pd.__version__
    assert {"pyarrow", "python"} <= set(new_frame.libraries)
    new_array = again.get("array")
    assert (new_array.serializer, new_array.value_type) == ("npy", "numpy.ndarray")
    assert new_array.libraries is not None and new_array.libraries["numpy"] == np.__version__
    assert again.get("frame", 0).value_type is None  # the old version beside it is unchanged
    pd.testing.assert_frame_equal(again.load("frame"), pd.DataFrame({"x": [4, 5]}))
    assert again.load("config", 0) == {"alpha": 0.5, "layers": [64, 32]}
    assert [(a.name, a.version) for a in again.upstream("config", 1)] == [("config", 0)]
