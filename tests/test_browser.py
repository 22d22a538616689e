"""The artifact browser in a real browser: headless Chromium, driven by Playwright.

A real ``linea-luigid`` (task history on, SQLite + a local folder in
``tmp_path``) schedules a small real pipeline, two leaves feeding one report,
like the example's. Then Chromium opens ``/artifacts``, checks the table,
clicks through to the report's latest version, finds the lineage graph's
nodes (the report and both inputs) drawn in the page, and follows a node's
link to an input's page. Screenshots of the listing and of the version page
go to ``test-artifacts/`` at the repository root (``LL_TEST_ARTIFACTS``
overrides it). A second browser context with JavaScript disabled shows the
same table and links.

Playwright cannot download its own browser here: it drives the system
Chromium (Debian's ``chromium``). Without it, or without playwright, the
test skips on a developer machine and fails in CI (``CI`` set).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import struct
import urllib.parse
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from ci_support import unavailable
from luigi_support import REPO, run_python, write_module
from scheduler_support import LINEA_LUIGID, scheduler_env, scheduler_process

import linea_luigi as ll

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

TASKS = """
    import luigi
    import linea_luigi as ll

    class NorthSales(ll.ArtifactTaskMixin, luigi.Task):
        artifact_name = "sales.north"

        def run(self):
            self.save([3, 4, 5])

    class SouthSales(ll.ArtifactTaskMixin, luigi.Task):
        artifact_name = "sales.south"

        def run(self):
            self.save([1, 2])

    class WeeklyReport(ll.ArtifactTaskMixin, luigi.Task):
        artifact_name = "weekly report"

        def requires(self):
            return {"north": NorthSales(), "south": SouthSales()}

        def run(self):
            self.save({region: sum(rows) for region, rows in self.load_input().items()})
"""

REPORT = "weekly report"  # a space: links must percent-encode it
NORTH, SOUTH = "sales.north", "sales.south"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TIMEOUT_MS = 15_000


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Headless system Chromium under Playwright (its own browser download is unreachable)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as err:
        unavailable(f"playwright is not importable ({err}): pip install -e '.[test]'")
    executable = chromium_path()
    if executable is None:
        unavailable("headless Chromium not installed: apt-get install chromium (see README)")
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=executable, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@dataclass(frozen=True)
class Site:
    base: str
    #: latest version of every name
    latest: dict[str, int]
    #: (name, version) of what the report's latest version was made from
    upstream: set[tuple[str, int]]


@pytest.fixture
def site(
    tmp_path: Path,
    luigi_cfg: Callable[[str], Path],
    sqlite_url: str,
    storage_dir: Path,
    store: ll.ArtifactStore,
) -> Iterator[Site]:
    """``linea-luigid`` serving a store that a real Luigi run filled through it."""
    # versions saved outside Luigi first, so the pipeline's are not all version 0
    store.save([0], NORTH)
    store.save("draft", REPORT)
    cfg = luigi_cfg(
        "[scheduler]\nrecord_task_history = true\n"
        f"[task_history]\ndb_connection = {sqlite_url}\n"
        f"[artifact_store]\ndb_connection = {sqlite_url}\n"
        f"artifact_storage_dir = {storage_dir}\n"
    )
    env = scheduler_env(tmp_path, cfg)
    write_module(tmp_path, "browser_tasks", TASKS)
    with scheduler_process(LINEA_LUIGID, tmp_path, env) as port:
        output = run_python(
            [
                *("-m", "luigi", "--module", "browser_tasks", "WeeklyReport"),
                *("--scheduler-host", "127.0.0.1", "--scheduler-port", str(port)),
                *("--workers", "2"),
            ],
            env,
            tmp_path,
        )
        assert "3 ran successfully" in output, output[-3000:]
        latest = {a.name: a.version for a in store.list()}
        upstream = {(a.name, a.version) for a in store.upstream(REPORT, latest[REPORT])}
        assert latest == {NORTH: 1, SOUTH: 0, REPORT: 1}
        assert upstream == {(NORTH, 1), (SOUTH, 0)}
        yield Site(f"http://127.0.0.1:{port}", latest, upstream)


def page_url(name: str, version: int | None = None) -> str:
    path = f"/artifacts/{urllib.parse.quote(name, safe='')}"
    return path if version is None else f"{path}/{version}"


def artifacts_dir() -> Path:
    folder = Path(os.environ.get("LL_TEST_ARTIFACTS") or REPO / "test-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def screenshot(page: Page, name: str) -> Path:
    path = artifacts_dir() / name
    path.unlink(missing_ok=True)
    page.screenshot(path=str(path), full_page=True)
    return path


def assert_real_png(path: Path, min_height: int) -> None:
    """A PNG of the page's size whose pixels are not one flat colour."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 1000 and height >= min_height, (width, height)
    pixels, pos = b"", 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        if data[pos + 4 : pos + 8] == b"IDAT":
            pixels += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    # a blank page filters to a handful of byte values; text and drawings to hundreds
    assert len(set(zlib.decompress(pixels))) >= 64, f"{path} looks blank"


