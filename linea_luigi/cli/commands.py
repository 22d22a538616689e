"""The command line: ``linea-luigi <command>`` (also ``python -m linea_luigi``).

Commands print results to stdout and failures as one line on stderr (our
exception's message, never a traceback). Exit status: 0 done, 1 failed,
2 bad usage. The store comes from the same configuration as the library
(``ll.artifact_store()``) unless ``--db-url`` / ``--storage-dir`` override it.
Only the store's public API is used, never the database directly.
"""

from __future__ import annotations

import os
import pickle
import reprlib
import sys
from dataclasses import dataclass, field, replace
from typing import Any

import click

from .. import globs
from ..db.migrations import HEAD
from ..db.setup import migrate as migrate_schema
from ..db.setup import status as db_status
from ..errors import ArtifactStoreError, InvalidArgumentError, SerializationError, StorageError
from ..model import Artifact, human_size
from ..names import ALL, LATEST, parse_count, parse_version_text
from ..settings import Settings, explain, resolve_settings
from ..settings.urls import mask_secrets, mask_url, parse_db_url
from ..storage import ValueStorage, layout
from ..store import ArtifactStore
from ..store.default import artifact_store
from ..values import progress
from ..web import documents
from . import render

#: longest repr ``get`` prints without ``-o``
REPR_LIMIT = 2000
#: names per query when listing: memory stays flat however many names there are
PAGE_SIZE = 1000


class _Failure(click.ClickException):
    """One line on stderr, exit status 1 (click prints ``Error: <message>``)."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


class _Group(click.Group):
    """Turns our errors (and any other) into one line on stderr instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except BrokenPipeError:  # `linea-luigi list | head`: the reader has all it wanted
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # so the exit-time flush cannot fail again
            sys.exit(1)
        except ArtifactStoreError as err:
            raise _Failure(mask_secrets(str(err))) from err
        except Exception as err:  # a bug or an unforeseen failure: still one line
            raise _Failure(mask_secrets(f"unexpected {type(err).__name__}: {err}")) from err


@dataclass
class _Options:
    """Global options, and the store they select (opened on first use)."""

    db_url: str | None
    storage_dir: str | None
    _store: ArtifactStore | None = field(default=None, repr=False)

    def store(self) -> ArtifactStore:
        if self._store is None:
            if self.db_url is None and self.storage_dir is None:
                self._store = artifact_store()
            else:
                s = resolve_settings()
                self._store = ArtifactStore.from_settings(
                    Settings.create(
                        self.db_url if self.db_url is not None else s.database_url,
                        self.storage_dir if self.storage_dir is not None else s.storage_dir,
                        s.storage_options,
                        s.checksum,
                        s.lock_timeout,
                    )
                )
        return self._store


def parse_spec(spec: str) -> tuple[str, int | str]:
    """``NAME`` or ``NAME:VERSION`` (VERSION an int or ``latest``), strictly.

    ``NAME@ALIAS`` is passed through whole, for ``store.get`` to resolve.
    """
    if "@" in spec:
        return spec, LATEST
    name, colon, text = spec.rpartition(":")
    if not colon:
        return spec, LATEST
    if not name:
        raise InvalidArgumentError(f"{spec!r} has no name before ':' (expected NAME[:VERSION]).")
    try:
        return name, parse_version_text(text)
    except InvalidArgumentError as err:
        raise InvalidArgumentError(
            f"Bad version in {spec!r}: {err} (expected NAME[:VERSION]; a name containing "
            f"':' needs its version spelled out, e.g. '{spec}:latest')."
        ) from err


def _get(store: ArtifactStore, spec: str) -> Artifact:
    name, version = parse_spec(spec)
    return store.get(name) if "@" in spec else store.get(name, version)


def _opts(ctx: click.Context) -> _Options:
    obj = ctx.find_object(_Options)
    assert obj is not None  # set by ``main`` for every subcommand
    return obj


def _write_artifacts(artifacts: Any, as_json: bool) -> None:
    if as_json:
        render.stream_json_array((documents.artifact_json(a) for a in artifacts), _out)
        click.echo()
    else:
        render.stream_table(
            (render.table_row(a) for a in artifacts), render.TABLE_COLUMNS, click.echo
        )


def _out(text: str) -> None:
    click.echo(text, nl=False)


