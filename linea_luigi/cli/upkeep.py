"""The commands that change the store: ``delete``, ``tag``, ``untag``, ``gc``, ``migrate``.

Deleting asks first (unless ``--yes``) and deletes exactly what it named:
"latest" is pinned to a version before the question. ``gc`` and ``delete``
leave the policy to the store; ``migrate`` only touches the schema.
"""

from __future__ import annotations

import sys

import click

from ..db.setup import migrate as migrate_schema
from ..errors import ArtifactStoreError
from ..model import human_size
from ..names import ALL, parse_version_text
from ..settings import resolve_settings
from ..settings.urls import mask_url, parse_db_url
from .app import Options, main, one_line
from .params import COUNT, parse_spec


@main.command()
@click.argument("name")
@click.option(
    "--version",
    "version",
    required=True,
    metavar="N|latest|all",
    help="Which version(s) to delete.",
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def delete(ctx: click.Context, name: str, version: str, yes: bool) -> None:
    """Delete one version, the latest or all versions of NAME (rows, then values).

    Answering no to the question is not a failure: "Nothing deleted.", status 0.
    """
    store = Options.of(ctx).store()
    spec = parse_version_text(version, allow_all=True)
    if spec == ALL:
        count = len(store.versions(name))
        if count == 0:  # NAME@ALIAS stands for its name; no name at all raises "no such name"
            name = store.get(name).name
            count = len(store.versions(name))
        what = f"all {count} version(s) of {name!r}"
    else:  # "latest" is pinned now, so what is confirmed is what gets deleted
        found = store.get(name, spec)
        name, spec = found.name, found.version
        what = f"{name!r} version {spec}"
    if not yes and not click.confirm(f"Delete {what}?", default=False, err=True):
        click.echo("Nothing deleted.")
        return
    deleted = store.delete(name, spec)
    click.echo(f"deleted {deleted} version(s) of {name!r}")


@main.command()
@click.option(
    "--db",
    "db_url",
    metavar="URL",
    help="Database to migrate (default: --db-url, else the configured database_url).",
)
@click.pass_context
def migrate(ctx: click.Context, db_url: str | None) -> None:
    """Create or upgrade the database schema to this release's revision.

    A database made before migrations existed is adopted in place. The storage
    root is bound at the first use of a store, not here.
    """
    db_url = db_url if db_url is not None else Options.of(ctx).db_url
    try:
        url = parse_db_url(db_url) if db_url is not None else resolve_settings().database_url
        click.echo(f"database: {mask_url(url)}")
        result = migrate_schema(url)
    except ArtifactStoreError as err:
        click.echo(f"error: {one_line(err)}", err=True)
        sys.exit(1)
    if result.adopted:
        before = "(created before migrations; adopted)"
    else:
        before = result.before or "(no schema)"
    click.echo(f"before:   {before}")
    click.echo(f"after:    {result.after}")
    click.echo("already up to date" if result.before == result.after else "migrated")


@main.command()
@click.argument("spec", metavar="NAME[:VERSION]")
@click.argument("alias")
@click.pass_context
def tag(ctx: click.Context, spec: str, alias: str) -> None:
    """Point NAME@ALIAS at a version (default latest), creating or moving the alias."""
    name, version = parse_spec(spec)
    artifact = Options.of(ctx).store().set_alias(name, version, alias)
    click.echo(f"{artifact.name}@{alias} -> version {artifact.version}")


@main.command()
@click.argument("name")
@click.argument("alias")
@click.pass_context
def untag(ctx: click.Context, name: str, alias: str) -> None:
    """Remove the alias NAME@ALIAS (the version itself stays)."""
    version = Options.of(ctx).store().remove_alias(name, alias)
    click.echo(f"removed {name}@{alias} (was version {version})")


@main.command()
@click.option("--keep-last", type=COUNT, help="Keep the N newest versions per name.")
@click.option(
    "--older-than", metavar="DURATION", help="Delete only versions older than this (7d, 12h)."
)
@click.option("--dry-run", is_flag=True, help="Only print what would be deleted.")
@click.option(
    "--include-inputs",
    is_flag=True,
    help="Also delete versions that kept artifacts were made from.",
)
@click.option(
    "--grace",
    metavar="DURATION",
    default="1h",
    show_default=True,
    help="Leave unreferenced values younger than this (a save may be in flight).",
)
@click.pass_context
def gc(
    ctx: click.Context,
    keep_last: int | None,
    older_than: str | None,
    dry_run: bool,
    include_inputs: bool,
    grace: str,
) -> None:
    """Delete old versions and orphan values; never the latest, an aliased one or a kept input.

    Without --keep-last or --older-than no version is deleted, only orphan values.
    """
    report = (
        Options.of(ctx)
        .store()
        .gc(keep_last, older_than, dry_run=dry_run, include_inputs=include_inputs, grace=grace)
    )
    verb = "would delete" if dry_run else "deleted"
    for a in report.versions:
        kept = "  (value shared with other versions: stays)" if a.location in report.shared else ""
        click.echo(f"{verb} {a.name} v{a.version}  {human_size(a.size_bytes)}  {a.uri}{kept}")
    for o in report.orphans:
        click.echo(f"{verb} orphan value  {human_size(o.size_bytes)}  {o.uri}")
    if report.young_orphans:
        click.echo(f"left {len(report.young_orphans)} unreferenced value(s) younger than {grace}")
    for uri in report.failed:
        click.echo(f"could not remove {uri} (removed by the next gc)", err=True)
    summary = (
        f"{len(report.versions)} version(s), {len(report.orphans)} orphan value(s), "
        f"{human_size(report.size_bytes)}"
    )
    click.echo(f"would free {summary} (dry run)" if dry_run else f"freed {summary}")
