"""``linea-luigid``: Luigi's central scheduler, with linea_luigi's task history.

The same options, handlers and visualiser as ``luigid`` (``luigi.cmdline.luigid``).
The one difference: with ``[scheduler] record_task_history = true`` the
scheduler records into ``linea_luigi.DbTaskHistory`` (SQLAlchemy 2, psycopg2,
the artifact database by default) instead of Luigi's, which fails on
SQLAlchemy 2.1. Without it, it schedules exactly as ``luigid``.

It also serves the artifact browser (``linea_luigi.web``) under ``/artifacts``
and ``/api/artifacts``, read-only, on the same port, and Luigi's pages through
``luigi_pages``: HEAD answered, a 404 that explains when history is off, no
asset fetched from another host. It warns at start when the state file's
folder is missing (Luigi only says so at shutdown, when the state is lost).

How it is injected, without patching Luigi: ``Scheduler`` takes a
``task_history_impl`` that overrides the config, so we build
``Scheduler(task_history_impl=DbTaskHistory())``; Luigi's ``server.app``
builds the tornado application with all of Luigi's handlers, we adapt them
and add the browser's rules to it, then run the few steps of ``luigi.server.run`` (which
cannot take extra handlers). The scheduler is built inside the served
process (after ``--background`` has forked), so no database connection
crosses a fork.

A history database that cannot be reached or created stops the scheduler at
start with a one-line error, as ``luigid`` stops when its history fails; once
running, history errors are logged by the scheduler and never stop it.
"""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from .. import web
from ..errors import ArtifactStoreError
from ..settings import resolve_settings
from ..settings.urls import mask_secrets
from . import luigi_pages

log = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: parse luigid's options, then serve (or daemonize and serve)."""
    import luigi.configuration
    import luigi.process
    from luigi.setup_logging import DaemonLogging

    parser = argparse.ArgumentParser(
        prog="linea-luigid",
        description="Central luigi server, recording task history with linea_luigi",
    )
    parser.add_argument("--background", help="Run in background mode", action="store_true")
    parser.add_argument("--pidfile", help="Write pidfile")
    parser.add_argument("--logdir", help="log directory")
    parser.add_argument("--state-path", help="Pickled state file")
    parser.add_argument("--address", help="Listening interface")
    parser.add_argument("--unix-socket", help="Unix socket path")
    parser.add_argument("--port", default=8082, type=int, help="Listening port")
    opts = parser.parse_args(sys.argv[1:] if argv is None else list(argv))

    if opts.state_path:
        luigi.configuration.get_config().set("scheduler", "state_path", opts.state_path)  # type: ignore[no-untyped-call]
    DaemonLogging.setup(opts)  # type: ignore[no-untyped-call]
    if opts.background:
        luigi.process.daemonize(  # type: ignore[no-untyped-call]
            serve,
            api_port=opts.port,
            address=opts.address,
            pidfile=opts.pidfile,
            logdir=opts.logdir,
            unix_socket=opts.unix_socket,
        )
    else:
        serve(api_port=opts.port, address=opts.address, unix_socket=opts.unix_socket)


def serve(api_port: int = 8082, address: str | None = None, unix_socket: str | None = None) -> None:
    """Run Luigi's server with our scheduler and the artifact browser.

    The signature ``luigi.process.daemonize`` calls. This is the sequence of
    ``luigi.server.run`` (load state, listen, prune every minute, dump state
    on exit), written out because ``run`` offers no way to add handlers to
    the tornado application it builds: we take Luigi's own ``app(scheduler)``
    and add the browser's rules in front of its catch-all ``/api/(.*)``.
    """
    import luigi.scheduler
    import luigi.server
    import tornado.httpserver
    import tornado.ioloop
    import tornado.netutil

    try:
        scheduler = build_scheduler() or luigi.scheduler.Scheduler()  # type: ignore[no-untyped-call]
        catalog = build_catalog(scheduler)
    except ArtifactStoreError as err:
        message = mask_secrets(str(err))
        log.error("linea-luigid cannot start: %s", message)
        raise SystemExit(f"linea-luigid: {message}") from None
    warn_if_state_unsaved()
    scheduler.load()
    history = catalog.history_url is not None
    application = luigi.server.app(scheduler)  # type: ignore[no-untyped-call]
    luigi_pages.adapt(application, history=history)
    application.add_handlers(r".*", web.routes(catalog, history_pages=history))
    if unix_socket is not None:
        sockets = [tornado.netutil.bind_unix_socket(unix_socket)]
    else:
        sockets = tornado.netutil.bind_sockets(api_port, address=address)
    tornado.httpserver.HTTPServer(application).add_sockets(sockets)
    tornado.ioloop.PeriodicCallback(scheduler.prune, 60_000).start()

    stopped: list[bool] = []

    def stop(signum: int = 0, frame: Any = None) -> None:
        if not stopped:  # once: a signal exits, and exiting runs atexit
            stopped.append(True)
            log.info("Scheduler instance shutting down")
            scheduler.dump()
            tornado.ioloop.IOLoop.current().stop()
        if signum:
            sys.exit(0)

    atexit.register(stop)
    for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGQUIT", None)):
        if sig is not None:
            signal.signal(sig, stop)
    log.info("Scheduler starting up; artifacts browsable at /artifacts")
    tornado.ioloop.IOLoop.current().start()


def warn_if_state_unsaved() -> None:
    """Say at start, not only at shutdown, when the scheduler's state cannot be saved.

    Luigi creates no folder for ``[scheduler] state_path`` and logs "Failed saving
    scheduler state" when it stops, after the state is lost.
    """
    import luigi.scheduler

    path = os.path.abspath(luigi.scheduler.scheduler().state_path)  # type: ignore[no-untyped-call]
    folder = os.path.dirname(path)
    if not (os.path.isdir(folder) and os.access(folder, os.W_OK)):
        log.warning(
            "The scheduler's state will not be saved: the folder of [scheduler] state_path %s "
            "is missing or not writable. Create it, or set state_path (or --state-path) to a "
            "file in a folder this user can write.",
            path,
        )


def build_catalog(scheduler: Any) -> web.Catalog:
    """What the browser reads: the artifact database, and the history if one is recorded."""
    from .history import DbTaskHistory

    history = getattr(scheduler, "_task_history", None)
    history_url = history.url if isinstance(history, DbTaskHistory) else None
    settings = resolve_settings()  # storage_options: how previews reach the recorded storage
    return web.Catalog(settings.database_url, history_url, settings.storage_options or None)


def build_scheduler() -> Any:
    """``Scheduler`` with our history when the config asks for history, else ``None``.

    ``None`` lets ``luigi.server.run`` build its default ``Scheduler()``, so
    without ``record_task_history`` nothing differs from ``luigid``.
    """
    import luigi.scheduler

    from .history import DbTaskHistory

    if not luigi.scheduler.scheduler().record_task_history:  # type: ignore[no-untyped-call]
        return None
    history = DbTaskHistory()
    history.ensure_schema()
    log.info("Recording task history in %r", history)
    return luigi.scheduler.Scheduler(task_history_impl=history)  # type: ignore[no-untyped-call]


if __name__ == "__main__":
    main()
