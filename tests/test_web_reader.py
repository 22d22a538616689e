"""The browser's reads in process: one query per listing page, bounded lineage drawings."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import linea_luigi as ll
from linea_luigi.db.engine import get_engine
from linea_luigi.settings.urls import parse_db_url
from linea_luigi.web import Catalog, graph


@contextmanager
def statements(url: str) -> Iterator[list[str]]:
    """Every SQL statement the process sends to ``url``'s engine meanwhile."""
    seen: list[str] = []
    engine = get_engine(parse_db_url(url))

    def note(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
        seen.append(sql)

    sa.event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", note)


def test_an_empty_database_lists_nothing_and_binds_no_storage(sqlite_url: str) -> None:
    catalog = Catalog(parse_db_url(sqlite_url), None)
    page = catalog.latest()
    assert page.items == [] and page.next_key is None and page.prev_key is None
    with pytest.raises(ll.ArtifactNotFoundError, match="No artifact named 'x'"):
        catalog.versions("x")
    # the browser must not pin the database to its own idea of the storage root
    store = ll.ArtifactStore(sqlite_url, "/somewhere/else")
    store.save(1, "x")
    assert catalog.latest().items[0].uri.startswith("file:///somewhere/else/")


def test_each_listing_page_is_one_query(store: ll.ArtifactStore, sqlite_url: str) -> None:
    for i in range(25):
        store.save(i, f"n{i:02d}")
        store.save(i, f"n{i:02d}")
    catalog = Catalog(parse_db_url(sqlite_url), None)
    catalog.latest(limit=1)  # the first read finds the store's root
    with statements(sqlite_url) as seen:
        first = catalog.latest(limit=10)
        second = catalog.latest(after=first.next_key, limit=10)
        back = catalog.latest(before=second.prev_key, limit=10)
        family = catalog.latest(family="none", limit=10)
    assert len([s for s in seen if s.lstrip().upper().startswith("SELECT")]) == 4, seen
    assert [a.name for a in first.items] == [f"n{i:02d}" for i in range(10)]
    assert all(a.version == 1 for a in first.items)
    assert [a.name for a in second.items] == [f"n{i:02d}" for i in range(10, 20)]
    assert back.items == first.items and back.prev_key is None
    assert family.items == []


def test_a_wide_lineage_is_drawn_capped_and_says_how_much_is_left_out(
    store: ll.ArtifactStore, sqlite_url: str
) -> None:
    inputs = [store.save(i, f"in{i:02d}") for i in range(graph.PER_COLUMN + 6)]
    total = store.save(0, "total", upstream=inputs)
    store.save(0, "after", upstream=[total])
    detail = Catalog(parse_db_url(sqlite_url), None).detail("total", "latest")
    layout = detail.lineage
    assert len(detail.upstream) == graph.PER_COLUMN + 6  # the lists stay complete
    assert layout.hidden == 6
    by_level: dict[int, list[str]] = {}
    for node in layout.nodes:
        by_level.setdefault(node.level, []).append(node.name)
    assert by_level[-1] == [f"in{i:02d}" for i in range(graph.PER_COLUMN)]
    assert by_level[0] == ["total"] and by_level[1] == ["after"]
    assert len(layout.edges) == graph.PER_COLUMN + 1
    xs = {node.level: node.x for node in layout.nodes}
    assert xs[-1] < xs[0] < xs[1]
    assert max(n.y for n in layout.nodes) + graph.NODE_H <= layout.height


def test_depth_reaches_further_ancestors(store: ll.ArtifactStore, sqlite_url: str) -> None:
    chain = [store.save(0, "c0")]
    for i in range(1, 6):
        chain.append(store.save(i, f"c{i}", upstream=[chain[-1]]))
    catalog = Catalog(parse_db_url(sqlite_url), None)
    near = catalog.detail("c5", "latest", depth=2).lineage
    far = catalog.detail("c5", "latest", depth=5).lineage
    assert sorted(n.name for n in near.nodes) == ["c3", "c4", "c5"]
    assert sorted(n.name for n in far.nodes) == [f"c{i}" for i in range(6)]


def test_the_store_is_read_on_the_root_the_database_records(
    tmp_path: Path, sqlite_url: str
) -> None:
    saved = ll.ArtifactStore(sqlite_url, tmp_path / "values").save([1], "v")
    catalog = Catalog(parse_db_url(sqlite_url), None)
    (found,) = catalog.latest().items
    assert found.uri == saved.uri and found.digest == saved.digest
