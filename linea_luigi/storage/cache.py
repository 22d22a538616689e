"""A local cache of remote values: keyed by digest, verified on every hit, shared by processes.

Values are immutable and named by their digest, so an entry can never be
stale, only damaged; every hit is therefore checked (size, then the digest,
hashed while the file is read) before a byte reaches a parser, and a damaged
entry is removed, logged and reported as a miss (the caller reads storage).

The folder::

    v1/<algorithm>/<2 hex>/<hex>   an entry: exactly the stored value's bytes
    v1/tmp/<32 hex>.part           a copy being written (never an entry's name)

The promises, and how they are kept:

- An entry appears whole and only with bytes that matched its digest: a copy
  is written under ``v1/tmp`` and renamed into place (``os.replace``, atomic
  within the folder's filesystem) after the caller compared the digest. A
  save's copy cannot be written beside its entry: its digest is known last.
  Nothing is synced to disk: an entry a crash damaged fails its check.
- Processes share the folder: each copy has its own temporary file; of two
  copies of one value the first published stays (a rename racing it puts
  the same bytes); eviction only unlinks, so a reader that opened an entry
  keeps reading it (POSIX).
- Least recently used first: a hit sets the entry's mtime; after an entry is
  added the folder is scanned (the first time in a process, then once this
  process added a 16th of the cap, 30 s passed, or its estimate of the total
  exceeds the cap) and the oldest entries go until the total fits, never the
  one just added; copies abandoned by killed processes (over an hour old)
  go too. Between scans the total may exceed the cap by what was added.
- The cache never fails a load or a save: a failure to write it (disk full,
  permissions) is logged once per process and the value goes on without it.

Only remote storage is cached (``for_settings``): a local folder already is
local files, and ``memory://`` is this process's memory.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from ..settings import Settings
from ..settings.parsing import CACHE_AUTO, CACHE_OFF
from ..settings.settings import DIGEST_ALGORITHMS
from ..values.digests import read_hashed
from ..values.progress import Progress
from .cache_fill import Filling, remove_file
from .fs import ValueStorage

log = logging.getLogger(__name__)

#: the default cap, and the share of the free space it may take when that is smaller
DEFAULT_MAX_BYTES = 10 << 30
FREE_SHARE = 0.10
#: the layout's version: a new layout gets a new folder beside the old one
LAYOUT = "v1"
TEMP_FOLDER = "tmp"
TEMP_SUFFIX = ".part"
#: a temporary copy older than this was abandoned by a killed process
STALE_TEMP_S = 3600.0
#: the folder is scanned again after this long, or after a 16th of the cap was added
RESCAN_S = 30.0
RESCAN_SHARE = 16

_HEX = re.compile(r"^[0-9a-f]{64}$")
_SHARD = re.compile(r"^[0-9a-f]{2}$")
_TEMP = re.compile(rf"^[0-9a-f]{{32}}{re.escape(TEMP_SUFFIX)}$")


def default_folder() -> str:
    """``$XDG_CACHE_HOME/linea_luigi``, else ``~/.cache/linea_luigi``."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):  # the XDG spec: a relative value is ignored
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "linea_luigi")


def folder_of(settings: Settings) -> str | None:
    """The cache folder the settings name (``auto``: the default), None for ``none``."""
    if settings.cache_dir == CACHE_OFF:
        return None
    return default_folder() if settings.cache_dir == CACHE_AUTO else settings.cache_dir


#: storage that is local already: a folder, or fsspec's memory of this process
_LOCAL_ROOTS = ("file://", "memory://")


def is_remote(values: ValueStorage) -> bool:
    """Whether ``values`` lives anywhere but this machine (only such storage is cached)."""
    return not values.root_uri.startswith(_LOCAL_ROOTS)


_default_caps: dict[str, int] = {}


def default_max_bytes(folder: str) -> int:
    """min(10 GiB, 10 % of the free space where ``folder`` lives), computed once per process."""
    found = _default_caps.get(folder)
    if found is None:
        probe = folder
        while not os.path.exists(probe) and os.path.dirname(probe) != probe:
            probe = os.path.dirname(probe)
        try:
            st = os.statvfs(probe)
            found = min(DEFAULT_MAX_BYTES, int(st.f_bavail * st.f_frsize * FREE_SHARE))
        except OSError:
            found = DEFAULT_MAX_BYTES
        _default_caps[folder] = found
    return found