class _Count(click.types.IntParamType):
    """A whole number in ASCII digits, at most a BIGINT: a usage error otherwise.

    click's ``int`` takes '٣', ' 1' and '1_0', and any size; a bad count is
    refused here, before it reaches the store.
    """

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        try:
            return parse_count(value, "it")
        except InvalidArgumentError as err:
            self.fail(str(err), param, ctx)


_COUNT = _Count()
_JSON = click.option("--json", "as_json", is_flag=True, help="Print one JSON array of objects.")


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db-url", metavar="URL", help="Metadata database (default: the configured database_url)."
)
@click.option(
    "--storage-dir",
    metavar="PATH|URL",
    help="Value storage folder or fsspec URL (default: the configured artifact_storage_dir).",
)
@click.version_option(package_name="linea-luigi")
@click.pass_context
def main(ctx: click.Context, db_url: str | None, storage_dir: str | None) -> None:
    """linea_luigi: versioned artifacts for Luigi pipelines.

    Artifacts are named NAME, NAME:VERSION (an int or "latest") or NAME@ALIAS.
    """
    ctx.obj = _Options(db_url, storage_dir)


class _Glob(click.types.StringParamType):
    """A name glob: an invalid or too costly one is a usage error, before the store opens."""

    name = "glob"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = super().convert(value, param, ctx)
        try:
            globs.parse(text)
        except InvalidArgumentError as err:
            self.fail(str(err), param, ctx)
        return text


@main.command("list")
@click.argument("pattern", required=False, type=_Glob())
@_JSON
@click.pass_context
def list_(ctx: click.Context, pattern: str | None, as_json: bool) -> None:
    """The latest version of every name, sorted; PATTERN is a glob (e.g. 'model*')."""
    _write_artifacts(_opts(ctx).store().iter_list(pattern, page_size=PAGE_SIZE), as_json)


@main.command()
@click.argument("name")
@_JSON
@click.pass_context
def versions(ctx: click.Context, name: str, as_json: bool) -> None:
    """Every version of NAME, oldest first."""
    store = _opts(ctx).store()
    found = store.versions(name)
    if not found:
        store.get(name)  # raises the helpful "no such name, did you mean" error
    _write_artifacts(found, as_json)


@main.command()
@click.argument("spec", metavar="NAME[:VERSION]")
@_JSON
@click.pass_context
def show(ctx: click.Context, spec: str, as_json: bool) -> None:
    """Everything recorded about one version: storage, task, lineage, runs."""
    store = _opts(ctx).store()
    a = _get(store, spec)
    up = store.upstream(a.name, a.version)
    down = store.downstream(a.name, a.version)
    runs = store.task_runs(a.name, a.version)
    if as_json:
        aliases = sorted(k for k, v in store.aliases(a.name).items() if v == a.version)
        doc = documents.detail_json(a, up, down, runs, aliases)
        render.stream_json_array([doc], _out)
        click.echo()
        return
    rows = [
        ("name", a.name),
        ("version", str(a.version)),
        ("created", documents.iso_utc(a.created_at) or "-"),
        ("location", a.uri),
        ("size", f"{human_size(a.size_bytes)} ({a.size_bytes} bytes)"),
        ("digest", a.digest),
        ("serializer", a.serializer),
        ("python", a.python_version),
        ("task family", a.task_family or "-"),
        ("task_id", a.task_id or "-"),
        ("identity key", a.identity_key or "-"),
    ]
    for key, value in rows:
        click.echo(f"{key + ':':<14}{value}")
    _section("params", [f"{k} = {v}" for k, v in sorted((a.params or {}).items())])
    _section("upstream", [f"{u.name}:{u.version}" for u in up])
    _section("downstream", [f"{d.name}:{d.version}" for d in down])
    _section(
        "runs",
        [
            f"#{r.record_id} {r.status or '?'} on {r.host or '?'}, started "
            f"{documents.iso_utc(r.started_at) or '-'}, "
            f"finished {documents.iso_utc(r.finished_at) or '-'}"
            for r in runs
        ],
    )


def _section(title: str, lines: list[str]) -> None:
    click.echo(f"{title + ':':<14}{'' if lines else '(none)'}")
    for line in lines:
        click.echo(f"  {line}")


