"""The artifact browser over HTTP: a real ``linea-luigid`` on a free loopback port.

One scheduler serves a store filled two ways: a real Luigi pipeline run
through that scheduler (so task history and runs exist) and direct saves (many
names for paging, hostile names for escaping, a value whose unpickling would
leave a mark). Every route is checked for status, shape and links; the
PostgreSQL + S3 and unreachable-database cases start their own scheduler.
"""

from __future__ import annotations

import json
import pathlib
import re
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fault_support import S3_ENV, moto_s3, s3_client
from luigi_support import run_python, write_module
from scheduler_support import LINEA_LUIGID, api, free_port, get, scheduler_env, scheduler_process

import linea_luigi as ll
from linea_luigi.cli import main as cli_main

TASKS = """
    import luigi
    import linea_luigi as ll

    class WPart(ll.ArtifactTaskMixin, luigi.Task):
        part = luigi.IntParameter()

        def run(self):
            self.save(self.part * 10)

    class WReport(ll.ArtifactTaskMixin, luigi.Task):
        def requires(self):
            return [WPart(part=p) for p in (1, 2)]

        def run(self):
            self.save(sum(self.load_input()))
"""

EVIL = "<script>alert(1)</script>"
EVIL_PARAM = '"><img src=x onerror=alert(2)>'
PAGED = [f"page_{i:02d}" for i in range(7)]


