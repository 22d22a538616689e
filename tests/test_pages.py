"""What ``linea-luigid`` serves, as a monitoring probe and an offline browser see it.

Real schedulers on free loopback ports, real HTTP. ``HEAD`` answers like
``GET`` without a body, on our pages and Luigi's; with task history off the
history pages answer a 404 that says how to turn it on; no page refers to a
host other than the scheduler (Luigi's history layout loads d3 and nvd3 from a
CDN, and a stylesheet of its visualiser imports Google Fonts); start-up logs
no Alembic plugin lines when the schema is migrated.
"""

from __future__ import annotations

import http.client
import re
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest
from luigi_support import run_python, stop_process, write_module
from scheduler_support import (
    LINEA_LUIGID,
    free_port,
    get,
    history_config,
    scheduler_env,
    scheduler_process,
)

import linea_luigi as ll
from linea_luigi.db.engine import transaction
from linea_luigi.db.migrations import runner
from linea_luigi.settings.urls import parse_db_url

TASKS = """
    import luigi
    import linea_luigi as ll

    class PLeaf(ll.ArtifactTaskMixin, luigi.Task):
        def run(self):
            self.save([1, 2, 3])

    class PReport(ll.ArtifactTaskMixin, luigi.Task):
        def requires(self):
            return PLeaf()

        def run(self):
            self.save(sum(self.load_input()))
"""

HISTORY_PAGES = (
    "/history",
    "/history/by_name/PReport",
    "/history/by_id/1",
    "/history/by_params/PLeaf?data=%7B%7D",
    "/tasklist",
    "/tasklist/PReport",
)
ARTIFACT_PAGES = (
    "/artifacts",
    "/artifacts/PReport",
    "/artifacts/PReport/0",
    "/api/artifacts",
    "/api/artifacts/PReport",
    "/api/artifacts/PReport/0",
)


@dataclass(frozen=True)
class Scheduler:
    port: int
    logs: Path

    def head(self, path: str) -> http.client.HTTPResponse:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        conn.request("HEAD", path)
        return conn.getresponse()

    def full_get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()

    def log_text(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.logs.iterdir()))


def start(tmp_path: Path, cfg_text: str, *, pipeline: bool) -> Iterator[Scheduler]:
    """``linea-luigid`` with ``cfg_text`` as its luigi.cfg; ``pipeline``: run PReport through it."""
    cfg = tmp_path / "luigi.cfg"
    cfg.write_text(cfg_text)
    env = scheduler_env(tmp_path, cfg)
    with scheduler_process(LINEA_LUIGID, tmp_path, env) as port:
        if pipeline:
            write_module(tmp_path, "p_tasks", TASKS)
            args = ["-m", "luigi", "--module", "p_tasks", "PReport", "--scheduler-host"]
            out = run_python([*args, "127.0.0.1", "--scheduler-port", str(port)], env, tmp_path)
            assert "2 ran successfully" in out, out[-3000:]
        yield Scheduler(port, tmp_path / f"logs-{port}")


@pytest.fixture(scope="module")
def with_history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scheduler]:
    tmp = tmp_path_factory.mktemp("pages-history")
    yield from start(
        tmp,
        "[scheduler]\nrecord_task_history = true\n"
        f"[artifact_store]\ndb_connection = sqlite:///{tmp / 'db.sqlite'}\n"
        f"artifact_storage_dir = {tmp / 'artifacts'}\n",
        pipeline=True,
    )


@pytest.fixture(scope="module")
def without_history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scheduler]:
    tmp = tmp_path_factory.mktemp("pages-no-history")
    yield from start(
        tmp,
        f"[artifact_store]\ndb_connection = sqlite:///{tmp / 'db.sqlite'}\n"
        f"artifact_storage_dir = {tmp / 'artifacts'}\n",
        pipeline=True,
    )


# -- HEAD ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        *ARTIFACT_PAGES,
        "/artifacts/no-such-name",  # an error page: the same 404
        *HISTORY_PAGES,
        "/api/task_list?data=%7B%7D",
        "/static/visualiser/index.html",
        "/static/visualiser/lib/AdminLTE/css/AdminLTE.min.css",
    ],
)
def test_head_answers_like_get_without_a_body(with_history: Scheduler, path: str) -> None:
    status, headers, body = with_history.full_get(path)
    assert status in (200, 404), (path, status, body[:300])
    assert body
    head = with_history.head(path)
    assert head.read() == b""
    assert head.status == status, path
    got = dict(head.getheaders())
    for name in ("Content-Type", "Content-Length", "Content-Security-Policy", "Etag"):
        assert got.get(name) == headers.get(name), (path, name)
    assert int(got["Content-Length"]) == len(body)


def test_head_answers_the_pages_of_a_scheduler_without_history(
    without_history: Scheduler,
) -> None:
    for path in ("/artifacts", "/api/artifacts", "/history", "/tasklist/PReport"):
        status, _, body = without_history.full_get(path)
        head = without_history.head(path)
        assert (head.status, head.read()) == (status, b""), path
        assert int(head.getheader("Content-Length", "0")) == len(body)


# -- task history off ------------------------------------------------------------------------


