"""Database URLs: ``postgres://`` normalisation, parse errors, and a password never shown."""

from __future__ import annotations

import logging
import traceback
from pathlib import Path

import pytest
import sqlalchemy as sa

import linea_luigi as ll
from linea_luigi.settings.urls import mask_text, mask_url, parse_db_url

SECRET = "s3cret"
UNREACHABLE = f"postgresql://user:{SECRET}@127.0.0.1:1/db"


def _everything_printed(exc: BaseException) -> str:
    """The full traceback a user would see, chained causes included."""
    return "".join(traceback.format_exception(exc))


@pytest.mark.parametrize(
    ("raw", "driver"),
    [
        ("postgres://u@h/d", None),
        ("postgres+psycopg2://u@h/d", "psycopg2"),
        ("postgresql://u@h/d", None),
        ("postgresql+psycopg2://u@h:5432/d", "psycopg2"),
    ],
)
def test_postgres_scheme_is_normalised(raw: str, driver: str | None) -> None:
    """Heroku-style ``postgres://`` URLs must work instead of SQLAlchemy's NoSuchModuleError.

    A URL naming no driver must end up with one that is installed (SQLAlchemy 2.1
    would pick psycopg 3, which linea_luigi does not depend on).
    """
    url = parse_db_url(raw)
    assert url.get_backend_name() == "postgresql"
    if driver is not None:
        assert url.get_driver_name() == driver
    url.get_dialect().import_dbapi()  # the driver is importable
    assert (url.username, url.host, url.database) == ("u", "h", "d")


def test_sqlite_urls_are_left_alone() -> None:
    """Normalisation must not touch other backends."""
    raw = "sqlite:////tmp/x.sqlite"
    assert parse_db_url(raw).render_as_string(hide_password=False) == raw


def test_url_objects_are_accepted() -> None:
    """A ready ``sqlalchemy.URL`` is normalised too, password kept for connecting."""
    url = sa.make_url("postgres://u:pw@h/d")
    parsed = parse_db_url(url)
    assert parsed.get_backend_name() == "postgresql"
    assert parsed.password == "pw"


@pytest.mark.parametrize("raw", ["", "   ", "not a url", f"postgresql://u:{SECRET}@host:abc/db"])
def test_unparseable_urls_are_config_errors(raw: str) -> None:
    """A bad URL is a configuration problem, reported without its password."""
    with pytest.raises(ll.ConfigError) as info:
        ll.ArtifactStore(db_url=raw, storage_dir="/tmp/unused")
    assert SECRET not in _everything_printed(info.value)
    assert "sqlite:///" in str(info.value)  # says what a valid URL looks like


def test_non_string_url_is_a_config_error() -> None:
    """A wrong type is a ConfigError, not an AttributeError from deep inside SQLAlchemy."""
    with pytest.raises(ll.ConfigError):
        ll.ArtifactStore(db_url=42, storage_dir="/tmp/unused")


def test_env_and_options_urls_are_normalised(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every configuration source goes through the same normalisation."""
    monkeypatch.setenv("LINEA_LUIGI_DATABASE_URL", "postgres://envuser@dbhost/envdb")
    assert ll.resolve_settings().database_url.get_backend_name() == "postgresql"
    ll.options.set("database_url", "postgres://optuser@dbhost/optdb")
    url = ll.resolve_settings().database_url
    assert (url.get_backend_name(), url.username, url.database) == (
        "postgresql",
        "optuser",
        "optdb",
    )


def test_mask_helpers() -> None:
    """The one masking function every message uses hides the password and nothing else."""
    url = sa.make_url(f"postgresql://user:{SECRET}@h:5432/d")
    assert mask_url(url) == "postgresql://user:***@h:5432/d"
    assert mask_text(f"weird://user:{SECRET}@host/x") == "weird://user:***@host/x"
    assert mask_text("sqlite:////tmp/x.sqlite") == "sqlite:////tmp/x.sqlite"
    assert mask_text("no scheme at all") == "no scheme at all"


def test_password_not_in_reprs(tmp_path: Path) -> None:
    """Reprs end up in logs and tracebacks: they must mask the password but keep the rest."""
    store = ll.ArtifactStore(db_url=UNREACHABLE, storage_dir=str(tmp_path / "a"))
    for text in (repr(store), repr(store.settings), str(store.settings)):
        assert SECRET not in text
        assert "user:***@127.0.0.1:1/db" in text
    # the password is kept for connecting, just never printed
    assert store.settings.database_url.password == SECRET


def test_unreachable_database_error_hides_password(tmp_path: Path) -> None:
    """A connection failure names the (masked) database and says what to check."""
    store = ll.ArtifactStore(db_url=UNREACHABLE, storage_dir=str(tmp_path / "a"))
    with pytest.raises(ll.DatabaseError) as info:
        store.list()
    message = str(info.value)
    assert "user:***@127.0.0.1:1/db" in message
    assert SECRET not in message
    assert SECRET not in _everything_printed(info.value)


def test_unreachable_database_on_save_leaves_no_value(tmp_path: Path) -> None:
    """The value is written before the row; if the row cannot be written the value goes too."""
    storage = tmp_path / "a"
    store = ll.ArtifactStore(db_url=UNREACHABLE, storage_dir=str(storage))
    with pytest.raises(ll.DatabaseError) as info:
        store.save(b"x" * 1000, "name")
    assert SECRET not in _everything_printed(info.value)
    assert [p for p in storage.rglob("*") if p.is_file()] == []


def _with_password(pg_url: str) -> str:
    """The test server trusts local connections, so any password is accepted."""
    return sa.make_url(pg_url).set(password=SECRET).render_as_string(hide_password=False)


def test_postgres_scheme_connects_for_real(pg_url: str, tmp_path: Path) -> None:
    """A Heroku-style ``postgres://`` URL (no driver) really works, not only on paper."""
    url = sa.make_url(pg_url)
    assert url.get_backend_name() == "postgresql"
    legacy = url.set(drivername="postgres").render_as_string(hide_password=False)
    assert legacy.startswith("postgres://")
    store = ll.ArtifactStore(db_url=legacy, storage_dir=str(tmp_path / "a"))
    store.save({"k": 1}, "thing")
    assert store.load("thing") == {"k": 1}
    assert store.settings.database_url.get_backend_name() == "postgresql"


def test_password_not_in_errors_or_logs_on_real_database(
    pg_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Not-found and mismatch messages include the store's URL: always masked."""
    caplog.set_level(logging.DEBUG)
    url = _with_password(pg_url)
    store = ll.ArtifactStore(db_url=url, storage_dir=str(tmp_path / "a"))
    store.save(1, "thing")
    assert store.load("thing") == 1
    errors: list[BaseException] = []
    with pytest.raises(ll.ArtifactNotFoundError) as missing:
        store.get("nothing")
    errors.append(missing.value)
    with pytest.raises(ll.ArtifactNotFoundError) as missing_version:
        store.get("thing", 7)
    errors.append(missing_version.value)
    other = ll.ArtifactStore(db_url=url, storage_dir=str(tmp_path / "b"))
    with pytest.raises(ll.StoreMismatchError) as mismatch:
        other.list()
    errors.append(mismatch.value)
    assert "***" in str(missing.value)
    assert "***" in str(mismatch.value)
    for err in errors:
        assert SECRET not in _everything_printed(err)
    assert caplog.records  # something was logged at DEBUG, and none of it leaks
    assert SECRET not in caplog.text
