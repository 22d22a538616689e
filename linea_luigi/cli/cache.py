"""``linea-luigi cache``: the local cache of remote values (``storage.cache``); ``cache clear``.

The folder and cap come from the same configuration as the library
(``cache_dir``, ``cache_max_bytes``); whether the configured storage uses
the cache is the store's rule (remote storage only). Nothing here needs the
database, and showing the cache creates nothing.
"""

from __future__ import annotations

import click

from ..errors import ArtifactStoreError
from ..model import human_size
from ..settings import Settings, resolve_settings
from ..settings.parsing import CACHE_OFF
from ..storage import ValueStorage
from ..storage.cache import ValueCache, folder_of, is_remote
from .app import Failure, Options, main, one_line


def configured(ctx: click.Context) -> tuple[Settings, ValueCache | None]:
    """The settings (with ``--storage-dir``) and their cache folder (None: ``cache_dir = none``)."""
    settings = Options.of(ctx).apply(resolve_settings())
    folder = folder_of(settings)
    return settings, None if folder is None else ValueCache(folder, settings.cache_max_bytes)


def used_for(settings: Settings) -> str:
    """Whether the configured storage reads through the cache, and why."""
    try:
        values = ValueStorage(settings.storage_dir, settings.storage_options)
    except ArtifactStoreError as err:
        return f"unknown: the storage cannot be opened ({one_line(err)})"
    if is_remote(values):
        return f"on for {values.display_root}"
    return f"off for {values.display_root}: local storage is read directly"


def cap_line(cache: ValueCache) -> str:
    """The cap, and where it came from."""
    if cache.explicit_cap:
        return f"{human_size(cache.max_bytes)} (cache_max_bytes)"
    return f"{human_size(cache.max_bytes)} (10 % of the free space there, at most 10 GiB)"


def entries(count: int) -> str:
    return f"{count} {'entry' if count == 1 else 'entries'}"


def shown_settings(settings: Settings) -> dict[str, str]:
    """``doctor``'s lines for the cache settings: the folder (or off) and the cap."""
    folder = folder_of(settings)
    if folder is None:
        return {"cache_dir": f"off ({CACHE_OFF})", "cache_max_bytes": "-"}
    found = ValueCache(folder, settings.cache_max_bytes)
    return {"cache_dir": f"{folder} (remote storage only)", "cache_max_bytes": cap_line(found)}


@main.group(invoke_without_command=True)
@click.pass_context
def cache(ctx: click.Context) -> None:
    """Show the local cache of remote values; `cache clear` empties it.

    Prints its folder, whether the configured storage uses it, its size and
    entries, and its cap. Loads and saves on remote storage keep a copy
    there, verified on every use; least recently used copies go first;
    cache_dir = none turns it off.
    """
    if ctx.invoked_subcommand is not None:
        return
    settings, found = configured(ctx)
    if found is None:
        click.echo(f"cache     off (cache_dir = {CACHE_OFF})")
        return
    stats = found.stats()
    click.echo(f"folder    {found.folder}")
    click.echo(f"used      {used_for(settings)}")
    click.echo(f"size      {human_size(stats.size_bytes)} in {entries(stats.entries)}")
    click.echo(f"cap       {cap_line(found)}")


@cache.command()
@click.pass_context
def clear(ctx: click.Context) -> None:
    """Remove every entry of the cache (values stay in storage)."""
    _, found = configured(ctx)
    if found is None:
        click.echo(f"cache off (cache_dir = {CACHE_OFF}): nothing to clear")
        return
    removed = found.clear()
    click.echo(
        f"removed {entries(removed.entries)} ({human_size(removed.size_bytes)}) from {found.folder}"
    )
    left = found.stats()
    if left.entries:
        raise Failure(
            f"{entries(left.entries)} ({human_size(left.size_bytes)}) could not be removed from "
            f"{found.folder}: check its permissions."
        )
