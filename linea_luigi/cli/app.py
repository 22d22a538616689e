"""The ``linea-luigi`` group: global options, the store they select, and the error line.

Commands print results to stdout and failures as one line on stderr (our
exception's message, never a traceback). Exit status: 0 done, 1 failed,
2 bad usage. The store comes from the same configuration as the library
(``ll.artifact_store()``) unless ``--db-url`` / ``--storage-dir`` override it.
Only the store's public API is used, never the database directly.

The commands live in ``reading``, ``upkeep`` and ``doctor``; each registers on
``main`` when imported (``cli/__init__`` imports them). Every error a command
shows goes through ``one_line``: one line, credentials masked.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, replace
from typing import Any

import click

from ..errors import ArtifactStoreError
from ..settings import Settings, resolve_settings
from ..settings.urls import mask_secrets, parse_db_url
from ..store import ArtifactStore
from ..store.default import artifact_store


def one_line(message: str | BaseException) -> str:
    """An error's message as the CLI shows it: one line, credentials masked, advice as commands.

    Our errors give their next step as the ``linea-luigi`` command here
    (``ArtifactStoreError.for_cli``), not the Python call. Masking never spans
    whitespace, so masking before or after joining the lines gives the same text.
    """
    text = message.for_cli() if isinstance(message, ArtifactStoreError) else str(message)
    return " ".join(mask_secrets(text).split())


class Failure(click.ClickException):
    """One line on stderr, exit status 1 (click prints ``Error: <message>``)."""

    def __init__(self, message: str | BaseException) -> None:
        super().__init__(one_line(message))


class ErrorLineGroup(click.Group):
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
            raise Failure(err) from err
        except Exception as err:  # a bug or an unforeseen failure: still one line
            raise Failure(f"unexpected {type(err).__name__}: {err}") from err


@dataclass
class Options:
    """Global options, and the store they select (opened on first use)."""

    db_url: str | None
    storage_dir: str | None
    _store: ArtifactStore | None = field(default=None, repr=False)

    @classmethod
    def of(cls, ctx: click.Context) -> Options:
        """The options ``main`` set for the command running in ``ctx``."""
        obj = ctx.find_object(cls)
        assert obj is not None  # set by ``main`` for every subcommand
        return obj

    def apply(self, settings: Settings) -> Settings:
        """``settings`` with ``--db-url`` / ``--storage-dir`` in place of their values."""
        if self.db_url is not None:
            settings = replace(settings, database_url=parse_db_url(self.db_url))
        if self.storage_dir is not None:
            settings = replace(settings, storage_dir=self.storage_dir)
        return settings

    def store(self) -> ArtifactStore:
        if self._store is None:
            if self.db_url is None and self.storage_dir is None:
                self._store = artifact_store()
            else:
                self._store = ArtifactStore.from_settings(self.apply(resolve_settings()))
        return self._store


@click.group(cls=ErrorLineGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
    ctx.obj = Options(db_url, storage_dir)
