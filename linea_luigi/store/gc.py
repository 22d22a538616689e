"""Garbage collection: versions beyond a retention rule, and values no row references.

Old versions pile up (every rerun is a new version) and a crash between
writing a value and committing its row leaves an orphan file. ``collect``
removes both, never what someone may still read:

- never the latest version of a name, never a version an alias points at;
- never a version that a kept artifact was made from (its lineage parent,
  transitively), unless ``include_inputs``: lineage would otherwise dangle;
- never a value younger than ``grace``: a save in flight writes its value
  before its row commits, so a young unreferenced file may be about to be used;
- only files of our own layout (``storage.layout.is_ours``: values and their
  temporary siblings), so other files under the storage root are never touched;
- never an object that any row references: identical values share one object
  (``store.saving``), so deleting a version frees its object only when it was
  the last row pointing at it, and the orphan scan counts every referenced
  location as live, whoever's folder it sits in.

Rows go first, in one write transaction that locks the chosen versions (a
concurrent ``set_alias`` or a save naming one as input either waits or is seen),
then values, as in ``ArtifactStore.delete``: both delete rows with
``db.queries.removal.delete_rows`` and then values with ``remove_values``.
The row locks are also what keeps a concurrent save from reusing an object
that is being freed (``db.queries.artifacts.stored_copy``).
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Connection, select

from ..db.queries.chunks import chunked
from ..db.queries.removal import delete_rows, referenced, shared_elsewhere
from ..db.schema import ALIASES, ARTIFACTS, LINEAGE
from ..errors import InvalidArgumentError
from ..model import GcReport, OrphanValue, as_utc
from ..names import check_count
from ..storage import ValueStorage, layout
from .records import Records

log = logging.getLogger(__name__)

_A = ARTIFACTS.c
_L = LINEAGE.c
_AL = ALIASES.c
DEFAULT_GRACE = timedelta(hours=1)
#: a ``timedelta``, or text such as ``"7d"`` (see ``parse_duration``)
Duration = timedelta | str
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.ASCII)
#: the longest duration: ``now - duration`` stays far inside what a datetime holds
MAX_DURATION = timedelta(days=36500)


def parse_duration(value: Any, what: str = "duration") -> timedelta:
    """A ``timedelta`` from itself, or from ``"7d"``, ``"12h"``, ``"30m"``, ``"45s"``, ``"2w"``.

    At most ``MAX_DURATION``: beyond it ``now - duration`` (or the float behind
    ``"99999999999d"``) overflows, and no retention rule needs more than a century.
    """
    seconds: float | None = None
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2)]  # inf for 400 digits
    if seconds is None or not 0 <= seconds <= MAX_DURATION.total_seconds():
        raise InvalidArgumentError(
            f"Invalid {what} {value!r:.80}: expected a timedelta or a number in ASCII digits "
            "with a unit s, m, h, d or w, such as '7d' or '12h', from 0 to "
            f"{MAX_DURATION.days} days (100 years)."
        )
    return value if isinstance(value, timedelta) else timedelta(seconds=seconds)


def remove_values(values: ValueStorage, locations: Iterable[str]) -> list[str]:
    """Remove each value at ``locations``, whose rows are gone; the URIs that stayed.

    The second half of "rows first, then the values no row references"
    (``ArtifactStore.delete`` and ``collect``). A value that cannot be removed
    is only an orphan now, which the next gc finds: logged, never raised.
    """
    failed: list[str] = []
    for location in locations:
        try:
            values.delete(location)
        except Exception as exc:
            uri = values.uri(location)
            log.warning("could not remove %s, which no artifact references any more: %s", uri, exc)
            failed.append(uri)
    return failed


def collect(
    records: Records,
    values: ValueStorage,
    *,
    keep_last: int | None = None,
    older_than: Duration | None = None,
    dry_run: bool = True,
    include_inputs: bool = False,
    grace: Duration | None = None,
) -> GcReport:
    """Delete versions beyond the retention rule and orphan values (see the module docstring).

    A version is beyond the rule when it is not among the ``keep_last`` newest
    of its name and (if given) was created more than ``older_than`` ago. With
    neither, no version is deleted: only orphans are.
    """
    if keep_last is not None:
        keep_last = check_count(keep_last, "keep_last")
    now = datetime.now(timezone.utc)
    cutoff = None if older_than is None else now - parse_duration(older_than, "older_than")
    grace_period = DEFAULT_GRACE if grace is None else parse_duration(grace, "grace")
    rule = keep_last is not None or cutoff is not None

    def versions(conn: Connection) -> tuple[list[Any], list[str], set[str]]:
        chosen = _beyond_rule(conn, keep_last, cutoff) if rule else {}
        if chosen and not dry_run:
            _lock(conn, list(chosen))
        _protect(conn, chosen, include_inputs)
        rows = sorted(chosen.values(), key=lambda r: (r.name, r.version))
        pairs = [(r.id, r.location) for r in rows]
        if not rows:
            return rows, [], set()
        if dry_run:
            return rows, [], shared_elsewhere(conn, pairs)
        unused = delete_rows(conn, pairs)
        return rows, unused, {r.location for r in rows} - set(unused)

    if dry_run:
        rows, unused, shared = records.read(versions, "planning gc")
    else:
        rows, unused, shared = records.write(versions, "collecting garbage")
    report = GcReport(dry_run=dry_run, versions=records.artifacts(rows), shared=frozenset(shared))
    report.failed.extend(remove_values(values, unused))
    _orphans(records, values, report, now - grace_period)
    return report


def _beyond_rule(
    conn: Connection, keep_last: int | None, cutoff: datetime | None
) -> dict[int, Any]:
    """Rows beyond the retention rule, by id; never a name's latest version."""
    by_name: dict[str, list[Any]] = defaultdict(list)
    for row in conn.execute(select(ARTIFACTS).order_by(_A.name, _A.version.desc())):
        by_name[row.name].append(row)
    chosen: dict[int, Any] = {}
    keep = max(keep_last or 0, 1)  # the latest always stays
    for rows in by_name.values():
        for row in rows[keep:]:
            if cutoff is None or as_utc(row.created_at) < cutoff:
                chosen[row.id] = row
    return chosen


