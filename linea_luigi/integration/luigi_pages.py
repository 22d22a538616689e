"""Luigi's own pages as ``linea-luigid`` serves them: HEAD, history off, nothing from a CDN.

``luigi.server.app`` builds the tornado application and keeps its URL list;
``adapt`` swaps each rule's handler class for a subclass (made once per class),
so the routes stay Luigi's while the behaviour changes where stock ``luigid``
falls short:

- every handler with a ``get`` answers ``HEAD`` the same way: tornado sends the
  status and headers (``Content-Length`` included) and drops the body.
  Monitoring probes use HEAD; Luigi answers it only on ``/`` (204);
- with task history off, the history pages (``/history…``, ``/tasklist…``)
  answer 404 with a page saying how to turn it on, instead of a 500 from
  ``NopHistory``;
- Luigi's history templates are read through a loader that drops the tags of
  ``layout.html`` fetching d3 and nvd3 from a public CDN, and the task chart
  (``/tasklist/<name>``, drawn with nvd3, which Luigi does not ship) becomes a
  table of the task's events (``web/templates/luigi_task_events.html``);
- stylesheets under ``/static/`` are served without ``@import`` of other hosts
  (AdminLTE's imports Google Fonts; the system font is used instead).

So a page rendered from the scheduler requests nothing from any other host.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Any

import luigi.server
import tornado.template
import tornado.web

from ..web.handlers import TEMPLATES

#: Luigi's handlers that read the task history (``RootPathHandler`` only redirects)
HISTORY_HANDLERS = (
    luigi.server.AllRunHandler,
    luigi.server.SelectedRunHandler,
    luigi.server.RecentRunHandler,
    luigi.server.ByNameHandler,
    luigi.server.ByIdHandler,
    luigi.server.ByTaskIdHandler,
    luigi.server.ByParamsHandler,
)
#: Luigi's template of ``/tasklist/<name>``, replaced by ours
CHART_TEMPLATE = "history.html"
#: where Luigi's templates are, and the name our loader of them has in tornado's cache of
#: loaders (keyed by template path, shared by every handler: Luigi's path is left to Luigi)
LUIGI_TEMPLATES = Path(luigi.server.__file__).parent / "templates"
OFFLINE_TEMPLATES = f"{LUIGI_TEMPLATES}#offline"

#: an element that makes the browser fetch from another host: ``<script src=…>…</script>``
#: or ``<link href=…>`` whose URL has a scheme or starts with ``//``
_FOREIGN_TAG = re.compile(
    r"""<script\b[^>]*\bsrc=["'](?:[a-z]+:)?//[^>]*>\s*</script>\s*"""
    r"""|<link\b[^>]*\bhref=["'](?:[a-z]+:)?//[^>]*>\s*""",
    re.IGNORECASE,
)
#: ``@import url(…);`` or ``@import "…";`` of another host, in a stylesheet
_FOREIGN_IMPORT = re.compile(
    rb"""@import\s+(?:url\(\s*)?["']?(?:[a-z]+:)?//[^;]*;""",
    re.IGNORECASE,
)


def adapt(application: tornado.web.Application, *, history: bool) -> None:
    """Give every Luigi route of ``application`` its adapted handler (see the module doc).

    ``history``: whether the scheduler records task history (``DbTaskHistory``).
    Call it on ``luigi.server.app(...)`` before adding other handlers.
    """
    for rule in application.wildcard_router.rules:
        rule.target = adapted(rule.target, history=history)
    application.settings["static_handler_class"] = OfflineStaticHandler


@functools.cache
def adapted(target: Any, *, history: bool) -> Any:
    """``target``'s adapted subclass, or ``target`` itself when nothing changes."""
    if not (isinstance(target, type) and issubclass(target, tornado.web.RequestHandler)):
        return target
    if target is tornado.web.StaticFileHandler:
        return OfflineStaticHandler
    mixins: list[type] = []
    if issubclass(target, HISTORY_HANDLERS):
        mixins.append(LocalAssetsTemplates if history else HistoryOff)
    defines_get = target.get is not tornado.web.RequestHandler.get
    if defines_get and target.head is tornado.web.RequestHandler.head:
        mixins.append(HeadAsGet)
    if not mixins:
        return target
    return type(target.__name__, (*mixins, target), {"__module__": __name__})


class HeadAsGet(tornado.web.RequestHandler):
    """HEAD runs GET; tornado writes its status and headers and drops the body."""

    def head(self, *args: Any, **kwargs: Any) -> Any:
        return self.get(*args, **kwargs)


class LocalAssetsTemplates(tornado.web.RequestHandler):
    """Luigi's history templates, read through ``luigi_templates``."""

    def get_template_path(self) -> str:
        return OFFLINE_TEMPLATES

    def create_template_loader(self, template_path: str) -> tornado.template.BaseLoader:
        return luigi_templates()


class HistoryOff(tornado.web.RequestHandler):
    """A history page of a scheduler that records none: 404, and how to turn it on."""

    #: read by ``base.html``: no link to the history
    history_pages = False

    def get_template_path(self) -> str:
        return TEMPLATES

    def prepare(self) -> None:
        self.set_status(404)
        self.render("history_off.html", path=self.request.path)


@functools.cache
def luigi_templates() -> tornado.template.DictLoader:
    """Luigi's templates with every tag fetching from another host removed, and our chart page.

    Read once from the installed Luigi, so its pages keep up with its releases.
    """
    texts = {p.name: without_foreign_tags(p.read_text()) for p in LUIGI_TEMPLATES.glob("*.html")}
    texts[CHART_TEMPLATE] = Path(TEMPLATES, "luigi_task_events.html").read_text()
    return tornado.template.DictLoader(texts)


def without_foreign_tags(html: str) -> str:
    """``html`` without the ``<script src>`` and ``<link href>`` elements naming another host."""
    return _FOREIGN_TAG.sub("", html)


class OfflineStaticHandler(tornado.web.StaticFileHandler):
    """Luigi's static files, its stylesheets without ``@import`` of other hosts."""

    @classmethod
    def get_content(cls, abspath: str, start: int | None = None, end: int | None = None) -> Any:
        if not abspath.endswith(".css"):
            return super().get_content(abspath, start, end)
        return offline_css(abspath, os.path.getmtime(abspath))[start:end]

    def get_content_size(self) -> int:
        path = self.absolute_path
        if path is None or not path.endswith(".css"):
            return super().get_content_size()
        return len(offline_css(path, os.path.getmtime(path)))


@functools.lru_cache(maxsize=64)
def offline_css(path: str, mtime: float) -> bytes:
    """The stylesheet at ``path`` without foreign imports (cached per modification time)."""
    return _FOREIGN_IMPORT.sub(b"", Path(path).read_bytes())
