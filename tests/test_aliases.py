"""Aliases (``name@alias``) on SQLite and PostgreSQL: set, move, read, remove, protect."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

import linea_luigi as ll
from linea_luigi.db import setup
from linea_luigi.db.engine import dispose_all, transaction
from linea_luigi.db.migrations import runner
from linea_luigi.settings.urls import parse_db_url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    if request.param == "sqlite":
        return sqlite_url
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def astore(db_url: str, storage_dir: Path) -> ll.ArtifactStore:
    s = ll.ArtifactStore(db_url, str(storage_dir))
    for i in range(3):
        s.save({"v": i}, "model")
    return s


def test_set_get_load_and_move(astore: ll.ArtifactStore) -> None:
    assert astore.set_alias("model", 1, "production").version == 1
    assert astore.get("model@production").version == 1
    assert astore.load("model@production") == {"v": 1}
    assert astore.set_alias("model", "latest", "staging").version == 2
    assert astore.aliases("model") == {"production": 1, "staging": 2}
    astore.set_alias("model", 2, "production")  # a move, not a second row
    assert astore.load("model@production") == {"v": 2}
    assert astore.aliases("model") == {"production": 2, "staging": 2}
    assert astore.remove_alias("model", "staging") == 2
    assert astore.aliases("model") == {"production": 2}


def test_default_store_reads_aliases(db_url: str, storage_dir: Path) -> None:
    ll.options.set("database_url", db_url)
    ll.options.set("artifact_storage_dir", str(storage_dir))
    ll.save("a", "m")
    ll.save("b", "m")
    ll.artifact_store().set_alias("m", 0, "prod")
    assert ll.get("m@prod").version == 0
    assert ll.load("m@prod") == "a"


def test_refusals(astore: ll.ArtifactStore) -> None:
    with pytest.raises(ll.ArtifactNotFoundError, match="no version 7"):
        astore.set_alias("model", 7, "production")
    with pytest.raises(ll.ArtifactNotFoundError, match="No artifact named 'nope'"):
        astore.set_alias("nope", 0, "production")
    assert astore.aliases("model") == {}
    astore.set_alias("model", 0, "production")
    with pytest.raises(ll.ArtifactNotFoundError, match="Did you mean 'production'"):
        astore.get("model@prodution")
    with pytest.raises(ll.ArtifactNotFoundError, match="no alias 'x'"):
        astore.remove_alias("model", "x")
    with pytest.raises(ll.InvalidArgumentError, match="pass no version"):
        astore.get("model@production", 1)
    for bad in ["", "a@b", "a:b", "a b", "tab\t", "12", "latest", 5]:
        with pytest.raises(ll.InvalidArgumentError):
            astore.set_alias("model", 0, bad)  # type: ignore[arg-type]


def test_deleting_an_aliased_version_is_refused(astore: ll.ArtifactStore) -> None:
    astore.set_alias("model", 1, "production")
    with pytest.raises(ll.ArtifactInUseError, match=r"model@production -> v1") as err:
        astore.delete("model", 1)
    assert "remove_alias('model', 'production')" in str(err.value)
    with pytest.raises(ll.ArtifactInUseError):
        astore.delete("model", "all")
    assert [a.version for a in astore.versions("model")] == [0, 1, 2]
    assert astore.delete("model", 0) == 1  # unaliased versions still go
    astore.set_alias("model", 2, "production")
    assert astore.delete("model", 1) == 1
    assert astore.load("model@production") == {"v": 2}


def test_a_name_containing_at_still_works(db_url: str, storage_dir: Path) -> None:
    s = ll.ArtifactStore(db_url, str(storage_dir))
    s.save("mail", "user@example")
    assert s.load("user@example") == "mail"
    s.save("plain", "user")
    s.set_alias("user", 0, "example")
    assert s.load("user@example") == "plain"  # the alias wins over the literal name


def test_concurrent_moves_leave_one_alias(astore: ll.ArtifactStore) -> None:
    errors: list[BaseException] = []

    def mover(version: int) -> None:
        try:
            for _ in range(10):
                astore.set_alias("model", version, "production")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=mover, args=(v,)) for v in (0, 1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert list(astore.aliases("model")) == ["production"]


def test_upgrade_from_0002_keeps_data_and_adds_aliases(db_url: str, storage_dir: Path) -> None:
    url = parse_db_url(db_url)
    transaction(
        url, lambda c: runner.upgrade(c, "0002_luigi_history"), write=True, doing="upgrading"
    )
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        assert not sa.inspect(conn).has_table("ll_aliases")
    engine.dispose()
    setup.migrate(url)
    dispose_all()
    s = ll.ArtifactStore(db_url, str(storage_dir))
    s.save(1, "x")
    s.set_alias("x", 0, "prod")
    assert s.load("x@prod") == 1


def test_cli_tag_and_untag(sqlite_url: str, storage_dir: Path) -> None:
    from click.testing import CliRunner

    from linea_luigi.cli import main

    s = ll.ArtifactStore(sqlite_url, str(storage_dir))
    s.save("a", "model")
    s.save("b", "model")
    base = ["--db-url", sqlite_url, "--storage-dir", str(storage_dir)]
    tagged = CliRunner().invoke(main, [*base, "tag", "model:0", "production"])
    assert tagged.exit_code == 0, tagged.output
    assert tagged.stdout.strip() == "model@production -> version 0"
    assert s.load("model@production") == "a"
    got = CliRunner().invoke(main, [*base, "get", "model@production"])
    assert got.exit_code == 0 and "'a'" in got.stdout
    assert CliRunner().invoke(main, [*base, "tag", "model", "production"]).exit_code == 0
    assert s.aliases("model") == {"production": 1}
    refused = CliRunner().invoke(main, [*base, "delete", "model", "--version", "1", "--yes"])
    assert refused.exit_code == 1 and "`linea-luigi untag model production`" in refused.stderr
    untagged = CliRunner().invoke(main, [*base, "untag", "model", "production"])
    assert untagged.stdout.strip() == "removed model@production (was version 1)"
    missing = CliRunner().invoke(main, [*base, "tag", "model:9", "production"])
    assert missing.exit_code == 1 and "no version 9" in missing.stderr
