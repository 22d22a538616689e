"""The command line: ``python -m linea_luigi <command>``.

Commands print results to stdout and failures as one line on stderr (our
exception's message, never a traceback). Exit status: 0 done, 1 failed,
2 bad usage.
"""

from __future__ import annotations

import sys

import click

from .config import resolve_settings
from .db.setup import migrate as migrate_schema
from .errors import ArtifactStoreError
from .urls import mask_url, parse_db_url


@click.group()
def main() -> None:
    """linea_luigi: versioned artifacts for Luigi pipelines."""


@main.command()
@click.option(
    "--db",
    "db_url",
    metavar="URL",
    help="Database to migrate (default: the configured database_url).",
)
def migrate(db_url: str | None) -> None:
    """Create or upgrade the database schema to this release's revision.

    A database made before migrations existed is adopted in place. The storage
    root is bound at the first use of a store, not here.
    """
    try:
        url = parse_db_url(db_url) if db_url is not None else resolve_settings().database_url
        click.echo(f"database: {mask_url(url)}")
        result = migrate_schema(url)
    except ArtifactStoreError as err:
        click.echo(f"error: {' '.join(str(err).split())}", err=True)
        sys.exit(1)
    if result.adopted:
        before = "(created before migrations; adopted)"
    else:
        before = result.before or "(no schema)"
    click.echo(f"before:   {before}")
    click.echo(f"after:    {result.after}")
    click.echo("already up to date" if result.before == result.after else "migrated")
