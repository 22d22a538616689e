"""``linea-luigid`` end to end: a real scheduler process, real ``luigi`` workers, real databases.

With ``[scheduler] record_task_history = true`` it records into our history on
SQLite, a bare ``postgresql://`` URL and ``postgres://`` (the last two crash
stock ``luigid`` on SQLAlchemy 2.1), and Luigi's own history pages render from
it. Without that setting it schedules like ``luigid``, and its history pages say so.
"""

from __future__ import annotations

import subprocess
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from luigi_support import REPO, run_python, write_module
from scheduler_support import (
    LINEA_LUIGID,
    LUIGID,
    api,
    free_port,
    get,
    history_config,
    scheduler_process,
)
from scheduler_support import scheduler_env as child_env

import linea_luigi as ll
from linea_luigi.settings.urls import parse_db_url

TASKS = """
    import luigi
    import linea_luigi as ll

    class HPart(ll.ArtifactTaskMixin, luigi.Task):
        part = luigi.IntParameter()

        def run(self):
            self.save(self.part * 10)

    class HReport(ll.ArtifactTaskMixin, luigi.Task):
        def requires(self):
            return [HPart(part=p) for p in (1, 2)]

        def run(self):
            self.save(sum(self.load_input()))
"""


def run_pipeline(tmp_path: Path, env: dict[str, str], port: int) -> str:
    write_module(tmp_path, "h_tasks", TASKS)
    args = ["-m", "luigi", "--module", "h_tasks", "HReport", "--scheduler-host", "127.0.0.1"]
    return run_python([*args, "--scheduler-port", str(port), "--workers", "2"], env, tmp_path)


def history_events(url: str) -> dict[str, list[str]]:
    """Event names per task family, straight from the history tables."""
    engine = sa.create_engine(parse_db_url(url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT t.name, e.event_name FROM tasks t "
                    "JOIN task_events e ON e.task_id = t.id ORDER BY e.id"
                )
            ).all()
    finally:
        engine.dispose()
    events: dict[str, list[str]] = {}
    for name, event in rows:
        events.setdefault(name, []).append(event)
    return events


