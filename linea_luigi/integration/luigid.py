"""``linea-luigid``: Luigi's central scheduler, with linea_luigi's task history.

The same options, handlers and visualiser as ``luigid`` (``luigi.cmdline.luigid``).
The one difference: with ``[scheduler] record_task_history = true`` the
scheduler records into ``linea_luigi.DbTaskHistory`` (SQLAlchemy 2, psycopg2,
the artifact database by default) instead of Luigi's, which fails on
SQLAlchemy 2.1. Without it, this is exactly ``luigid``.

How it is injected: ``luigi.server.run`` takes an optional ``scheduler`` and
only builds ``Scheduler()`` itself when given none, and ``Scheduler`` takes a
``task_history_impl`` that overrides the config. So we build
``Scheduler(task_history_impl=DbTaskHistory())`` and hand it to Luigi's own
``run``: no patching, and Luigi keeps owning state loading, pruning, signals
and the tornado app. The scheduler is built inside the served process (after
``--background`` has forked), so no database connection crosses a fork.

A history database that cannot be reached or created stops the scheduler at
start with a one-line error, as ``luigid`` stops when its history fails; once
running, history errors are logged by the scheduler and never stop it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from ..errors import ArtifactStoreError

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
    """Run Luigi's server with our scheduler; the signature ``luigi.process.daemonize`` calls."""
    import luigi.server

    try:
        scheduler = build_scheduler()
    except ArtifactStoreError as err:
        log.error("linea-luigid cannot start: %s", err)
        raise SystemExit(f"linea-luigid: {err}") from None
    luigi.server.run(  # type: ignore[no-untyped-call]
        api_port=api_port, address=address, unix_socket=unix_socket, scheduler=scheduler
    )


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
