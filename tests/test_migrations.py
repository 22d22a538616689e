"""Alembic migrations: the one source of schema truth, on real SQLite and PostgreSQL.

From an empty database, from a database at each earlier revision, from the
databases the code before migrations made (``create_all``, schema version 1,
Luigi's own history tables), with four processes migrating at once, a newer
database refused, and ``python -m linea_luigi migrate``. The models and the
migrations agree: autogenerate finds no difference. An empty database is made
without Alembic (``db.migrations.fresh``), and the result equals what the
revisions make.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

import linea_luigi as ll
import linea_luigi.store.records as store_module
import linea_luigi.store.saving as saving_module
from linea_luigi.db import setup
from linea_luigi.db.engine import dispose_all, get_engine, transaction
from linea_luigi.db.migrations import BASELINE, HEAD, LOCATION, VERSION_TABLE, runner
from linea_luigi.db.schema import ARTIFACTS, metadata
from linea_luigi.settings.urls import parse_db_url

REPO = Path(__file__).resolve().parents[1]
FUTURE = "0099_from_the_future"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        return sqlite_url
    return str(request.getfixturevalue("pg_url"))


def query(url: str, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    """Rows of ``sql``, read on a connection of its own."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sa.text(sql), params)]
    finally:
        engine.dispose()


def execute(url: str, *statements: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))
    finally:
        engine.dispose()


def recorded_revisions(url: str) -> list[str]:
    return [row[0] for row in query(url, f"SELECT version_num FROM {VERSION_TABLE}")]


