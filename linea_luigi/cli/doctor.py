"""``linea-luigi doctor``: the effective configuration, where each value came from, and checks.

One line per check (``✓`` or ``✗``), exit status 1 if any fails; nothing is
left behind (the storage probe is deleted). Credentials never show: URLs are
masked, storage_options show their keys only, and failures go through
``one_line``. The storage is probed directly rather than through a store, so
that a store that could not open still gets its storage checked.
"""

from __future__ import annotations

import click

from ..db.migrations import HEAD
from ..db.setup import status as db_status
from ..errors import ArtifactStoreError
from ..settings import Settings, explain
from ..settings.urls import mask_secrets, mask_url
from ..storage import ValueStorage, layout
from ..values.libraries import version_of
from ..values.parquet import EXTRA
from ..values.parquet import available as parquet_available
from .app import Options, main, one_line
from .cache import shown_settings as cache_settings

#: one doctor check: whether it passed, and its line
Check = tuple[bool, str]


@main.command()
@click.pass_context
def doctor(ctx: click.Context) -> None:
    """Show the effective configuration and where each value came from, then check it.

    One line per check; exit status 1 if any fails. Passwords are masked and
    storage_options show their keys only.
    """
    opts = Options.of(ctx)
    try:
        settings, origins = explain()
    except ArtifactStoreError as err:
        click.echo(f"✗ configuration: {one_line(err)}")
        ctx.exit(1)
    settings = opts.apply(settings)
    if opts.db_url is not None:
        origins["database_url"] = "command line --db-url"
    if opts.storage_dir is not None:
        origins["artifact_storage_dir"] = "command line --storage-dir"
    shown = {
        "database_url": mask_url(settings.database_url),
        "artifact_storage_dir": mask_secrets(settings.storage_dir),
        "storage_options": f"keys {sorted(settings.storage_options)}",
        "checksum": settings.checksum,
        "lock_timeout": f"{settings.lock_timeout:g} s",
        "serializer": f"{settings.serializer} ({formats()})",
        **cache_settings(settings),
        "dedup": "on" if settings.dedup else "off (every save keeps its own copy)",
        "task_lock": "on" if settings.task_lock else "off (tasks run unlocked)",
        "task_lock_timeout": (
            "none (waits while the holder lives)"
            if settings.task_lock_timeout is None
            else f"{settings.task_lock_timeout:g} s"
        ),
    }
    for key, value in shown.items():
        click.echo(f"{key:<21} {value}  ({origins[key]})")
    checks = [check_database(settings), *check_storage(settings)]
    for ok, line in checks:
        click.echo(f"{'✓' if ok else '✗'} {line}")
    if not all(ok for ok, _ in checks):
        ctx.exit(1)


def formats() -> str:
    """Whether data frames can be stored as Parquet here (pyarrow is an extra)."""
    version = version_of("pyarrow") if parquet_available() else None
    if version is None:
        return f"no pyarrow: data frames are pickled; {EXTRA} stores them as Parquet"
    return f"pyarrow {version}: data frames as Parquet, arrays as .npy"


def check_database(settings: Settings) -> Check:
    """Whether the database answers and is at this release's schema revision."""
    url = mask_url(settings.database_url)
    try:
        found = db_status(settings.database_url)
    except ArtifactStoreError as err:
        return False, f"database unreachable: {one_line(err)}"
    if found.revision == HEAD:
        return True, f"database reachable and migrated ({HEAD}): {url}"
    if found.revision is None:
        return False, f"database reachable but has no schema: run `linea-luigi migrate` ({url})"
    return False, (
        f"database at revision {found.revision}, this linea_luigi expects {HEAD}: run "
        f"`linea-luigi migrate`, or upgrade linea_luigi if the database is newer ({url})"
    )


def check_storage(settings: Settings) -> list[Check]:
    """Whether the storage takes a write, and whether it is the one the database is bound to."""
    try:
        storage = ValueStorage(settings.storage_dir, settings.storage_options)
    except ArtifactStoreError as err:  # a bad URL, or a server that cannot be reached
        return [(False, f"storage unreachable: {one_line(err)}")]
    try:
        probe = layout.probe_location()
        with storage.open_write(probe) as handle:
            handle.write(b"linea_luigi doctor")
        storage.delete(probe)
    except ArtifactStoreError as err:
        return [(False, f"storage not writable: {one_line(err)}")]
    root = storage.display_root
    checks = [(True, f"storage writable: {root}")]
    try:
        found = db_status(settings.database_url)
    except ArtifactStoreError:
        return checks  # reported by the database check
    if found.storage_root is None or found.storage_root == storage.root_uri:
        bound = (
            "matches the database" if found.storage_root else "not bound yet (first save binds it)"
        )
        checks.append((True, f"storage root {bound}: {root}"))
    elif not found.has_artifacts:
        checks.append(
            (True, f"storage root re-bound on next use (the database holds no artifact): {root}")
        )
    else:
        checks.append(
            (
                False,
                "storage root mismatch: the database belongs to "
                f"{mask_secrets(found.storage_root)}, the configuration says {root}; "
                "change artifact_storage_dir or database_url",
            )
        )
    return checks