@main.command()
@click.argument("spec", metavar="NAME[:VERSION]")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    help="Write the value to FILE: bytes/str raw, numpy arrays as .npy, anything else pickled.",
)
@click.pass_context
def get(ctx: click.Context, spec: str, output: str | None) -> None:
    """Load a value: print a short repr, or write it to a file with -o."""
    store = _opts(ctx).store()
    a = _get(store, spec)
    progress.force(sys.stderr.isatty())  # a bar for a person at a terminal, none in pipes
    try:
        value = store.load_artifact(a)
    finally:
        progress.force(None)
    if output is None:
        click.echo(_bounded_repr(value))
        return
    data, kind = _encode(value)
    try:
        with open(output, "wb") as handle:
            handle.write(data)
    except OSError as err:
        raise StorageError(f"Could not write {output}: {err.strerror or err}.") from err
    click.echo(f"wrote {a.name}:{a.version} to {output} ({kind}, {human_size(len(data))})")


def _bounded_repr(value: Any) -> str:
    """A repr that stays short for huge values (containers and strings are elided)."""
    short = reprlib.Repr()
    short.maxstring = short.maxother = 200
    short.maxlist = short.maxtuple = short.maxdict = short.maxset = 20
    text = short.repr(value)
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.ndarray):
        with numpy.printoptions(threshold=50, edgeitems=3):
            text = repr(value)
    return text if len(text) <= REPR_LIMIT else text[: REPR_LIMIT - 1] + "…"


