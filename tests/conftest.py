"""Shared fixtures: every test gets an isolated home, environment and luigi.cfg.

Real components only: SQLite files and folders under ``tmp_path``; PostgreSQL on
127.0.0.1:5432 when reachable (in CI a missing PostgreSQL fails the tests that
need it instead of skipping them).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import luigi.configuration
import pytest
import sqlalchemy as sa
from ci_support import unavailable
from fault_support import S3_ENV, fresh_bucket, moto_s3
from luigi.configuration.cfg_parser import LuigiConfigParser

import linea_luigi as ll
from linea_luigi.db.engine import dispose_all

PG_ADMIN_URL = os.environ.get(
    "LINEA_LUIGI_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test sees the developer's home, environment, options or luigi.cfg."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("LINEA_LUIGI_DATABASE_URL", "LINEA_LUIGI_ARTIFACT_STORAGE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("LUIGI_CONFIG_PATH", raising=False)
    empty_cfg = tmp_path / "empty-luigi.cfg"
    empty_cfg.write_text("")
    _point_luigi_at(monkeypatch, empty_cfg)
    ll.options.reset()
    yield
    ll.options.reset()
    LuigiConfigParser._instance = None
    dispose_all()


def _point_luigi_at(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    monkeypatch.setattr(LuigiConfigParser, "_config_paths", [str(path)])
    monkeypatch.setattr(LuigiConfigParser, "_instance", None)
    luigi.configuration.get_config()  # load now, from this file only


@pytest.fixture
def luigi_cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Path]:
    """Write a luigi.cfg and make it the only one Luigi reads (in-process and children)."""

    def write(text: str) -> Path:
        path = tmp_path / "luigi.cfg"
        path.write_text(text)
        monkeypatch.setenv("LUIGI_CONFIG_PATH", str(path))
        _point_luigi_at(monkeypatch, path)
        return path

    return write


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'meta.sqlite'}"


@pytest.fixture
def storage_dir(tmp_path: Path) -> Path:
    return tmp_path / "artifacts"


@pytest.fixture
def store(sqlite_url: str, storage_dir: Path) -> ll.ArtifactStore:
    """A store on a fresh SQLite file and a fresh local folder."""
    return ll.ArtifactStore(db_url=sqlite_url, storage_dir=str(storage_dir))


def _pg_reachable() -> str | None:
    try:
        engine = sa.create_engine(PG_ADMIN_URL)
        with engine.connect():
            pass
        engine.dispose()
        return None
    except Exception as exc:  # any failure means "not reachable"
        return str(exc).splitlines()[0]


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards.

    Skips on a developer machine without PostgreSQL; fails in CI (``CI`` set).
    """
    problem = _pg_reachable()
    if problem is not None:
        unavailable(f"PostgreSQL at {PG_ADMIN_URL} is unreachable: {problem}")
    name = f"ll_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        dispose_all()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    """moto's S3 server on a free loopback port, one per test module."""
    with moto_s3() as url:
        yield url


@pytest.fixture
def bucket(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh bucket on ``endpoint``, with moto's test credentials in the environment."""
    for var, value in S3_ENV.items():
        monkeypatch.setenv(var, value)
    with fresh_bucket(endpoint, "ll-test") as name:
        yield name