def table_names(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def differences(url: str) -> list[Any]:
    """What autogenerate would change to make ``url`` match the models."""
    return transaction(parse_db_url(url), runner.differences, write=False, doing="comparing")


def artifact_rows(url: str) -> list[tuple[Any, ...]]:
    return query(url, "SELECT id, name, version, created_at, digest FROM ll_artifacts ORDER BY id")


def insert_of(url: str) -> Any:
    """The store's insert of a new artifact row, limited to the columns ``url`` has now."""
    engine = sa.create_engine(url)
    try:
        present = {c["name"] for c in sa.inspect(engine).get_columns("ll_artifacts")}
    finally:
        engine.dispose()
    columns = {c.name: sa.bindparam(c.name) for c in ARTIFACTS.c if c.name in present - {"id"}}
    return ARTIFACTS.insert().values(columns).returning(ARTIFACTS.c.id)


def pre_migration_ensure_ready(url: sa.URL, storage_root: str, engine: Any = None) -> None:
    """What ``db.setup.ensure_ready`` did before migrations: ``create_all``, then the root.

    ``metadata`` is today's models, which equal revision ``0002_luigi_history``
    (``test_the_models_and_the_migrations_agree``); once a later revision
    changes the models, build this database by upgrading to 0002 and dropping
    the version table instead.
    """
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            metadata.create_all(conn)
            keys = {row[0] for row in conn.execute(sa.text("SELECT key FROM ll_store_info"))}
            if "storage_root" not in keys:
                conn.execute(
                    sa.text(
                        "INSERT INTO ll_store_info (key, value) VALUES "
                        "('storage_root', :root), ('schema_version', '2')"
                    ),
                    {"root": storage_root},
                )
    finally:
        engine.dispose()


# -- the migrations themselves ---------------------------------------------------------------


def imports_alembic(use: str) -> bool:
    """Whether a fresh process running ``use`` (with ``ll`` imported) ends up importing Alembic."""
    code = f"import sys, linea_luigi as ll; {use}; print('alembic' in sys.modules)"
    child = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert child.returncode == 0, child.stderr
    return {"True": True, "False": False}[child.stdout.strip()]


def test_head_is_the_single_newest_revision() -> None:
    """``HEAD`` (read on every first use without importing Alembic) must name the real head."""
    assert runner.script().get_heads() == [HEAD]
    assert runner.revisions()[0] == BASELINE
    assert runner.revisions()[-1] == HEAD


def test_the_models_and_the_migrations_agree(db_url: str) -> None:
    """Autogenerate on a database made by the migrations finds nothing to change."""
    setup.migrate(parse_db_url(db_url))
    assert differences(db_url) == []
    assert recorded_revisions(db_url) == [HEAD]


def test_the_migrations_are_packaged() -> None:
    """Installed (not editable) copies need the migration folders as packages."""
    from setuptools import find_packages

    packages = set(find_packages(str(REPO), include=["linea_luigi*"]))
    assert {"linea_luigi.db.migrations", "linea_luigi.db.migrations.versions"} <= packages
    assert '"db/migrations/script.py.mako"' in (REPO / "pyproject.toml").read_text()


# -- from an empty database -----------------------------------------------------------------


def test_an_empty_database_is_created_on_first_use(db_url: str, storage_dir: Path) -> None:
    store = ll.ArtifactStore(db_url, str(storage_dir))
    assert store.save({"a": 1}, "thing").version == 0
    assert store.load("thing") == {"a": 1}
    assert recorded_revisions(db_url) == [HEAD]
    assert {"ll_artifacts", "ll_lineage", "tasks", "task_events", "task_parameters"} <= (
        table_names(db_url)
    )
    info = dict(query(db_url, "SELECT key, value FROM ll_store_info"))
    assert info["schema_version"] == "2"
    assert info["storage_root"].endswith(str(storage_dir))


def test_task_history_first_use_migrates_without_binding_a_root(
    db_url: str, storage_dir: Path, luigi_cfg: Any
) -> None:
    """A scheduler may reach the database before any store: it gets the whole schema."""
    luigi_cfg(f"[task_history]\ndb_connection = {db_url}\n")
    ll.DbTaskHistory().ensure_schema()
    assert recorded_revisions(db_url) == [HEAD]
    assert query(db_url, "SELECT key FROM ll_store_info") == []
    ll.ArtifactStore(db_url, str(storage_dir)).save(1, "x")  # the first store binds its root
    assert [k for (k,) in query(db_url, "SELECT key FROM ll_store_info ORDER BY key")] == [
        "schema_version",
        "storage_root",
    ]


def test_a_current_database_costs_one_select_and_no_alembic_import(
    db_url: str, storage_dir: Path
) -> None:
    """Every process checks its database once; for a current one that is one statement."""
    ll.ArtifactStore(db_url, str(storage_dir)).save(1, "x")
    [(root,)] = query(db_url, "SELECT value FROM ll_store_info WHERE key = 'storage_root'")
    dispose_all()  # a new process, in effect
    url = parse_db_url(db_url)
    statements: list[str] = []
    sa.event.listen(
        get_engine(url), "before_cursor_execute", lambda *args: statements.append(args[2])
    )
    setup.ensure_ready(url, root)
    assert len(statements) == 1, statements
    assert VERSION_TABLE in statements[0]

    use = f"assert ll.ArtifactStore({db_url!r}, {str(storage_dir)!r}).load('x') == 1"
    assert not imports_alembic(use)


# -- an empty database, made without Alembic (db.migrations.fresh) --------------------------


def schema_of(url: str) -> dict[str, Any]:
    """Everything reflection says about each table, normalised for comparison."""
    engine = sa.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        return {name: _table_of(inspector, name) for name in sorted(inspector.get_table_names())}
    finally:
        engine.dispose()


def _table_of(inspector: Any, name: str) -> dict[str, Any]:
    pk = inspector.get_pk_constraint(name)
    return {
        "columns": [
            # repr, not str: str drops e.g. TIMESTAMP(timezone=True)
            (c["name"], repr(c["type"]), c["nullable"], c.get("default"), c.get("autoincrement"))
            for c in inspector.get_columns(name)
        ],
        "primary_key": (pk["name"], tuple(pk["constrained_columns"])),
        "indexes": sorted(
            (i["name"], tuple(i["column_names"]), bool(i["unique"]))
            for i in inspector.get_indexes(name)
        ),
        "unique": sorted(
            (u["name"], tuple(u["column_names"])) for u in inspector.get_unique_constraints(name)
        ),
        "foreign_keys": sorted(
            (
                f["name"],
                tuple(f["constrained_columns"]),
                f["referred_table"],
                tuple(f["referred_columns"]),
                tuple(sorted(f["options"].items())),
            )
            for f in inspector.get_foreign_keys(name)
        ),
        "checks": sorted((c["name"], c["sqltext"]) for c in inspector.get_check_constraints(name)),
    }


def wipe(url: str) -> None:
    """Drop our tables and the version table, leaving an empty database."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            metadata.drop_all(conn)
            conn.execute(sa.text(f"DROP TABLE {VERSION_TABLE}"))
    finally:
        engine.dispose()


def test_an_empty_database_gets_exactly_the_schema_the_revisions_make(db_url: str) -> None:
    """``create_all`` plus Alembic's version table equals running every revision from scratch."""
    url = parse_db_url(db_url)
    made = setup.migrate(url)  # empty: the path without Alembic
    assert (made.before, made.after, made.adopted) == (None, HEAD, False)
    assert differences(db_url) == []
    fast = schema_of(db_url)
    fast_versions = recorded_revisions(db_url)
    dispose_all()
    wipe(db_url)
    assert table_names(db_url) == set()

    transaction(url, runner.upgrade, write=True, doing="running every revision")
    assert fast == schema_of(db_url)
    assert fast_versions == recorded_revisions(db_url) == [HEAD]
    assert set(fast) == set(metadata.tables) | {VERSION_TABLE}  # Luigi's history tables too
    assert fast[VERSION_TABLE]["primary_key"] == (f"{VERSION_TABLE}_pkc", ("version_num",))


def test_an_empty_database_made_without_alembic_upgrades_when_head_moves(
    db_url: str, tmp_path: Path
) -> None:
    """Alembic reads the stamp: nothing to do at HEAD, and a later revision runs alone."""
    url = parse_db_url(db_url)
    setup.migrate(url)
    tables = table_names(db_url)
    transaction(url, runner.upgrade, write=True, doing="upgrading")  # HEAD is HEAD: a no-op
    assert transaction(url, runner.current, write=False, doing="reading") == (HEAD,)
    assert table_names(db_url) == tables

    moved = tmp_path / "migrations"  # our scripts plus one newer revision
    shutil.copytree(LOCATION, moved, ignore=shutil.ignore_patterns("__pycache__"))
    (moved / "versions" / "0099_head_moved.py").write_text(
        "import sqlalchemy as sa\nfrom alembic import op\n\n"
        f"revision = '0099_head_moved'\ndown_revision = {HEAD!r}\n"
        "branch_labels = None\ndepends_on = None\n\n\n"
        "def upgrade() -> None:\n"
        "    op.create_table('ll_head_moved', sa.Column('id', sa.Integer(), primary_key=True))\n"
    )

    def upgrade_moved(conn: sa.Connection) -> None:
        config = runner.alembic_config(conn)
        config.set_main_option("script_location", str(moved))
        command.upgrade(config, "head")

    transaction(url, upgrade_moved, write=True, doing="upgrading to the moved head")
    assert recorded_revisions(db_url) == ["0099_head_moved"]
    assert table_names(db_url) == tables | {"ll_head_moved"}


@pytest.mark.parametrize("found", ["empty", "migrated, no root bound"])
def test_first_use_of_an_empty_database_does_not_import_alembic(
    db_url: str, storage_dir: Path, found: str
) -> None:
    """Nor does binding the first root to a database at HEAD (the scheduler migrated it)."""
    # another application's table: the database is still empty of ours
    execute(db_url, "CREATE TABLE their_things (id INTEGER PRIMARY KEY)")
    if found != "empty":
        setup.migrate(parse_db_url(db_url))
        dispose_all()
    assert not imports_alembic(
        f"assert not ll.ArtifactStore({db_url!r}, {str(storage_dir)!r}).exists('x')"
    )
    assert recorded_revisions(db_url) == [HEAD]
    assert differences(db_url) == []
    assert "their_things" in table_names(db_url)
    [(root,)] = query(db_url, "SELECT value FROM ll_store_info WHERE key = 'storage_root'")
    assert root.endswith(str(storage_dir))


# -- from a database at each earlier revision ----------------------------------------------


@pytest.mark.parametrize("revision", [r for r in runner.revisions() if r != HEAD])
def test_a_database_at_an_earlier_revision_is_upgraded(
    db_url: str, storage_dir: Path, monkeypatch: pytest.MonkeyPatch, revision: str
) -> None:
    url = parse_db_url(db_url)
    transaction(url, lambda conn: runner.upgrade(conn, revision), write=True, doing="upgrading")
    assert recorded_revisions(db_url) == [revision]
    # data written while the database was at ``revision`` (every revision has the ll_ tables),
    # in the columns it had
    monkeypatch.setattr(store_module, "ensure_ready", lambda url, root, engine=None: None)
    monkeypatch.setattr(saving_module, "INSERT_ARTIFACT", insert_of(db_url))
    saved = ll.ArtifactStore(db_url, str(storage_dir)).save({"kept": True}, "thing")
    before = artifact_rows(db_url)
    monkeypatch.setattr(store_module, "ensure_ready", setup.ensure_ready)
    dispose_all()

    store = ll.ArtifactStore(db_url, str(storage_dir))
    assert store.load("thing") == {"kept": True}
    assert store.get("thing").created_at == saved.created_at
    assert artifact_rows(db_url) == before
    assert recorded_revisions(db_url) == [HEAD]
    assert store.save("next", "thing").version == 1
    assert differences(db_url) == []


# -- from the databases made before migrations ----------------------------------------------


@pytest.mark.parametrize("how", ["store", "cli"])
def test_a_create_all_database_is_adopted_not_recreated(
    db_url: str, storage_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, how: str
) -> None:
    """The code before migrations made the schema with ``create_all``: stamp it, keep it."""
    monkeypatch.setattr(store_module, "ensure_ready", pre_migration_ensure_ready)
    old = ll.ArtifactStore(db_url, str(storage_dir))
    old.save({"first": 1}, "thing")
    old.save([1, 2, 3], "thing")
    old.save("other", "other")
    ts = datetime(2024, 1, 2, 3, 4, 5)
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:  # a run in the task history, as the scheduler recorded it
        conn.execute(sa.text("INSERT INTO tasks (id, task_id, name) VALUES (7, 'T_1', 'T')"))
        conn.execute(
            sa.text(
                "INSERT INTO task_events (id, task_id, event_name, ts) VALUES (3, 7, 'DONE', :t)"
            ),
            {"t": ts},
        )
    engine.dispose()
    before = artifact_rows(db_url)
    oids = _table_oids(db_url)
    assert VERSION_TABLE not in table_names(db_url)
    monkeypatch.setattr(store_module, "ensure_ready", setup.ensure_ready)
    dispose_all()

    if how == "cli":
        result = _cli(tmp_path, "migrate", "--db", db_url)
        assert result.returncode == 0, result.stderr
        assert "adopted" in result.stdout
    store = ll.ArtifactStore(db_url, str(storage_dir))
    assert store.load("thing", 0) == {"first": 1}
    assert store.load("thing") == [1, 2, 3]
    assert store.load("other") == "other"
    assert artifact_rows(db_url) == before  # same ids, times and digests: nothing recreated
    assert _table_oids(db_url) == oids
    assert query(db_url, "SELECT id, task_id, name FROM tasks") == [(7, "T_1", "T")]
    assert query(db_url, "SELECT id, event_name FROM task_events") == [(3, "DONE")]
    assert recorded_revisions(db_url) == [HEAD]
    assert store.save("next", "thing").version == 2
    assert differences(db_url) == []


def _table_oids(url: str) -> dict[str, Any]:
    """PostgreSQL's identity of each table (a recreated table gets a new one); {} on SQLite."""
    if not url.startswith("postgresql"):
        return {}
    return dict(
        query(
            url,
            "SELECT relname, oid FROM pg_class WHERE relkind = 'r' AND relname IN "
            "('ll_artifacts', 'll_lineage', 'll_version_counters', 'll_store_info', 'tasks')",
        )
    )


def test_a_schema_version_1_database_is_adopted(
    db_url: str, storage_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Version 1 stored a bare sha256 hex in ``sha256``: it becomes ``digest``, in place."""
    monkeypatch.setattr(store_module, "ensure_ready", pre_migration_ensure_ready)
    old = ll.ArtifactStore(db_url, str(storage_dir), checksum="sha256")
    old.save({"kept": True}, "thing")
    [(ident, digest)] = query(db_url, "SELECT id, digest FROM ll_artifacts")
    statements = [
        "ALTER TABLE ll_artifacts RENAME COLUMN digest TO sha256",
        "UPDATE ll_artifacts SET sha256 = substr(sha256, 8)",
        "UPDATE ll_store_info SET value = '1' WHERE key = 'schema_version'",
    ]
    if db_url.startswith("postgresql"):
        statements.append("ALTER TABLE ll_artifacts ALTER COLUMN sha256 TYPE VARCHAR(64)")
    execute(db_url, *statements)
    monkeypatch.setattr(store_module, "ensure_ready", setup.ensure_ready)
    dispose_all()

    store = ll.ArtifactStore(db_url, str(storage_dir))
    assert store.load("thing") == {"kept": True}
    assert query(db_url, "SELECT id, digest FROM ll_artifacts") == [(ident, digest)]
    assert digest.startswith("sha256:")
    assert query(db_url, "SELECT value FROM ll_store_info WHERE key = 'schema_version'") == [("2",)]
    assert recorded_revisions(db_url) == [HEAD]
    assert differences(db_url) == []


@pytest.mark.filterwarnings("ignore::sqlalchemy.exc.MovedIn20Warning")
def test_a_luigi_history_database_is_adopted(db_url: str, storage_dir: Path) -> None:
    """Tables Luigi's own ``DbTaskHistory`` made keep their rows; the ll_ tables join them."""
    import luigi.db_task_history as luigi_history

    engine = sa.create_engine(db_url)
    luigi_history.Base.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO tasks (id, task_id, name, host) VALUES (1, 'D_1', 'D', 'h')")
        )
        conn.execute(
            sa.text("INSERT INTO task_parameters (task_id, name, value) VALUES (1, 'p', 'v')")
        )
        conn.execute(
            sa.text(
                "INSERT INTO task_events (id, task_id, event_name, ts) VALUES (1, 1, 'DONE', :t)"
            ),
            {"t": datetime(2024, 1, 2, 3, 4, 5)},
        )
    engine.dispose()

    store = ll.ArtifactStore(db_url, str(storage_dir))
    store.save(1, "x")
    assert store.load("x") == 1
    assert query(db_url, "SELECT id, task_id, name, host FROM tasks") == [(1, "D_1", "D", "h")]
    assert query(db_url, "SELECT task_id, name, value FROM task_parameters") == [(1, "p", "v")]
    assert query(db_url, "SELECT id, event_name FROM task_events") == [(1, "DONE")]
    assert recorded_revisions(db_url) == [HEAD]
    assert differences(db_url) == []


def test_a_database_shared_with_another_alembic_user(db_url: str, storage_dir: Path) -> None:
    """Another application's ``alembic_version`` and tables are neither read nor touched."""
    execute(
        db_url,
        "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)",
        "INSERT INTO alembic_version (version_num) VALUES ('their_head')",
        "CREATE TABLE their_things (id INTEGER PRIMARY KEY)",
    )
    ll.ArtifactStore(db_url, str(storage_dir)).save(1, "x")
    assert recorded_revisions(db_url) == [HEAD]
    assert query(db_url, "SELECT version_num FROM alembic_version") == [("their_head",)]
    assert "their_things" in table_names(db_url)
    assert differences(db_url) == []


# -- several processes at once --------------------------------------------------------------


def _migrate_in_child(url: str, root: str, barrier: Any, results: Any) -> None:
    barrier.wait()
    results.put(setup.migrate(parse_db_url(url)).before)


def _first_use_in_child(url: str, root: str, barrier: Any, results: Any) -> None:
    barrier.wait()
    results.put(ll.ArtifactStore(url, root).save(os.getpid(), "x").version)


@pytest.mark.parametrize("entry", ["migrate", "first_use"])
def test_four_processes_migrate_an_empty_database_at_once(
    db_url: str, storage_dir: Path, entry: str
) -> None:
    """All succeed, the schema is made once, and whoever waited found it done."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    results = ctx.Queue()
    target = _migrate_in_child if entry == "migrate" else _first_use_in_child
    procs = [
        ctx.Process(target=target, args=(db_url, str(storage_dir), barrier, results))
        for _ in range(4)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    found = [results.get(timeout=5) for _ in procs]
    if entry == "migrate":
        assert sorted(found, key=str) == [HEAD, HEAD, HEAD, None]  # exactly one made it
    else:
        assert sorted(found) == [0, 1, 2, 3]
        assert len(query(db_url, "SELECT value FROM ll_store_info WHERE key = 'storage_root'")) == 1
    assert recorded_revisions(db_url) == [HEAD]
    assert differences(db_url) == []


# -- a newer database -----------------------------------------------------------------------


def test_a_newer_database_is_refused_and_left_alone(db_url: str, storage_dir: Path) -> None:
    url = db_url
    if url.startswith("postgresql"):  # trust auth ignores it; it must never be printed
        url = sa.make_url(url).set(password="s3cret").render_as_string(hide_password=False)
    ll.ArtifactStore(url, str(storage_dir)).save(1, "x")
    execute(db_url, f"UPDATE {VERSION_TABLE} SET version_num = '{FUTURE}'")
    dispose_all()

    with pytest.raises(ll.SchemaTooNewError) as err:
        ll.ArtifactStore(url, str(storage_dir)).load("x")
    message = str(err.value)
    assert FUTURE in message and HEAD in message
    assert "newer linea_luigi" in message and "Upgrade linea_luigi" in message
    assert "s3cret" not in message
    assert sa.make_url(url).render_as_string(hide_password=True) in message
    assert isinstance(err.value, ll.StoreMismatchError)  # as the schema_version check was
    with pytest.raises(ll.SchemaTooNewError):
        setup.ensure_schema(parse_db_url(url))  # the task history's way in
    assert recorded_revisions(db_url) == [FUTURE]


# -- python -m linea_luigi migrate -----------------------------------------------------------


def _cli(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "linea_luigi", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,  # no stray luigi.cfg
        env={**os.environ, **env},
    )


def test_cli_migrate(db_url: str, tmp_path: Path) -> None:
    url = db_url
    if url.startswith("postgresql"):
        url = sa.make_url(url).set(password="s3cret").render_as_string(hide_password=False)
    first = _cli(tmp_path, "migrate", "--db", url)
    assert first.returncode == 0, first.stderr
    assert "before:   (no schema)" in first.stdout
    assert f"after:    {HEAD}" in first.stdout
    assert "s3cret" not in first.stdout
    assert recorded_revisions(db_url) == [HEAD]
    assert query(db_url, "SELECT key FROM ll_store_info") == []  # no root bound by migrate

    again = _cli(tmp_path, "migrate", "--db", url)
    assert again.returncode == 0, again.stderr
    assert f"before:   {HEAD}" in again.stdout
    assert "already up to date" in again.stdout

    execute(db_url, f"UPDATE {VERSION_TABLE} SET version_num = '{FUTURE}'")
    refused = _cli(tmp_path, "migrate", "--db", url)
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: ") and refused.stderr.count("\n") == 1
    assert "newer linea_luigi" in refused.stderr
    assert "Traceback" not in refused.stderr and "s3cret" not in refused.stderr


def test_cli_migrate_defaults_to_the_configured_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'configured.sqlite'}"
    result = _cli(tmp_path, "migrate", LINEA_LUIGI_DATABASE_URL=url)
    assert result.returncode == 0, result.stderr
    assert f"database: {url}" in result.stdout
    assert recorded_revisions(url) == [HEAD]


def test_cli_migrate_reports_a_bad_url_in_one_line(tmp_path: Path) -> None:
    result = _cli(tmp_path, "migrate", "--db", "not a url")
    assert result.returncode == 1
    assert result.stderr.startswith("error: Cannot parse database URL")
    assert result.stderr.count("\n") == 1