def check_listing(page: Page, site: Site) -> None:
    """The table of ``/artifacts``: one row per name, links to its page and latest version."""
    rows = page.locator("table#ll-artifacts tr.ll-artifact")
    names = sorted(str(rows.nth(i).get_attribute("data-name")) for i in range(rows.count()))
    assert names == sorted(site.latest)
    for name, version in site.latest.items():
        row = page.locator(f'tr.ll-artifact[data-name="{name}"]')
        assert row.locator("a.ll-name").get_attribute("href") == page_url(name)
        assert row.locator("a.ll-name").inner_text().strip() == name
        assert row.locator("a.ll-version").get_attribute("href") == page_url(name, version)
    assert page.locator("a#ll-visualiser").get_attribute("href") == "/"


def node_link(node: Locator) -> str | None:
    """The href of the ``<a>`` wrapping or inside one graph node."""
    link = node.locator(
        "xpath=ancestor::*[local-name()='a'][1] | descendant::*[local-name()='a'][1]"
    ).first
    return link.get_attribute("href") or link.get_attribute("xlink:href")


def graph_nodes(page: Page) -> dict[tuple[str, int], Locator]:
    nodes = page.locator("svg#ll-lineage g.ll-node")
    found = {}
    for i in range(nodes.count()):
        node = nodes.nth(i)
        name, version = node.get_attribute("data-name"), node.get_attribute("data-version")
        assert name and version and version.isdigit(), f"graph node {i}: {name=} {version=}"
        found[(name, int(version))] = node
    return found


def test_listing_to_version_page_to_lineage_graph(browser: Browser, site: Site) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    try:
        response = page.goto(site.base + "/artifacts")
        assert response is not None and response.status == 200
        check_listing(page, site)
        listing_png = screenshot(page, "browser-artifacts.png")

        report = (REPORT, site.latest[REPORT])
        page.locator(f'tr.ll-artifact[data-name="{REPORT}"] a.ll-version').click()
        page.wait_for_url(site.base + page_url(*report))
        page.wait_for_load_state("load")
        assert REPORT in page.locator("h1").inner_text()
        snippet = page.locator("code#ll-snippet").inner_text()
        assert f'll.load("{REPORT}", {report[1]})' in snippet

        page.locator("svg#ll-lineage g.ll-node").first.wait_for()
        nodes = graph_nodes(page)
        assert {report, *site.upstream} <= set(nodes), sorted(nodes)
        focused = {k for k, n in nodes.items() if "ll-focus" in str(n.get_attribute("class"))}
        assert focused == {report}
        for key, node in nodes.items():
            assert node_link(node) == page_url(*key), key
        assert page.locator("svg#ll-lineage path.ll-edge").count() >= len(site.upstream)
        # drawn, not just present: every node has a box; inputs sit left of the report
        boxes = {key: nodes[key].bounding_box() for key in (report, *site.upstream)}
        assert all(b is not None and b["width"] > 0 and b["height"] > 0 for b in boxes.values())
        for key in site.upstream:
            assert boxes[key]["x"] < boxes[report]["x"], boxes  # type: ignore[index]
        version_png = screenshot(page, "browser-version.png")

        # a node is a link: the north input's own page, with the report downstream of it
        north = (NORTH, site.latest[NORTH])
        nodes[north].locator("xpath=descendant-or-self::*[local-name()='rect']").first.click()
        page.wait_for_url(site.base + page_url(*north))
        assert NORTH in page.locator("h1").inner_text()
        assert {north, report} <= set(graph_nodes(page))
    except BaseException:
        with contextlib.suppress(Exception):  # what the page showed when it failed
            page.screenshot(path=str(artifacts_dir() / "browser-failure.png"), full_page=True)
        raise
    finally:
        context.close()
    assert errors == []
    assert_real_png(listing_png, min_height=300)
    assert_real_png(version_png, min_height=600)


def test_listing_needs_no_javascript(browser: Browser, site: Site) -> None:
    context = browser.new_context(java_script_enabled=False)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        response = page.goto(site.base + "/artifacts")
        assert response is not None and response.status == 200
        check_listing(page, site)
        page.locator(f'tr.ll-artifact[data-name="{REPORT}"] a.ll-version').click()
        page.wait_for_url(site.base + page_url(REPORT, site.latest[REPORT]))
        assert REPORT in page.locator("h1").inner_text()
        assert f'll.load("{REPORT}", 1)' in page.locator("code#ll-snippet").inner_text()
    finally:
        context.close()
