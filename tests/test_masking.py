"""Credentials are never printed: planted secrets are searched for on every surface.

Distinct secrets go into a PostgreSQL URL's user-info, its ``?password=`` and
``?sslpassword=``, a storage URL's user-info, its secret-like query keys and
``storage_options``. Reprs, errors with their whole traceback chain, log
records, the CLI's output, the browser's pages and JSON, and linea-luigid's
own log are searched for each one, and must still show the masked URL (so a
surface that printed nothing at all would fail the test, not pass it).

The databases and FTP servers are real loopback ports nobody listens on:
every connection is refused at once.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import fsspec
import pytest
import sqlalchemy as sa
from scheduler_support import LINEA_LUIGID, free_port, get, scheduler_env, scheduler_process

import linea_luigi as ll
from linea_luigi.settings.urls import mask_secrets
from linea_luigi.storage import ValueStorage
from linea_luigi.web import Catalog

DB_USERINFO = "S3cr3tUserInfo"
DB_QUERY = "S3cr3tQueryPw"
DB_SSL = "S3cr3tSslPw"
STORAGE_USERINFO = "S3cr3tStorage"
STORAGE_TOKEN = "S3cr3tToken"
STORAGE_KEY = "S3cr3tAccessKey"
OPTION = "S3cr3tOption"
HISTORY = "S3cr3tHistoryPw"
SECRETS = (DB_USERINFO, DB_QUERY, DB_SSL, STORAGE_USERINFO, STORAGE_TOKEN, STORAGE_KEY, OPTION)


@dataclass(frozen=True)
class Planted:
    """URLs carrying the secrets; ``port`` is a loopback port nobody listens on."""

    port: int

    @property
    def pg_userinfo(self) -> str:
        return f"postgresql://user:{DB_USERINFO}@127.0.0.1:{self.port}/db"

    @property
    def pg_query(self) -> str:
        return (
            f"postgresql://user@127.0.0.1:{self.port}/db"
            f"?password={DB_QUERY}&sslpassword={DB_SSL}&sslmode=prefer"
        )

    @property
    def ftp_userinfo(self) -> str:
        return f"ftp://user:{STORAGE_USERINFO}@127.0.0.1:{self.port}/path"

    @property
    def ftp_query(self) -> str:
        return f"ftp://user@127.0.0.1:{self.port}/path?token={STORAGE_TOKEN}&region=x"


@pytest.fixture
def planted() -> Planted:
    return Planted(free_port())  # bound, then closed: connections are refused


def whole(err: BaseException) -> str:
    """Everything a traceback of ``err`` shows, chained causes included."""
    return "".join(traceback.format_exception(err))


def assert_clean(text: str, *shown: str) -> None:
    """No planted secret in ``text``; each of ``shown`` (the masked form) is there."""
    leaked = [s for s in (*SECRETS, HISTORY) if s in text]
    assert not leaked, f"{leaked} printed in: {text[-3000:]}"
    for part in shown:
        assert part in text, f"{part!r} not in: {text[-3000:]}"


def raised(kind: type[BaseException], action: Callable[[], object]) -> BaseException:
    with pytest.raises(kind) as info:
        action()
    return info.value


# -- the one masking function --------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("postgresql://user:pw1@h:5432/d", "postgresql://user:***@h:5432/d"),
        (
            "postgresql://u@h/d?password=pw2&sslpassword=pw3&sslmode=require",
            "postgresql://u@h/d?password=***&sslpassword=***&sslmode=require",
        ),
        (
            "s3://b/p?aws_secret_access_key=a/b+c&Session_Token=t&region=eu",
            "s3://b/p?aws_secret_access_key=***&Session_Token=***&region=eu",
        ),
        ("abfs://c/p?account_key=k==&x=1", "abfs://c/p?account_key=***&x=1"),
        (
            "https://a.blob.core.windows.net/c?sv=2020&sig=s%2Fg",
            "https://a.blob.core.windows.net/c?sv=2020&sig=***",
        ),
        ("ftp://user:p@ss@127.0.0.1:21/path", "ftp://user:***@127.0.0.1:21/path"),
        (
            "Cannot open 'gcs://u:pw4@bucket/a' (refused); see http://h/?q=1&api_key=k5.",
            "Cannot open 'gcs://u:***@bucket/a' (refused); see http://h/?q=1&api_key=***",
        ),
        ("sqlite:////tmp/x.sqlite", "sqlite:////tmp/x.sqlite"),
        ("s3://bucket/model@v1/x", "s3://bucket/model@v1/x"),
        ("postgresql://h:5432/d?sslmode=require", "postgresql://h:5432/d?sslmode=require"),
        ("a name: token=not-a-url-parameter", "a name: token=not-a-url-parameter"),
        ("no scheme at all", "no scheme at all"),
    ],
)
def test_mask_secrets(raw: str, masked: str) -> None:
    """User-info passwords and secret-looking query values go; everything else stays."""
    assert mask_secrets(raw) == masked
    assert mask_secrets(masked) == masked  # masking twice changes nothing


def test_mask_secrets_takes_sqlalchemy_urls() -> None:
    url = sa.make_url(f"postgresql://u:{DB_USERINFO}@h/d?password={DB_QUERY}&sslpassword={DB_SSL}")
    assert mask_secrets(url) == "postgresql://u:***@h/d?password=***&sslpassword=***"


@pytest.mark.parametrize(
    "text", ["a://b:" * 20_000, "?token=" * 20_000, "x://" + "?key=&" * 20_000 + "@", "@:" * 60_000]
)
def test_mask_secrets_is_linear(text: str) -> None:
    """Messages may hold a user's text (a 10k-character name): masking must stay fast."""
    started = time.monotonic()
    mask_secrets(text)
    assert time.monotonic() - started < 0.5


