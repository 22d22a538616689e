"""Tornado handlers: HTML pages under ``/artifacts`` and JSON under ``/api/artifacts``.

Every handler answers GET and HEAD only (tornado answers 405 to anything else). The
database (and the storage, for a value's preview) is read on a small thread
pool, so a slow query or a slow bucket never stalls the scheduler's own RPCs
on the IOLoop. Errors map to statuses: unknown name or
version 404, bad query argument 400, a database that cannot answer 503 with
its URL masked. Responses carry a Content-Security-Policy that allows no
script at all, so even a missed escape could not run one.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import tornado.ioloop
import tornado.web

from ..errors import ArtifactNotFoundError, ArtifactStoreError, InvalidArgumentError
from ..model import human_size
from ..names import MAX_VERSION, parse_count
from ..settings.urls import mask_secrets
from . import graph
from .documents import artifact_json, detail_json, iso_utc, libraries_text, short_time
from .reader import Catalog, Detail, Page, check_limit, name_filter

log = logging.getLogger(__name__)

T = TypeVar("T")

TEMPLATES = os.path.join(os.path.dirname(__file__), "templates")

#: database reads happen here, never on the IOLoop
_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="linea-browser")

_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def routes(catalog: Catalog, *, history_pages: bool) -> list[Any]:
    """The browser's URL rules, for ``Application.add_handlers``.

    ``history_pages``: whether Luigi's ``/history`` pages work (task history
    is recorded), so task ids link to them.
    """
    kwargs = {"catalog": catalog, "history_pages": history_pages}
    name, version = r"([^/]+)", r"([^/]+)"
    return [
        (r"/artifacts/?", ListPage, kwargs),
        (rf"/artifacts/{name}/?", NamePage, kwargs),
        (rf"/artifacts/{name}/{version}/?", VersionPage, kwargs),
        (r"/api/artifacts/?", ListApi, kwargs),
        (rf"/api/artifacts/{name}/?", NameApi, kwargs),
        (rf"/api/artifacts/{name}/{version}/?", VersionApi, kwargs),
    ]


def url_of(name: str, version: int | str | None = None) -> str:
    """The page of a name (or of one version), the name percent-encoded whole."""
    base = f"/artifacts/{quote(name, safe='')}"
    return base if version is None else f"{base}/{quote(str(version), safe='')}"


def visualiser_url(task_id: str) -> str:
    """Luigi's visualiser drawing ``task_id``'s dependency graph (its own URL fragment)."""
    return "/static/visualiser/index.html#" + urlencode({"tab": "graph", "taskId": task_id})


def snippet(name: str, version: int) -> str:
    """The line that loads this version; a JSON string is a valid Python literal."""
    return f"ll.load({json.dumps(name, ensure_ascii=False)}, {version})"


class _Handler(tornado.web.RequestHandler):
    """Shared plumbing: the catalog, threaded reads, error pages."""

    catalog: Catalog
    history_pages: bool
    json_api = False

    def initialize(self, catalog: Catalog, history_pages: bool) -> None:
        self.catalog = catalog
        self.history_pages = history_pages

    def set_default_headers(self) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Content-Security-Policy", _CSP)
        self.set_header("Cache-Control", "no-store")

    def get_template_path(self) -> str:
        return TEMPLATES

    def get_template_namespace(self) -> dict[str, Any]:
        ns = super().get_template_namespace()
        ns.update(
            url_of=url_of,
            short_time=short_time,
            human_size=human_size,
            history_url=self.history_url,
            family_url=lambda family: "/artifacts?" + urlencode({"family": family}),
            visualiser_url=visualiser_url,
            libraries_text=libraries_text,
        )
        return ns

    def history_url(self, task_id: str | None) -> str | None:
        """Luigi's history page of ``task_id``, when the scheduler records history."""
        if task_id is None or not self.history_pages:
            return None
        return f"/history/by_task_id/{quote(task_id, safe='')}"

    async def read(self, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``work(*args, **kwargs)`` on the read pool, off the IOLoop."""
        loop = tornado.ioloop.IOLoop.current()
        return await loop.run_in_executor(_POOL, lambda: work(*args, **kwargs))

    def query(self, key: str, *, strip: bool = True) -> str | None:
        """A query argument, None when absent or empty; numbers pass ``strip=False`` (' 1')."""
        value = self.get_query_argument(key, None, strip=strip)
        return value if value else None

    def write_json(self, doc: Any) -> None:
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        # "</" escaped too, so the document is inert even if a browser sniffs it as HTML
        self.finish(json.dumps(doc, default=str).replace("</", "<\\/"))

    async def get(self, *args: str) -> None:
        """Answer through ``respond``; our errors become 404, 400 or 503 pages."""
        try:
            await self.respond(*args)
        except ArtifactStoreError as err:
            message = mask_secrets(str(err))
            log.warning("artifact browser %s: %s", self.request.path, message)
            self.send_error(_status_of(err), message=message)

    async def head(self, *args: str) -> None:
        """GET's status and headers (monitoring probes); tornado sends no body."""
        await self.get(*args)

    #: the handler's own GET, given the decoded path arguments
    respond: Callable[..., Awaitable[None]]

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        message = kwargs.get("message") or self._reason
        if self.json_api:
            self.write_json({"error": message, "status": status_code})
        else:
            self.render("error.html", status=status_code, reason=self._reason, message=message)


def _status_of(err: ArtifactStoreError) -> int:
    if isinstance(err, ArtifactNotFoundError):
        return 404
    if isinstance(err, InvalidArgumentError):
        return 400
    return 503  # the database (or its schema) cannot answer now


class _Listing(_Handler):
    async def page(self) -> tuple[Page, dict[str, str | None]]:
        args = {k: self.query(k) for k in ("q", "family", "after", "before")}
        limit = check_limit(self.query("limit", strip=False))
        page = await self.read(
            self.catalog.latest,
            pattern=name_filter(args["q"]),
            family=args["family"],
            after=args["after"],
            before=args["before"],
            limit=limit,
        )
        args["limit"] = self.query("limit")
        return page, args


def _link(path: str, args: dict[str, str | None], **change: Any) -> str:
    """``path`` with the current filters, ``change`` applied (None drops a key)."""
    merged = {**args, **change}
    query = urlencode({k: v for k, v in merged.items() if v is not None})
    return f"{path}?{query}" if query else path


class ListPage(_Listing):
    async def respond(self) -> None:
        page, args = await self.page()
        base = {k: args[k] for k in ("q", "family", "limit")}
        self.render(
            "list.html",
            page=page,
            q=args["q"] or "",
            family=args["family"] or "",
            next_url=_link("/artifacts", base, after=page.next_key)
            if page.next_key is not None
            else None,
            prev_url=_link("/artifacts", base, before=page.prev_key)
            if page.prev_key is not None
            else None,
            first_url=_link("/artifacts", base) if args["after"] or args["before"] else None,
        )


class ListApi(_Listing):
    json_api = True

    async def respond(self) -> None:
        page, args = await self.page()
        base = {k: args[k] for k in ("q", "family", "limit")}
        self.write_json(
            {
                "artifacts": [artifact_json(a) for a in page.items],
                "next": _link("/api/artifacts", base, after=page.next_key)
                if page.next_key is not None
                else None,
                "previous": _link("/api/artifacts", base, before=page.prev_key)
                if page.prev_key is not None
                else None,
            }
        )


class _Name(_Handler):
    async def versions(self, name: str) -> tuple[Page, dict[str, int]]:
        raw = self.query("before", strip=False)
        before = None if raw is None else parse_count(raw, "before", maximum=MAX_VERSION)
        limit = check_limit(self.query("limit", strip=False))
        page = await self.read(self.catalog.versions, name, before=before, limit=limit)
        aliases = await self.read(self.catalog.aliases, name)
        return page, aliases


class NamePage(_Name):
    async def respond(self, name: str) -> None:
        page, aliases = await self.versions(name)
        by_version: dict[int, list[str]] = {}
        for alias, version in aliases.items():
            by_version.setdefault(version, []).append(alias)
        limit = {"limit": self.query("limit")}
        self.render(
            "name.html",
            name=name,
            page=page,
            aliases=aliases,
            by_version=by_version,
            older_url=_link(url_of(name), limit, before=str(page.next_key))
            if page.next_key is not None
            else None,
            newest_url=_link(url_of(name), limit) if page.prev_key is not None else None,
        )


class NameApi(_Name):
    json_api = True

    async def respond(self, name: str) -> None:
        page, aliases = await self.versions(name)
        limit = {"limit": self.query("limit")}
        self.write_json(
            {
                "name": name,
                "aliases": aliases,
                "versions": [artifact_json(a) for a in page.items],
                "next": _link(f"/api{url_of(name)}", limit, before=str(page.next_key))
                if page.next_key is not None
                else None,
            }
        )


class _Version(_Handler):
    def depth(self) -> int:
        raw = self.query("depth", strip=False)
        if raw is None:
            return graph.DEFAULT_DEPTH
        return parse_count(raw, "depth", minimum=1, maximum=graph.MAX_DEPTH)

    async def detail(self, name: str, version: str, depth: int) -> Detail:
        result: Detail = await self.read(self.catalog.detail, name, version, depth=depth)
        return result


class VersionPage(_Version):
    async def respond(self, name: str, version: str) -> None:
        depth = self.depth()
        d = await self.detail(name, version, depth)
        self.render(
            "version.html",
            d=d,
            a=d.artifact,
            snippet=snippet(d.artifact.name, d.artifact.version),
            iso_utc=iso_utc,
            depth=depth,
            max_depth=graph.MAX_DEPTH,
            node_w=graph.NODE_W,
            node_h=graph.NODE_H,
        )


class VersionApi(_Version):
    json_api = True

    async def respond(self, name: str, version: str) -> None:
        d = await self.detail(name, version, 0)  # the API has no drawing
        doc = detail_json(d.artifact, d.upstream, d.downstream, d.runs or [], d.aliases, d.preview)
        self.write_json(doc)