def _lock(conn: Connection, ids: list[int]) -> None:
    """Lock the chosen rows (PostgreSQL; SQLite's write lock is already held).

    ``FOR UPDATE`` conflicts with the ``FOR SHARE`` of a save reusing one of
    their objects: gc waits for that save's row, or the save for gc's commit.
    """
    for part in chunked(ids):
        conn.execute(select(_A.id).where(_A.id.in_(part)).with_for_update()).all()


def _protect(conn: Connection, chosen: dict[int, Any], include_inputs: bool) -> None:
    """Drop from ``chosen`` what aliases point at and, unless told, inputs of kept artifacts."""
    if not chosen:
        return
    aliased = select(_A.id).join(ALIASES, (_AL.name == _A.name) & (_AL.version == _A.version))
    for row_id in conn.scalars(aliased):
        chosen.pop(row_id, None)
    if include_inputs:
        return
    parents: dict[int, list[int]] = defaultdict(list)
    for child, parent in conn.execute(select(_L.child_id, _L.parent_id)):
        parents[child].append(parent)
    kept = [child for child in parents if child not in chosen]
    while kept:  # a kept artifact keeps its inputs, and they keep theirs
        child = kept.pop()
        for parent in parents.get(child, ()):
            if chosen.pop(parent, None) is not None:
                kept.append(parent)


def _orphans(
    records: Records, values: ValueStorage, report: GcReport, young_after: datetime
) -> None:
    """Find (and unless a dry run, remove) values of our layout that no row references."""
    files = [f for f in values.list_values() if layout.is_ours(f.location)]
    if not files:
        return
    locations = [f.location for f in files]  # a temporary name is never referenced
    used = records.read(lambda conn: referenced(conn, locations), "finding orphan values")
    for f in files:
        if f.location in used:
            continue
        orphan = OrphanValue(values.uri(f.location), f.location, f.size_bytes, f.modified)
        if f.modified is None or f.modified > young_after:
            report.young_orphans.append(orphan)
            continue
        if not report.dry_run and remove_values(values, [f.location]):
            report.failed.append(orphan.uri)
            continue
        report.orphans.append(orphan)