# -- database URLs, in process --------------------------------------------------------------


@pytest.mark.parametrize("which", ["pg_userinfo", "pg_query"])
def test_database_url_secrets_in_process(
    which: str, planted: Planted, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Reprs, errors (whole chains) and log records of a store on an unreachable database."""
    caplog.set_level(logging.DEBUG)
    url = getattr(planted, which)
    masked = (
        f"user:***@127.0.0.1:{planted.port}/db"
        if which == "pg_userinfo"
        else f"user@127.0.0.1:{planted.port}/db?password=***&sslmode=prefer&sslpassword=***"
    )
    store = ll.ArtifactStore(url, tmp_path / "a")
    assert_clean(repr(store), masked)
    assert_clean(repr(store.settings), masked)
    errors = [
        raised(ll.DatabaseError, lambda: store.save(1, "x")),
        raised(ll.DatabaseError, store.list),
        raised(ll.DatabaseError, lambda: store.get("x")),
        raised(ll.DatabaseError, lambda: Catalog(store.settings.database_url, None).latest()),
    ]
    for err in errors:
        assert_clean(str(err), masked)
        assert_clean(whole(err))
    assert_clean(caplog.text)


# -- storage URLs, in process ---------------------------------------------------------------


def test_storage_url_secrets_in_process(
    sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A working storage whose URL and options hold secrets: reprs, URIs, errors, logs."""
    caplog.set_level(logging.DEBUG)
    root = f"memory://user:{STORAGE_USERINFO}@{tmp_path.name}/p"
    masked = f"user:***@{tmp_path.name}/p"
    store = ll.ArtifactStore(sqlite_url, root, {"secret": OPTION})
    saved = store.save({"k": 1}, "model")
    assert store.load("model") == {"k": 1}
    assert_clean(repr(saved))
    listed = [a.uri for a in store.list()] + [store.get("model").uri]
    listed += [a.uri for a in Catalog(store.settings.database_url, None).latest().items]
    for text in (repr(store), repr(store.settings), saved.uri, *listed):
        assert_clean(text, masked)
    query = f"memory://{tmp_path.name}/q?token={STORAGE_TOKEN}&aws_secret_access_key={STORAGE_KEY}"
    assert_clean(
        ValueStorage(query).uri("m/v.pkl"),
        f"memory:///{tmp_path.name}/q?token=***&aws_secret_access_key=***/m/v.pkl",
    )
    # the value vanishes behind the store's back: the error names the masked location
    fsspec.filesystem("memory").rm_file(
        f"/user:{STORAGE_USERINFO}@{tmp_path.name}/p/{saved.location}"
    )
    missing = raised(ll.StorageError, lambda: store.load("model"))
    # another root on the same database: the refusal names both roots, masked
    other = ll.ArtifactStore(sqlite_url, root.replace("/p", "/q"))
    mismatch = raised(ll.StoreMismatchError, other.list)
    for err in (missing, mismatch):
        assert_clean(str(err), masked)
        assert_clean(whole(err))
    # memory:// keeps the user-info in its paths, and fsspec's own debug lines show them
    assert_clean("".join(r.getMessage() for r in caplog.records if r.name != "fsspec.memoryfs"))


@pytest.mark.parametrize("which", ["ftp_userinfo", "ftp_query"])
def test_refused_storage_connection_is_a_storage_error(
    which: str, planted: Planted, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An FTP server that refuses: StorageError naming the masked URL, what failed, what to do."""
    caplog.set_level(logging.DEBUG)
    root = getattr(planted, which)
    masked = root.replace(STORAGE_USERINFO, "***").replace(STORAGE_TOKEN, "***")
    errors = [
        raised(ll.StorageError, lambda: ValueStorage(root, {"session_token": OPTION})),
        raised(ll.StorageError, lambda: ll.ArtifactStore(sqlite_url, root).save(1, "x")),
    ]
    ll.options.set("database_url", sqlite_url)
    ll.options.set("artifact_storage_dir", root)
    errors.append(raised(ll.StorageError, lambda: ll.save(1, "x")))
    for err in errors:
        message = str(err)
        assert_clean(message, f"Cannot connect to the artifact storage {masked}: ")
        assert_clean(message, "Connection refused", "reachable")
        assert "\n" not in message
        assert_clean(whole(err))
    assert_clean(caplog.text)


# -- the command line -----------------------------------------------------------------------


def _cli(tmp_path: Path, db: str, storage: str, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env.update(
        HOME=str(tmp_path / "home"),
        LUIGI_CONFIG_PATH=str(tmp_path / "empty-luigi.cfg"),
        LINEA_LUIGI_DATABASE_URL=db,
        LINEA_LUIGI_ARTIFACT_STORAGE_DIR=storage,
    )
    return subprocess.Popen(
        [sys.executable, "-m", "linea_luigi", *args],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_cli(planted: Planted, sqlite_url: str, tmp_path: Path) -> None:
    """doctor, list, get and migrate: one masked line, exit 1; doctor runs every check."""
    local = str(tmp_path / "artifacts")
    p = planted
    runs = {
        "doctor-query-db": (p.pg_query, p.ftp_userinfo, "doctor"),
        "doctor-userinfo-db": (p.pg_userinfo, p.ftp_query, "doctor"),
        "list-storage": (sqlite_url, p.ftp_userinfo, "list"),
        "list-db": (p.pg_query, local, "list"),
        "get-db": (p.pg_userinfo, local, "get", "x"),
        "migrate-db": (p.pg_query, local, "migrate"),
    }
    procs = {key: _cli(tmp_path, *run) for key, run in runs.items()}  # in parallel
    out = {}
    for key, proc in procs.items():
        text, _ = proc.communicate(timeout=60)
        assert proc.returncode == 1, f"{key}: {text}"
        assert "unexpected" not in text and "Traceback" not in text, f"{key}: {text}"
        out[key] = text
    db_query = f"127.0.0.1:{p.port}/db?password=***&sslmode=prefer&sslpassword=***"
    db_userinfo = f"user:***@127.0.0.1:{p.port}/db"
    ftp_userinfo = f"ftp://user:***@127.0.0.1:{p.port}/path"
    ftp_query = f"ftp://user@127.0.0.1:{p.port}/path?token=***&region=x"
    unreachable = ("✗ database unreachable", "✗ storage unreachable: Cannot connect", "refused")
    assert_clean(out["doctor-query-db"], db_query, ftp_userinfo, *unreachable)
    assert_clean(out["doctor-userinfo-db"], db_userinfo, ftp_query, *unreachable)
    assert_clean(out["list-storage"], "Error: Cannot connect", ftp_userinfo, "refused")
    assert_clean(out["list-db"], "Error: The artifact database", db_query, "unavailable")
    assert_clean(out["get-db"], "Error: The artifact database", db_userinfo, "unavailable")
    assert_clean(out["migrate-db"], f"database: postgresql+psycopg2://user@{db_query}", "error:")


# -- linea-luigid ---------------------------------------------------------------------------


def test_scheduler_log_and_browser(planted: Planted, pg_url: str, tmp_path: Path) -> None:
    """The history line in linea-luigid's log, and the browser's 503 page and JSON."""
    history = sa.make_url(pg_url).update_query_dict({"password": HISTORY})
    cfg = tmp_path / "luigi.cfg"
    cfg.write_text(
        "[artifact_store]\n"
        f"db_connection = {planted.pg_query.replace('%', '%%')}\n"
        f"artifact_storage_dir = {tmp_path / 'artifacts'}\n"
        "[scheduler]\nrecord_task_history = true\n"
        "[task_history]\n"
        f"db_connection = {history.render_as_string(hide_password=False)}\n"
    )
    env = scheduler_env(tmp_path, cfg)
    masked = "?password=***&sslmode=prefer&sslpassword=***"
    with scheduler_process(LINEA_LUIGID, tmp_path, env) as port:
        status, page = get(port, "/artifacts")
        assert status == 503
        assert_clean(page, masked.replace("&", "&amp;"))
        status, body = get(port, "/api/artifacts")
        assert status == 503
        assert_clean(json.loads(body)["error"], masked)
    logs = "".join(p.read_text() for p in tmp_path.glob("logs-*/*") if p.is_file())
    assert_clean(logs, "Recording task history in DbTaskHistory(", "?password=***", masked)


def test_scheduler_refusing_to_start(planted: Planted, tmp_path: Path) -> None:
    """An unreachable history database stops linea-luigid with one masked line."""
    cfg = tmp_path / "luigi.cfg"
    cfg.write_text(
        "[scheduler]\nrecord_task_history = true\n"
        f"[task_history]\ndb_connection = {planted.pg_query}\n"
    )
    cmd = [*LINEA_LUIGID, "--port", str(free_port()), "--address", "127.0.0.1"]
    cmd += ["--state-path", str(tmp_path / "state.pickle"), "--logdir", str(tmp_path)]
    proc = subprocess.run(
        cmd,
        env=scheduler_env(tmp_path, cfg),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert_clean(output, "linea-luigid: ", "?password=***&sslmode=prefer&sslpassword=***")