@pytest.mark.parametrize("path", HISTORY_PAGES)
def test_history_off_answers_a_404_that_says_how_to_turn_it_on(
    without_history: Scheduler, path: str
) -> None:
    status, page = get(without_history.port, path)
    assert status == 404, page[:500]
    assert 'id="ll-history-off"' in page
    assert "Task history is off" in page
    assert "record_task_history = true" in page and "[task_history]" in page
    assert "db_connection" in page
    assert "Traceback" not in page and "AttributeError" not in page
    assert 'href="/history"' not in page  # no link to what is not there


def test_history_off_leaves_the_rest_working(without_history: Scheduler) -> None:
    status, page = get(without_history.port, "/artifacts")
    assert status == 200 and "PReport" in page
    assert get(without_history.port, "/static/visualiser/index.html")[0] == 200
    assert "Traceback" not in without_history.log_text()


# -- nothing from other hosts ----------------------------------------------------------------


class References(HTMLParser):
    """The URLs a browser fetches to render the page: scripts, stylesheets, images, icons."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag in ("script", "img", "iframe", "source") and found.get("src"):
            self.urls.append(str(found["src"]))
        if tag == "link" and found.get("href"):
            self.urls.append(str(found["href"]))


CSS_URL = re.compile(r"""@import\s+(?:url\()?\s*['"]?([^'")\s;]+)|url\(\s*['"]?([^'")]+)""")


def foreign(url: str) -> bool:
    """Whether ``url`` names a host (``http://x``, ``//x``), i.e. not this scheduler's path."""
    parts = urllib.parse.urlsplit(url.strip())
    return bool(parts.netloc) or parts.scheme not in ("", "data")


def fetched_by(page_path: str, html: str) -> list[str]:
    parser = References()
    parser.feed(html)
    return [urllib.parse.urljoin(page_path, u) for u in parser.urls]


def test_no_page_refers_to_another_host(with_history: Scheduler) -> None:
    """Every page we serve, and every stylesheet they load, name only the scheduler's paths."""
    pages = ["/static/visualiser/index.html", *HISTORY_PAGES, *ARTIFACT_PAGES[:3]]
    stylesheets: set[str] = set()
    for path in pages:
        status, html = get(with_history.port, path)
        assert status == 200, (path, html[:300])
        refs = fetched_by(path, html)
        assert refs or path.startswith("/artifacts"), path  # Luigi's pages load assets
        assert [u for u in refs if foreign(u)] == [], path
        stylesheets |= {u for u in refs if urllib.parse.urlsplit(u).path.endswith(".css")}
    assert "/static/visualiser/lib/AdminLTE/css/AdminLTE.min.css" in stylesheets
    for sheet in sorted(stylesheets):
        status, css = get(with_history.port, sheet)
        assert status == 200, sheet
        urls = [a or b for a, b in CSS_URL.findall(css)]
        assert [u for u in urls if foreign(u)] == [], sheet


def test_the_task_chart_page_lists_the_events_without_a_cdn(with_history: Scheduler) -> None:
    status, page = get(with_history.port, "/tasklist/PReport")
    assert status == 200
    assert "cdnjs" not in page and "nv.addGraph" not in page
    assert page.count('href="/history/by_id/') >= 3  # PENDING, RUNNING, DONE of one run
    for event in ("PENDING", "RUNNING", "DONE"):
        assert event in page


# -- start-up log ------------------------------------------------------------------------------


def test_migrating_at_start_up_logs_no_alembic_plugin_lines(
    tmp_path: Path, luigi_cfg: Callable[[str], Path]
) -> None:
    """A database at an older revision: linea-luigid runs Alembic before it listens."""
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    transaction(
        parse_db_url(url),
        lambda conn: runner.upgrade(conn, "0004_value_info"),
        write=True,
        doing="making an older database",
    )
    env = scheduler_env(tmp_path, luigi_cfg(history_config(url, tmp_path / "artifacts")))
    with scheduler_process(LINEA_LUIGID, tmp_path, env) as port:
        assert get(port, "/artifacts")[0] == 200
        logs = tmp_path / f"logs-{port}"
    text = "".join(p.read_text(errors="replace") for p in logs.iterdir())
    assert "Recording task history" in text, text  # the log is the one we read
    assert "alembic.runtime.plugins" not in text and "setup plugin" not in text, text
    store = ll.ArtifactStore(url, str(tmp_path / "artifacts"))
    assert store.list() == []  # migrated to the head: the store reads it


def test_a_state_file_that_cannot_be_saved_is_reported_at_start_up(
    tmp_path: Path, luigi_cfg: Callable[[str], Path]
) -> None:
    """Luigi says "Failed saving scheduler state" only at shutdown; we say it at start."""
    cfg = luigi_cfg(
        f"[artifact_store]\ndb_connection = sqlite:///{tmp_path / 'db.sqlite'}\n"
        f"artifact_storage_dir = {tmp_path / 'artifacts'}\n"
    )
    missing = tmp_path / "no-such-folder" / "state.pickle"
    cmd = [*LINEA_LUIGID, "--address", "127.0.0.1", "--port", str(free_port())]
    log = tmp_path / "out.txt"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*cmd, "--state-path", str(missing)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=scheduler_env(tmp_path, cfg),
            cwd=tmp_path,
        )
    try:
        deadline = time.monotonic() + 30
        while "Scheduler starting up" not in log.read_text() and proc.poll() is None:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
    finally:
        stop_process(proc)
    text = log.read_text()
    assert "Scheduler starting up" in text, text
    assert f"[scheduler] state_path {missing} is missing or not writable" in text, text