@pytest.fixture(params=["sqlite", "postgresql", "postgres"])
def history_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """SQLite, a bare ``postgresql://`` URL, or a ``postgres://`` URL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.sqlite'}"
    pg = str(request.getfixturevalue("pg_url"))
    return pg.replace("postgresql+psycopg2://", f"{request.param}://", 1)


def test_linea_luigid_records_history_luigi_pages_render(
    history_url: str, tmp_path: Path, luigi_cfg: Callable[[str], Path], storage_dir: Path
) -> None:
    # artifacts fall back to [task_history] db_connection: one database for both
    cfg = luigi_cfg(history_config(history_url, storage_dir))
    env = child_env(tmp_path, cfg)
    with scheduler_process(LINEA_LUIGID, tmp_path, env) as port:
        output = run_pipeline(tmp_path, env, port)
        assert "3 ran successfully" in output, output[-3000:]

        events = history_events(history_url)
        assert sorted(events) == ["HPart", "HReport"]
        for family, names in events.items():
            assert names.count("DONE") == (2 if family == "HPart" else 1), events
            assert {"PENDING", "RUNNING"} <= set(names), events

        status, page = get(port, "/history")
        assert status == 200 and "HReport" in page and "HPart" in page
        status, page = get(port, "/history/by_name/HPart")
        assert status == 200 and page.count("/history/by_id/") == 2
        record_id = _record_id(history_url, "HReport")
        status, page = get(port, f"/history/by_id/{record_id}")
        assert status == 200 and "HReport" in page and "DONE" in page and "RUNNING" in page
        done = api(port, "task_list", status="DONE", upstream_status="")
        assert sorted(v["name"] for v in done.values()) == ["HPart", "HPart", "HReport"]
        report_id = next(t for t, v in done.items() if v["name"] == "HReport")
        status, page = get(port, f"/history/by_task_id/{report_id}")
        assert status == 200 and "HReport" in page
        status, page = get(
            port, "/history/by_params/HPart?data=" + urllib.parse.quote('{"part": "2"}')
        )
        assert status == 200 and page.count("/history/by_id/") == 1
        status, page = get(port, "/tasklist")
        assert status == 200 and "HReport" in page
        status, page = get(port, "/tasklist/HPart")
        assert status == 200 and "DONE" in page

    store = ll.ArtifactStore(parse_db_url(history_url), str(storage_dir))
    assert store.load("HReport") == 30


def _record_id(url: str, family: str) -> int:
    engine = sa.create_engine(parse_db_url(url))
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    sa.text("SELECT id FROM tasks WHERE name = :n"), {"n": family}
                ).scalar_one()
            )
    finally:
        engine.dispose()


def test_without_record_task_history_it_schedules_like_luigid(
    tmp_path: Path, luigi_cfg: Callable[[str], Path]
) -> None:
    answers = {}
    for name, command in (("luigid", LUIGID), ("linea-luigid", LINEA_LUIGID)):
        cfg = luigi_cfg(
            f"[artifact_store]\ndb_connection = sqlite:///{tmp_path / name}.sqlite\n"
            f"artifact_storage_dir = {tmp_path / name}\n"
        )
        env = child_env(tmp_path, cfg)
        with scheduler_process(command, tmp_path, env) as port:
            assert "3 ran successfully" in run_pipeline(tmp_path, env, port)
            done = api(port, "task_list", status="DONE", upstream_status="")
            answers[name] = (
                sorted(v["name"] for v in done.values()),
                get(port, "/history")[0],
                get(port, "/tasklist")[0],
                get(port, "/api/ping?data=" + urllib.parse.quote('{"worker": "w"}'))[0],
            )
    # the scheduling is luigid's; the history pages say history is off (404, tests/test_pages.py)
    # where luigid fails with a 500 from its NopHistory
    assert answers["luigid"] == (["HPart", "HPart", "HReport"], 500, 500, 200)
    assert answers["linea-luigid"] == (["HPart", "HPart", "HReport"], 404, 404, 200)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_stock_luigid_fails_where_linea_luigid_works(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, luigi_cfg: Callable[[str], Path]
) -> None:
    """The bug this replaces: Luigi's own history cannot start on SQLAlchemy 2.1."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    else:
        url = str(request.getfixturevalue("pg_url")).replace("+psycopg2", "", 1)
    cfg = luigi_cfg(
        f"[scheduler]\nrecord_task_history = true\n[task_history]\ndb_connection = {url}\n"
    )
    env = child_env(tmp_path, cfg)
    port = free_port()
    stock = subprocess.run(
        [*LUIGID, "--port", str(port), "--address", "127.0.0.1"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert stock.returncode != 0
    expected = "ObjectNotExecutableError" if backend == "sqlite" else "psycopg"
    assert expected in stock.stdout + stock.stderr
    with scheduler_process(LINEA_LUIGID, tmp_path, env) as port:
        assert get(port, "/history")[0] == 200


def test_linea_luigid_stops_with_one_clear_line_when_history_is_unreachable(
    tmp_path: Path, luigi_cfg: Callable[[str], Path]
) -> None:
    url = f"postgresql://postgres:s3cret@127.0.0.1:{free_port()}/nothing"
    cfg = luigi_cfg(
        f"[scheduler]\nrecord_task_history = true\n[task_history]\ndb_connection = {url}\n"
    )
    proc = subprocess.run(
        [*LINEA_LUIGID, "--port", str(free_port()), "--address", "127.0.0.1"],
        env=child_env(tmp_path, cfg),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("linea-luigid: ") and "postgres:***@127.0.0.1" in last
    assert "s3cret" not in proc.stderr + proc.stdout


def test_the_console_script_is_declared() -> None:
    text = (REPO / "pyproject.toml").read_text()
    assert 'linea-luigid = "linea_luigi.integration.luigid:main"' in text
    from linea_luigi.integration.luigid import main

    assert callable(main)
