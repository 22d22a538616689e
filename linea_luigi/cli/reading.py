"""The commands that only read: ``list``, ``versions``, ``show``, ``get``, ``lineage``.

Each asks the store and hands the records to ``render``; nothing here writes
to the store. Listings are paged (``PAGE_SIZE`` names per query) and streamed,
so memory stays flat however many names there are. ``get`` never imports
numpy: it uses it only if the loaded value already did.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import reprlib
import shlex
import sys
from collections.abc import Iterable, Iterator

import click

from ..errors import InvalidArgumentError, SerializationError, StorageError
from ..model import Artifact, human_size
from ..store import ArtifactStore
from ..values import libraries, progress
from ..web import documents
from . import render
from .app import Options, main
from .params import COUNT, Glob, parse_spec

#: longest repr ``get`` prints without ``-o``
REPR_LIMIT = 2000
#: names per query when listing: memory stays flat however many names there are
PAGE_SIZE = 1000

_JSON = click.option("--json", "as_json", is_flag=True, help="Print one JSON array of objects.")


def _get(store: ArtifactStore, spec: str) -> Artifact:
    name, version = parse_spec(spec)
    return store.get(name) if "@" in spec else store.get(name, version)


def _out(text: str) -> None:
    click.echo(text, nl=False)


def _write_artifacts(artifacts: Iterable[Artifact], as_json: bool) -> None:
    if as_json:
        render.stream_json_array((documents.artifact_json(a) for a in artifacts), _out)
        click.echo()
    else:
        render.stream_table(
            (render.table_row(a) for a in artifacts), render.TABLE_COLUMNS, click.echo
        )


@main.command("list")
@click.argument("pattern", required=False, type=Glob())
@_JSON
@click.pass_context
def list_(ctx: click.Context, pattern: str | None, as_json: bool) -> None:
    """The latest version of every name, sorted; PATTERN is a glob (e.g. 'model*')."""
    _write_artifacts(Options.of(ctx).store().iter_list(pattern, page_size=PAGE_SIZE), as_json)


def _aliases_by_version(store: ArtifactStore, name: str) -> dict[int, list[str]]:
    """The aliases of ``name``, sorted, under the version each points at."""
    found: dict[int, list[str]] = {}
    for alias, version in store.aliases(name).items():  # sorted by alias
        found.setdefault(version, []).append(alias)
    return found


@main.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array, oldest first.")
@click.pass_context
def versions(ctx: click.Context, name: str, as_json: bool) -> None:
    """Every version of NAME, oldest first, with the aliases that point at each."""
    store = Options.of(ctx).store()
    found = store.versions(name)
    if not found:  # NAME@ALIAS stands for its name; no name at all raises "no such name"
        name = store.get(name).name
        found = store.versions(name)
    aliases = _aliases_by_version(store, name)
    if as_json:
        docs = (
            {**documents.artifact_json(a), "aliases": aliases.get(a.version, [])} for a in found
        )
        render.stream_json_array(docs, _out)
        click.echo()
        return
    rows = (render.version_row(a, aliases.get(a.version, [])) for a in found)
    render.stream_table(rows, render.VERSION_COLUMNS, click.echo)


@main.command()
@click.argument("spec", metavar="NAME[:VERSION]")
@click.option(
    "--json", "as_json", is_flag=True, help="Print the detail document (one JSON object)."
)
@click.pass_context
def show(ctx: click.Context, spec: str, as_json: bool) -> None:
    """Everything recorded about one version: storage, aliases, task, lineage, runs, a preview."""
    store = Options.of(ctx).store()
    a = _get(store, spec)
    up = store.upstream(a.name, a.version)
    down = store.downstream(a.name, a.version)
    runs = store.task_runs(a.name, a.version)
    preview = store.preview(a)
    aliases = _aliases_by_version(store, a.name).get(a.version, [])
    if as_json:  # the document of /api/artifacts/<name>/<version>
        click.echo(render.json_text(documents.detail_json(a, up, down, runs, aliases, preview)))
        return
    rows = [
        ("name", a.name),
        ("version", str(a.version)),
        ("aliases", ", ".join(aliases) or "-"),
        ("created", documents.iso_utc(a.created_at) or "-"),
        ("location", a.uri),
        ("size", f"{human_size(a.size_bytes)} ({a.size_bytes} bytes)"),
        ("digest", a.digest),
        ("value type", a.value_type or "- (saved before value types were recorded)"),
        ("serializer", a.serializer),
        ("libraries", documents.libraries_text(a.libraries)),
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
    _section("preview", list(render.preview_lines(preview)))


def _section(title: str, lines: list[str]) -> None:
    click.echo(f"{title + ':':<14}{'' if lines else '(none)'}")
    for line in lines:
        click.echo(f"  {line}")


#: serializers whose stored file ``get -o`` writes as it is: (extension, what it is)
STORED_FILES = {"parquet": (".parquet", "a Parquet file"), "npy": (".npy", "a numpy .npy file")}
#: extensions that promise a format: ``get -o`` refuses to write another format under them
CHECKED_EXTENSIONS = (".parquet", ".npy", ".pkl")


@main.command()
@click.argument("spec", metavar="NAME[:VERSION]")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    help="Write the value to FILE: Parquet and .npy artifacts as their stored file (verified "
    "first), bytes/str raw, numpy arrays as .npy, anything else pickled.",
)
@click.pass_context
def get(ctx: click.Context, spec: str, output: str | None) -> None:
    """Load a value: print a short repr, or write it to a file with -o."""
    store = Options.of(ctx).store()
    a = _get(store, spec)
    stored = STORED_FILES.get(a.serializer)
    if output is not None and stored is not None:
        _check_extension(output, a, a.value_type or "value", *stored)
        with _progress():
            data: bytes | memoryview = store.read_bytes(a)  # size and digest verified
        kind = f"{stored[1]} as stored"
    else:
        with _progress():
            value = store.load_artifact(a)
        if output is None:
            click.echo(_bounded_repr(value))
            return
        data, fits, kind = _encode(value, a)
        _check_extension(output, a, _type_name(a, value), fits, kind)
    _write(output, data)
    click.echo(f"wrote {a.name}:{a.version} to {output} ({kind}, {human_size(len(data))})")


@contextlib.contextmanager
def _progress() -> Iterator[None]:
    """A progress bar for a person at a terminal, none in pipes."""
    progress.force(sys.stderr.isatty())
    try:
        yield
    finally:
        progress.force(None)


def _type_name(a: Artifact, value: object) -> str:
    return a.value_type or libraries.value_type(value)


def _check_extension(output: str, a: Artifact, value_type: str, fits: str, kind: str) -> None:
    """Refuse ``output`` when its extension promises another format than ``kind``."""
    extension = os.path.splitext(output)[1].lower()
    if extension in CHECKED_EXTENSIONS and extension != fits:
        raise InvalidArgumentError(
            f"Will not write {a.name}:{a.version} to {output}: the value ({value_type}) is "
            f"written as {kind}, which fits the extension {fits}, not {extension}. "
            f"Name the file with {fits} (e.g. -o {a.name}{fits})."
        )


def _write(output: str, data: bytes | memoryview) -> None:
    """``data`` into ``output``; a file left half written is removed."""
    try:
        with open(output, "wb") as handle:
            handle.write(data)
    except OSError as err:
        with contextlib.suppress(OSError):
            os.remove(output)
        raise StorageError(f"Could not write {output}: {err.strerror or err}.") from err


def _bounded_repr(value: object) -> str:
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


def _encode(value: object, a: Artifact) -> tuple[bytes, str, str]:
    """The file bytes for ``a``'s value, the extension they fit, and what format they are in."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value), ".bin", "raw bytes"
    if isinstance(value, str):
        return value.encode("utf-8"), ".txt", "UTF-8 text"
    numpy = sys.modules.get("numpy")  # loaded if the value holds arrays; never imported here
    if numpy is not None and isinstance(value, numpy.ndarray) and not value.dtype.hasobject:
        buffer = io.BytesIO()
        numpy.save(buffer, value, allow_pickle=False)
        return buffer.getvalue(), ".npy", "numpy .npy"
    try:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL), ".pkl", "pickle"
    except Exception as err:
        raise SerializationError(
            f"The value ({type(value).__name__}) cannot be written as a plain pickle: {err}. "
            f"`linea-luigi get {shlex.quote(f'{a.name}:{a.version}')}` without -o prints its "
            "repr; only Python can load it whole (ll.load)."
        ) from err


@main.command()
@click.argument("spec", metavar="NAME[:VERSION]")
@click.option("--downstream", is_flag=True, help="Show what was made from it instead.")
@click.option("--depth", type=COUNT, default=None, help="Levels to show (default: all).")
@click.pass_context
def lineage(ctx: click.Context, spec: str, downstream: bool, depth: int | None) -> None:
    """The artifacts a version was made from (or, with --downstream, made from it), as a tree."""
    store = Options.of(ctx).store()
    root = _get(store, spec)
    related = store.downstream if downstream else store.upstream
    for line in render.draw_tree(root, lambda a: related(a.name, a.version), depth):
        click.echo(line)