class Trap:
    """Unpickling this touches ``path``: the mark of a server that loaded a value."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


@dataclass
class Site:
    port: int
    store: ll.ArtifactStore
    db_url: str
    mark: Path

    def get(self, path: str) -> tuple[int, str]:
        return get(self.port, path)

    def json(self, path: str) -> Any:
        status, body = self.get(path)
        assert status == 200, body
        return json.loads(body)


def quoted(name: str) -> str:
    return urllib.parse.quote(name, safe="")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("web")
    db_url = f"sqlite:///{tmp / 'db.sqlite'}"
    storage = tmp / "artifacts"
    cfg = tmp / "luigi.cfg"
    cfg.write_text(
        "[scheduler]\nrecord_task_history = true\n"
        f"[artifact_store]\ndb_connection = {db_url}\nartifact_storage_dir = {storage}\n"
    )
    env = scheduler_env(tmp, cfg)
    with scheduler_process(LINEA_LUIGID, tmp, env) as port:
        write_module(tmp, "w_tasks", TASKS)
        args = ["-m", "luigi", "--module", "w_tasks", "WReport", "--scheduler-host", "127.0.0.1"]
        out = run_python([*args, "--scheduler-port", str(port)], env, tmp)
        assert "3 ran successfully" in out, out[-3000:]

        store = ll.ArtifactStore(db_url, str(storage))
        for name in PAGED:
            store.save(name, name)
        base = store.save(1, "model")
        store.save(2, "model", upstream=[base])
        store.save(3, "model")
        store.set_alias("model", 1, "production")
        evil_task = ll.TaskInfo(
            family="Evil<b>Family</b>",
            task_id="Evil<b>_1</b>",
            identity_key="0" * 64,
            params={"p": EVIL_PARAM},
        )
        store.save({"x": 1}, EVIL, task=evil_task, upstream=[store.get("WReport")])
        mark = tmp / "unpickled.mark"
        store.save(Trap(mark), "trap")
        yield Site(port, store, db_url, mark)


# -- listing ----------------------------------------------------------------------------


def test_listing_shows_the_latest_version_of_every_name_with_links(site: Site) -> None:
    status, page = site.get("/artifacts?limit=1000")
    assert status == 200
    names = re.findall(r'<tr class="ll-artifact" data-name="([^"]*)"', page)
    expected = sorted(a.name for a in site.store.list())
    assert [_unescape(n) for n in names] == expected
    latest = site.store.get("model")
    assert f'<a class="ll-version" href="/artifacts/model/{latest.version}">' in page
    assert '<a class="ll-name" href="/artifacts/WReport">WReport</a>' in page
    report = site.store.get("WReport")
    assert f'href="/history/by_task_id/{quoted(report.task_id or "")}"' in page
    assert '<a id="ll-visualiser" href="/">' in page


def test_listing_pages_forwards_and_back_in_json_and_html(site: Site) -> None:
    everything = sorted(a.name for a in site.store.list())
    pages: list[list[str]] = []
    doc = site.json("/api/artifacts?limit=3")
    assert doc["previous"] is None
    while True:
        pages.append([a["name"] for a in doc["artifacts"]])
        assert len(pages[-1]) <= 3
        if doc["next"] is None:
            break
        doc = site.json(doc["next"])
    assert [n for p in pages for n in p] == everything
    assert len(pages) == -(-len(everything) // 3)
    back = []
    while doc["previous"] is not None:
        doc = site.json(doc["previous"])
        back.append([a["name"] for a in doc["artifacts"]])
    assert back == pages[-2::-1]

    seen: list[str] = []
    path: str | None = "/artifacts?limit=4"
    while path is not None:
        status, page = site.get(path)
        assert status == 200
        seen += [_unescape(n) for n in re.findall(r'class="ll-artifact" data-name="([^"]*)"', page)]
        found = re.search(r'id="ll-next" href="([^"]*)"', page)
        path = _unescape(found.group(1)) if found else None
    assert seen == everything


def test_listing_filters_by_name_text_glob_and_task_family(site: Site) -> None:
    doc = site.json("/api/artifacts?q=page_0")
    assert [a["name"] for a in doc["artifacts"]] == PAGED
    doc = site.json("/api/artifacts?q=" + quoted("page_0[13]"))
    assert [a["name"] for a in doc["artifacts"]] == ["page_01", "page_03"]
    doc = site.json("/api/artifacts?family=WPart")
    assert [(a["name"], a["task_family"]) for a in doc["artifacts"]] == [("WPart", "WPart")]
    doc = site.json("/api/artifacts?family=WPart&q=nothing-like-it")
    assert doc["artifacts"] == []
    status, page = site.get("/artifacts?family=WReport")
    assert status == 200 and 'data-name="WReport"' in page and 'data-name="page_00"' not in page
    status, page = site.get("/artifacts?q=zzz")
    assert status == 200 and "No artifact matches these filters." in page


def test_listing_json_has_the_cli_fields(site: Site) -> None:
    listed = site.json("/api/artifacts?limit=1000")["artifacts"]
    cli = CliRunner().invoke(
        cli_main, ["--db-url", site.db_url, "--storage-dir", _root(site), "list", "--json"]
    )
    assert cli.exit_code == 0, cli.output
    assert listed == json.loads(cli.output)


# -- one name, one version ------------------------------------------------------------------


def test_name_page_lists_versions_newest_first_with_aliases(site: Site) -> None:
    status, page = site.get("/artifacts/model")
    assert status == 200
    assert re.findall(r'class="ll-version-row" data-version="(\d+)"', page) == ["2", "1", "0"]
    assert "production → v1" in page
    doc = site.json("/api/artifacts/model?limit=2")
    assert [v["version"] for v in doc["versions"]] == [2, 1]
    assert doc["aliases"] == {"production": 1}
    older = site.json(doc["next"])
    assert [v["version"] for v in older["versions"]] == [0] and older["next"] is None


def test_version_page_shows_metadata_lineage_runs_and_snippet(site: Site) -> None:
    report = site.store.get("WReport")
    status, page = site.get(f"/artifacts/WReport/{report.version}")
    assert status == 200
    for text in (report.digest, report.uri, str(report.size_bytes), report.python_version):
        assert text in page
    snippet = f'll.load("WReport", {report.version})</code>'
    assert f'<code id="ll-snippet">import linea_luigi as ll\n{snippet}' in _unescape(page)
    node = r'<g class="ll-node( ll-focus)?" data-name="([^"]*)" data-version="(\d+)"'
    nodes = re.findall(node, page)
    drawn = {(_unescape(n), int(v)): bool(f) for f, n, v in nodes}
    parts = site.store.versions("WPart")
    assert drawn == {
        ("WReport", report.version): True,
        **{("WPart", p.version): False for p in parts},
        (EVIL, 0): False,
    }
    assert page.count('class="ll-edge"') == len(nodes) - 1
    assert f'href="/artifacts/WPart/{parts[0].version}"' in page
    history = f"/history/by_task_id/{quoted(report.task_id or '')}"
    assert f'id="ll-task-history" href="{history}"' in page
    graph_link = "/static/visualiser/index.html#" + urllib.parse.urlencode(
        {"tab": "graph", "taskId": report.task_id}
    )
    assert f'id="ll-task-graph" class="muted" href="{_escape(graph_link)}"' in page
    status, luigi_page = site.get(history)
    assert status == 200 and "WReport" in luigi_page
    runs = re.search(r'<table id="ll-runs">(.*?)</table>', page, re.S)
    assert runs is not None and "DONE" in runs.group(1) and "/history/by_id/" in runs.group(1)


def test_version_api_is_the_cli_show_document(site: Site) -> None:
    doc = site.json("/api/artifacts/model/latest")
    cli = CliRunner().invoke(
        cli_main, ["--db-url", site.db_url, "--storage-dir", _root(site), "show", "model", "--json"]
    )
    assert cli.exit_code == 0, cli.output
    assert doc == json.loads(cli.output)
    aliased = site.json("/api/artifacts/model/production")
    assert aliased["version"] == 1 and aliased["aliases"] == ["production"]
    assert aliased["upstream"] == [{"name": "model", "version": 0}]
    assert site.json("/api/artifacts/model/0")["downstream"] == [{"name": "model", "version": 1}]
    report = site.json("/api/artifacts/WReport/latest")
    assert [u["name"] for u in report["upstream"]] == ["WPart", "WPart"]
    assert [d["name"] for d in report["downstream"]] == [EVIL]
    assert len(report["runs"]) == 1 and report["runs"][0]["status"] == "DONE"
    assert report["runs"][0]["host"] and report["runs"][0]["started_at"]


# -- safety ----------------------------------------------------------------------------------


def test_names_parameters_and_task_ids_are_escaped(site: Site) -> None:
    version_page = f"/artifacts/{quoted(EVIL)}/0"
    for path in ("/artifacts", f"/artifacts/{quoted(EVIL)}", version_page, "/artifacts/WReport"):
        status, page = site.get(path)
        assert status in (200,), (path, page[:300])
        assert "<script>" not in page, path
        assert "<b>" not in page, path
    status, page = site.get(version_page)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "onerror=alert(2)&gt;" in page and "<img" not in page
    status, page = site.get(f"/artifacts/WReport/{site.store.get('WReport').version}")
    assert f'href="/artifacts/{quoted(EVIL)}/0"' in page
    status, body = site.get(f"/api/artifacts/{quoted(EVIL)}/0")
    assert status == 200 and "</" not in body and json.loads(body)["name"] == EVIL
    assert json.loads(body)["params"] == {"p": EVIL_PARAM}


def test_pages_forbid_scripts_and_refuse_writes(site: Site) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{site.port}/artifacts", timeout=10) as r:
        csp = r.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "script-src" not in csp
        assert r.headers["X-Content-Type-Options"] == "nosniff"
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        for path in ("/artifacts/model", "/api/artifacts/model/0", "/api/artifacts"):
            req = urllib.request.Request(
                f"http://127.0.0.1:{site.port}{path}", data=b"{}", method=method
            )
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(req, timeout=10)
            assert err.value.code == 405, (method, path)
    assert site.store.versions("model")[-1].version == 2


def test_the_server_never_unpickles_a_value(site: Site) -> None:
    trap = site.store.get("trap")
    for path in ("/artifacts", "/artifacts/trap", "/artifacts/trap/0", "/api/artifacts/trap/0"):
        assert site.get(path)[0] == 200
    assert site.json("/api/artifacts/trap/latest")["digest"] == trap.digest
    assert not site.mark.exists()
    site.store.load("trap")  # the trap is real: loading it here leaves the mark
    assert site.mark.exists()


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/artifacts/no-such-name", 404, "No artifact named &#x27;no-such-name&#x27;"),
        ("/artifacts/no-such-name/0", 404, "No artifact named"),
        ("/artifacts/model/99", 404, "has no version 99"),
        ("/artifacts/model/staging", 404, "no version or alias &#x27;staging&#x27;"),
        ("/artifacts?limit=0", 400, "limit must be"),
        ("/artifacts?limit=many", 400, "limit must be"),
        ("/artifacts/model?before=x", 400, "before must be"),
        ("/artifacts/model/0?depth=99", 400, "depth must be"),
    ],
)
def test_bad_requests_get_a_page_that_says_why(
    site: Site, path: str, status: int, says: str
) -> None:
    got, page = site.get(path)
    assert got == status, page[:500]
    assert 'id="ll-error"' in page and says in page


def test_api_errors_are_json(site: Site) -> None:
    status, body = site.get("/api/artifacts/model/99")
    assert status == 404
    assert json.loads(body) == {
        "error": "Artifact 'model' has no version 99; it has versions 0, 1, 2 (latest 2).",
        "status": 404,
    }
    status, body = site.get("/api/artifacts?limit=-1")
    assert status == 400 and json.loads(body)["status"] == 400


def test_luigi_pages_and_rpc_still_work(site: Site) -> None:
    for path in ("/static/visualiser/index.html", "/history", "/tasklist"):
        assert site.get(path)[0] == 200, path
    done = api(site.port, "task_list", status="DONE", upstream_status="")
    assert sorted(v["name"] for v in done.values()) == ["WPart", "WPart", "WReport"]


def test_an_unreachable_database_answers_503_with_the_password_masked(
    tmp_path: Path,
) -> None:
    dead = free_port()  # nothing listens there
    cfg = tmp_path / "luigi.cfg"
    cfg.write_text(
        "[artifact_store]\n"
        f"db_connection = postgresql://ll:s3cr3t-pw@127.0.0.1:{dead}/nowhere\n"
        f"artifact_storage_dir = {tmp_path / 'artifacts'}\n"
    )
    env = scheduler_env(tmp_path, cfg)
    with scheduler_process(LINEA_LUIGID, tmp_path, env) as port:
        for path in ("/artifacts", "/artifacts/model", "/artifacts/model/0"):
            status, page = get(port, path)
            assert status == 503, page[:500]
            assert "s3cr3t" not in page and "***" in page and 'id="ll-error"' in page
        status, body = get(port, "/api/artifacts")
        assert status == 503 and "s3cr3t" not in body and json.loads(body)["status"] == 503
        assert api(port, "task_list", status="DONE", upstream_status="") == {}


def test_postgresql_with_s3_storage(tmp_path: Path, pg_url: str) -> None:
    with moto_s3() as endpoint:
        s3_client(endpoint).create_bucket(Bucket="browse")
        options = {"endpoint_url": endpoint, "key": S3_ENV["AWS_ACCESS_KEY_ID"]}
        options["secret"] = S3_ENV["AWS_SECRET_ACCESS_KEY"]
        store = ll.ArtifactStore(pg_url, "s3://browse/artifacts", options)
        raw = store.save(list(range(10)), "pg.raw")
        store.save(sum(range(10)), "pg.total", upstream=[raw])
        cfg = tmp_path / "luigi.cfg"
        # the scheduler knows the database only: it never opens the storage
        cfg.write_text(f"[artifact_store]\ndb_connection = {pg_url}\n")
        env = scheduler_env(tmp_path, cfg)
        with scheduler_process(LINEA_LUIGID, tmp_path, env) as port:
            status, page = get(port, "/artifacts")
            assert status == 200 and 'data-name="pg.raw"' in page and 'data-name="pg.total"' in page
            doc = json.loads(get(port, "/api/artifacts/pg.total/0")[1])
            assert doc["uri"].startswith("s3://browse/artifacts/pg.total/")
            assert doc["upstream"] == [{"name": "pg.raw", "version": 0}]
            status, page = get(port, "/artifacts/pg.total/0")
            assert status == 200 and 'data-name="pg.raw" data-version="0"' in page
            assert "This scheduler records no task history" in page


def _root(site: Site) -> str:
    return str(site.store.values.root_uri)


def _escape(text: str) -> str:
    import html

    return html.escape(text)


def _unescape(text: str) -> str:
    import html

    return html.unescape(text)
