"""Serializers: how a value becomes a file, chosen by the value's type, named on every row.

``auto`` (the default setting) takes the first that takes the value:

1. ``parquet`` (``values.parquet``): pandas and polars frames, pyarrow tables;
2. ``npy`` (``values.npy``): numpy arrays of a non-object dtype;
3. ``cloudpickle`` (``values.pickled``): everything else.

The first two write standard files that other tools read; a frame that
Parquet cannot represent faithfully falls back to cloudpickle, and so does
every frame when pyarrow is missing (logged once). Deciding costs a look at
the value's type: no library is imported for a value that is not its own.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

from ..errors import InvalidArgumentError, SerializationError
from ..settings.settings import AUTO, SERIALIZER_CHOICES
from . import libraries, parquet
from .npy import NpySerializer
from .parquet import ParquetSerializer, Unrepresentable
from .pickled import CloudpickleSerializer

log = logging.getLogger(__name__)


class Serializer(Protocol):
    """Writes values of the types it ``takes`` as one file and reads them back."""

    #: recorded per artifact
    name: str
    #: of the files it writes (``storage.layout.VALUE_EXTENSIONS``)
    extension: str

    def takes(self, value: Any) -> bool:
        """Whether ``value`` is of a type this serializer writes; cheap, imports nothing."""
        ...

    def prepare(self, value: Any) -> Any:
        """What ``dump`` writes; ``Unrepresentable`` when the value would not round-trip."""
        ...

    def dump(self, prepared: Any, out: BinaryIO) -> set[str]:
        """Write ``prepared``; returns the packages involved (for ``libraries``)."""
        ...

    def load(
        self,
        data: memoryview,
        value_type: str | None = None,
        written: Mapping[str, str] | None = None,
    ) -> Any:
        """The value in ``data`` (verified bytes); ``written``: the recorded libraries."""
        ...


SERIALIZERS: dict[str, Serializer] = {
    s.name: s for s in (ParquetSerializer(), NpySerializer(), CloudpickleSerializer())
}
CLOUDPICKLE = CloudpickleSerializer.name
DEFAULT_SERIALIZER = CLOUDPICKLE
_told_no_arrow = False


@dataclass(frozen=True)
class Choice:
    """The serializer for one value and what it will write (``Serializer.prepare``'s result)."""

    serializer: Serializer
    prepared: Any
    value_type: str


def choose(value: Any, wanted: str) -> Choice:
    """The serializer for ``value`` under setting ``wanted`` (``auto`` or a name).

    A named serializer that does not take the value is an
    ``InvalidArgumentError`` naming the ones that do.
    """
    if wanted not in SERIALIZER_CHOICES:
        raise InvalidArgumentError(
            f"serializer must be one of {', '.join(SERIALIZER_CHOICES)}, got {str(wanted)[:40]!r}."
        )
    kind = libraries.value_type(value)
    if wanted != AUTO:
        serializer = _forced(SERIALIZERS[wanted], value, kind)
        try:
            return Choice(serializer, serializer.prepare(value), kind)
        except Unrepresentable as why:
            raise InvalidArgumentError(
                f"serializer={wanted!r} cannot store this {kind} faithfully ({why}); "
                f"{CLOUDPICKLE!r} can."
            ) from None
    for serializer in SERIALIZERS.values():
        if serializer.takes(value) and _usable(serializer, kind):
            try:
                return Choice(serializer, serializer.prepare(value), kind)
            except Unrepresentable as why:
                log.warning("%s is stored with cloudpickle: Parquet cannot hold it (%s)", kind, why)
                break
    pickler = SERIALIZERS[CLOUDPICKLE]
    return Choice(pickler, value, kind)


def _forced(serializer: Serializer, value: Any, kind: str) -> Serializer:
    if not serializer.takes(value):
        able = [name for name, s in SERIALIZERS.items() if s.takes(value)]
        raise InvalidArgumentError(
            f"serializer={serializer.name!r} cannot store a {kind}; "
            f"{' or '.join(repr(n) for n in able)} can (or pass serializer='auto')."
        )
    return serializer


def _usable(serializer: Serializer, kind: str) -> bool:
    """Whether ``auto`` may use ``serializer`` here: Parquet needs pyarrow (said once)."""
    global _told_no_arrow
    if serializer.name != ParquetSerializer.name or parquet.available():
        return True
    if not _told_no_arrow:
        _told_no_arrow = True
        log.warning(
            "pyarrow is not installed, so data frames (%s) are stored with cloudpickle; "
            "%s stores them as Parquet",
            kind,
            parquet.EXTRA,
        )
    return False


def get_serializer(name: str) -> Serializer:
    """The serializer recorded as ``name`` on an artifact row."""
    try:
        return SERIALIZERS[name]
    except KeyError:
        raise SerializationError(
            f"Unknown serializer {name!r} recorded for this artifact; this linea_luigi knows "
            f"{sorted(SERIALIZERS)}. Upgrade linea_luigi to read it."
        ) from None