@dataclass
class _Usage:
    """What this process knows of one cache folder's size (shared by its ``ValueCache``s)."""

    known: int | None = None
    added: int = 0
    scanned_at: float = 0.0
    warned: bool = False


_usages: dict[str, _Usage] = {}
_usage_lock = threading.Lock()


def _after_fork() -> None:
    """A forked child starts with a free lock (a thread of the parent may have held it)."""
    global _usage_lock
    _usage_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork)


@dataclass(frozen=True)
class CacheStats:
    """A cache folder's entries (or what ``clear`` removed): their count and bytes."""

    folder: str
    entries: int
    size_bytes: int


@dataclass(frozen=True)
class _Entry:
    path: str
    size: int
    mtime_ns: int


class ValueCache:
    """Copies of remote values in a local folder, by digest (see the module's docstring)."""

    def __init__(self, folder: str, max_bytes: int | None = None) -> None:
        self.folder = folder
        self._max_bytes = max_bytes
        self._root = os.path.join(folder, LAYOUT)

    @classmethod
    def for_settings(cls, settings: Settings, values: ValueStorage) -> ValueCache | None:
        """The cache for a store on ``settings``: None when it is off or the storage is local."""
        if not is_remote(values):  # first: a local store's saves ask this every time
            return None
        folder = folder_of(settings)
        return None if folder is None else cls(folder, settings.cache_max_bytes)

    @property
    def max_bytes(self) -> int:
        """The cap: ``cache_max_bytes``, or the default (``default_max_bytes``)."""
        if self._max_bytes is not None:
            return self._max_bytes
        return default_max_bytes(self.folder)

    @property
    def explicit_cap(self) -> bool:
        """Whether the cap was set (``cache_max_bytes``) rather than the default."""
        return self._max_bytes is not None

    def entry_path(self, digest: str) -> str | None:
        """Where the entry of ``digest`` lives; None for a digest this cache cannot key."""
        algorithm, _, hexdigest = digest.partition(":")
        if algorithm not in DIGEST_ALGORITHMS or _HEX.match(hexdigest) is None:
            return None
        return os.path.join(self._root, algorithm, hexdigest[:2], hexdigest)

    # -- hits -----------------------------------------------------------------------

    def read(
        self, digest: str, size: int, what: str, progress: Progress | None = None
    ) -> memoryview | None:
        """The verified bytes of the entry of ``digest``, or None (a miss, or a damaged entry).

        ``what`` names the value in the warning about a damaged entry.
        """
        path = self.entry_path(digest)
        if path is None:
            return None
        try:
            handle = open(path, "rb", buffering=0)  # noqa: SIM115
        except OSError:  # no such entry (the common miss), or unreadable: read storage
            return None
        with handle:
            try:
                found = os.fstat(handle.fileno()).st_size
                if found != size:
                    problem = f"{found} bytes, {size} expected"
                else:
                    algorithm = digest.partition(":")[0]
                    data, hashed, actual = read_hashed(handle, size, algorithm, progress)
                    if actual == size and hashed == digest:
                        _touch(handle)
                        return data
                    problem = "its digest does not match"
            except OSError as exc:
                problem = f"unreadable: {exc}"
            self._reject(path, handle, problem, what)
        return None

    def open_entry(self, digest: str) -> BinaryIO | None:
        """The entry of ``digest`` open for ranged reads, or None; unverified: the caller checks."""
        path = self.entry_path(digest)
        if path is None:
            return None
        try:
            handle = open(path, "rb")  # noqa: SIM115
        except OSError:
            return None
        _touch(handle)
        return handle

    def reject(self, handle: BinaryIO, problem: str, what: str) -> None:
        """Remove the damaged entry open in ``handle`` (from ``open_entry``), with one warning."""
        self._reject(str(handle.name), handle, problem, what)

    def _reject(self, path: str, handle: Any, problem: str, what: str) -> None:
        """Remove ``path`` if it still is the file open in ``handle``: another process may
        have replaced it with a good copy meanwhile."""
        try:
            if os.path.samestat(os.fstat(handle.fileno()), os.stat(path)):
                os.remove(path)
        except OSError:
            pass
        log.warning(
            "linea_luigi cache: removed the damaged entry %s of %s (%s); reading it from storage",
            path,
            what,
            problem,
        )

    # -- filling --------------------------------------------------------------------

    def filling(self, size: int | None = None) -> Filling | None:
        """A new copy to write (None when the value cannot fit or the folder cannot be written).

        ``size``: the value's size when known (a load), to skip a value over the cap.
        """
        if size is not None and size > self.max_bytes:
            return None
        temp = os.path.join(self._root, TEMP_FOLDER, f"{uuid.uuid4().hex}{TEMP_SUFFIX}")
        try:
            try:
                handle = open(temp, "xb")  # noqa: SIM115
            except FileNotFoundError:
                os.makedirs(os.path.dirname(temp), exist_ok=True)
                handle = open(temp, "xb")  # noqa: SIM115
        except OSError as exc:
            self.failed(exc)
            return None
        return Filling(temp, handle, self.publish, self.failed)

    def publish(self, temp: str, digest: str, size: int) -> None:
        """Rename the finished copy ``temp`` into the entry of ``digest``, then evict if due."""
        path = self.entry_path(digest)
        if path is None or size > self.max_bytes:
            remove_file(temp)
            return
        if os.path.exists(path):  # another process published it: keep theirs (and its inode)
            remove_file(temp)
            return
        try:
            os.replace(temp, path)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.replace(temp, path)
        self._added(path, size)

    def failed(self, exc: BaseException) -> None:
        """A copy could not be written: a warning the first time in this process."""
        with _usage_lock:
            usage = _usages.setdefault(self.folder, _Usage())
            first, usage.warned = not usage.warned, True
        level = logging.WARNING if first else logging.DEBUG
        log.log(
            level, "linea_luigi cache: cannot write %s (%s); going on without it", self.folder, exc
        )

    # -- size and eviction -------------------------------------------------------------

    def _added(self, path: str, size: int) -> None:
        cap = self.max_bytes
        now = time.monotonic()
        with _usage_lock:
            usage = _usages.setdefault(self.folder, _Usage())
            usage.added += size
            due = (
                usage.known is None
                or usage.known + usage.added > cap
                or usage.added > cap // RESCAN_SHARE
                or now - usage.scanned_at > RESCAN_S
            )
            if not due:
                return
            usage.scanned_at, usage.added = now, 0
        total = self._evict(cap, keep=path)
        with _usage_lock:
            usage.known = total

    def _evict(self, cap: int, keep: str) -> int:
        """Remove stale copies, then the least recently used entries until ``cap`` holds."""
        for temp in self._temps(older_than=STALE_TEMP_S):
            remove_file(temp)
        entries = sorted(self._entries(), key=lambda e: e.mtime_ns)
        total = sum(e.size for e in entries)
        for entry in entries:
            if total <= cap:
                break
            if entry.path != keep and remove_file(entry.path):
                total -= entry.size
        return total

    def _entries(self) -> Iterator[_Entry]:
        for algorithm in DIGEST_ALGORITHMS:
            base = os.path.join(self._root, algorithm)
            for shard in _names(base, _SHARD.match):
                folder = os.path.join(base, shard)
                for name in _names(folder, _HEX.match):
                    path = os.path.join(folder, name)
                    try:
                        st = os.stat(path)
                    except OSError:  # evicted meanwhile
                        continue
                    yield _Entry(path, st.st_size, st.st_mtime_ns)

    def _temps(self, older_than: float) -> Iterator[str]:
        folder = os.path.join(self._root, TEMP_FOLDER)
        limit = time.time() - older_than
        for name in _names(folder, _TEMP.match):
            path = os.path.join(folder, name)
            try:
                if os.stat(path).st_mtime < limit:
                    yield path
            except OSError:
                continue

    def stats(self) -> CacheStats:
        """How many entries the folder holds and their bytes (a scan; creates nothing)."""
        entries = list(self._entries())
        return CacheStats(self.folder, len(entries), sum(e.size for e in entries))

    def clear(self) -> CacheStats:
        """Remove every entry, and copies abandoned by killed processes; returns what went.

        Copies being written by running processes are left to finish.
        """
        removed = [e for e in self._entries() if remove_file(e.path)]
        for temp in self._temps(older_than=STALE_TEMP_S):
            remove_file(temp)
        with _usage_lock:
            _usages.pop(self.folder, None)
        return CacheStats(self.folder, len(removed), sum(e.size for e in removed))


def _touch(handle: Any) -> None:
    """Mark an entry as just used (its mtime orders eviction); a read-only folder is fine."""
    with contextlib.suppress(OSError):
        os.utime(handle.fileno())


def _names(folder: str, wanted: Callable[[str], Any]) -> list[str]:
    try:
        return [name for name in os.listdir(folder) if wanted(name)]
    except OSError:  # no such folder yet, or unreadable
        return []