def _encode(value: Any) -> tuple[bytes, str]:
    """The file bytes for a value, and what format they are in."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value), "raw bytes"
    if isinstance(value, str):
        return value.encode("utf-8"), "UTF-8 text"
    numpy = sys.modules.get("numpy")  # loaded if the value holds arrays; never imported here
    if numpy is not None and isinstance(value, numpy.ndarray):
        import io

        buffer = io.BytesIO()
        numpy.save(buffer, value, allow_pickle=False)
        return buffer.getvalue(), "numpy .npy"
    try:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL), "pickle"
    except Exception as err:
        raise SerializationError(
            f"The value ({type(value).__name__}) cannot be written as a plain pickle: {err}. "
            "Load it in Python with ll.load() instead."
        ) from err


@main.command()
@click.argument("spec", metavar="NAME[:VERSION]")
@click.option("--downstream", is_flag=True, help="Show what was made from it instead.")
@click.option("--depth", type=_COUNT, default=None, help="Levels to show (default: all).")
@click.pass_context
def lineage(ctx: click.Context, spec: str, downstream: bool, depth: int | None) -> None:
    """The artifacts a version was made from (or, with --downstream, made from it), as a tree."""
    store = _opts(ctx).store()
    root = _get(store, spec)
    related = store.downstream if downstream else store.upstream
    for line in render.draw_tree(root, lambda a: related(a.name, a.version), depth):
        click.echo(line)


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
    """Delete one version, the latest or all versions of NAME (rows, then values)."""
    store = _opts(ctx).store()
    spec = parse_version_text(version, allow_all=True)
    if spec == ALL:
        count = len(store.versions(name))
        if count == 0:
            store.get(name)  # raises the helpful "no such name" error
        what = f"all {count} version(s) of {name!r}"
    else:  # "latest" is pinned now, so what is confirmed is what gets deleted
        spec = store.get(name, spec).version
        what = f"{name!r} version {spec}"
    if not yes and not click.confirm(f"Delete {what}?", default=False, err=True):
        raise _Failure("Nothing deleted.")
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
    db_url = db_url if db_url is not None else _opts(ctx).db_url
    try:
        url = parse_db_url(db_url) if db_url is not None else resolve_settings().database_url
        click.echo(f"database: {mask_url(url)}")
        result = migrate_schema(url)
    except ArtifactStoreError as err:
        click.echo(f"error: {_one_line(err)}", err=True)
        sys.exit(1)
    if result.adopted:
        before = "(created before migrations; adopted)"
    else:
        before = result.before or "(no schema)"
    click.echo(f"before:   {before}")
    click.echo(f"after:    {result.after}")
    click.echo("already up to date" if result.before == result.after else "migrated")


# -- aliases, garbage collection, doctor ----------------------------------------------------


@main.command()
@click.argument("spec", metavar="NAME[:VERSION]")
@click.argument("alias")
@click.pass_context
def tag(ctx: click.Context, spec: str, alias: str) -> None:
    """Point NAME@ALIAS at a version (default latest), creating or moving the alias."""
    name, version = parse_spec(spec)
    artifact = _opts(ctx).store().set_alias(name, version, alias)
    click.echo(f"{artifact.name}@{alias} -> version {artifact.version}")


@main.command()
@click.argument("name")
@click.argument("alias")
@click.pass_context
def untag(ctx: click.Context, name: str, alias: str) -> None:
    """Remove the alias NAME@ALIAS (the version itself stays)."""
    version = _opts(ctx).store().remove_alias(name, alias)
    click.echo(f"removed {name}@{alias} (was version {version})")


@main.command()
@click.option("--keep-last", type=_COUNT, help="Keep the N newest versions per name.")
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
        _opts(ctx)
        .store()
        .gc(keep_last, older_than, dry_run=dry_run, include_inputs=include_inputs, grace=grace)
    )
    verb = "would delete" if dry_run else "deleted"
    for a in report.versions:
        click.echo(f"{verb} {a.name} v{a.version}  {human_size(a.size_bytes)}  {a.uri}")
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


@main.command()
@click.pass_context
def doctor(ctx: click.Context) -> None:
    """Show the effective configuration and where each value came from, then check it.

    One line per check; exit status 1 if any fails. Passwords are masked and
    storage_options show their keys only.
    """
    opts = _opts(ctx)
    try:
        settings, origins = explain()
    except ArtifactStoreError as err:
        click.echo(f"✗ configuration: {_one_line(err)}")
        ctx.exit(1)
    if opts.db_url is not None:
        settings = replace(settings, database_url=parse_db_url(opts.db_url))
        origins["database_url"] = "command line --db-url"
    if opts.storage_dir is not None:
        settings = replace(settings, storage_dir=opts.storage_dir)
        origins["artifact_storage_dir"] = "command line --storage-dir"
    shown = {
        "database_url": mask_url(settings.database_url),
        "artifact_storage_dir": mask_secrets(settings.storage_dir),
        "storage_options": f"keys {sorted(settings.storage_options)}",
        "checksum": settings.checksum,
        "lock_timeout": f"{settings.lock_timeout:g} s",
    }
    for key, value in shown.items():
        click.echo(f"{key:<21} {value}  ({origins[key]})")
    checks = [_check_database(settings), *_check_storage(settings)]
    for ok, line in checks:
        click.echo(f"{'✓' if ok else '✗'} {line}")
    if not all(ok for ok, _ in checks):
        ctx.exit(1)


def _check_database(settings: Settings) -> tuple[bool, str]:
    url = mask_url(settings.database_url)
    try:
        found = db_status(settings.database_url)
    except ArtifactStoreError as err:
        return False, f"database unreachable: {_one_line(err)}"
    if found.revision == HEAD:
        return True, f"database reachable and migrated ({HEAD}): {url}"
    if found.revision is None:
        return False, f"database reachable but has no schema: run `linea-luigi migrate` ({url})"
    return False, (
        f"database at revision {found.revision}, this linea_luigi expects {HEAD}: run "
        f"`linea-luigi migrate`, or upgrade linea_luigi if the database is newer ({url})"
    )


def _one_line(err: ArtifactStoreError) -> str:
    """An error's message for a ``doctor`` line: one line, credentials masked."""
    return mask_secrets(" ".join(str(err).split()))


def _check_storage(settings: Settings) -> list[tuple[bool, str]]:
    try:
        storage = ValueStorage(settings.storage_dir, settings.storage_options)
    except ArtifactStoreError as err:  # a bad URL, or a server that cannot be reached
        return [(False, f"storage unreachable: {_one_line(err)}")]
    try:
        probe = layout.probe_location()
        with storage.open_write(probe) as handle:
            handle.write(b"linea_luigi doctor")
        storage.delete(probe)
    except ArtifactStoreError as err:
        return [(False, f"storage not writable: {_one_line(err)}")]
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
            (
                True,
                f"storage root re-bound on next use (the database holds no artifact): {root}",
            )
        )
    else:
        checks.append(
            (
                False,
                (
                    "storage root mismatch: the database belongs to "
                    f"{mask_secrets(found.storage_root)}, the configuration says {root}; "
                    "change artifact_storage_dir or "
                    "database_url"
                ),
            )
        )
    return checks
