"""The storage layout: what the files under a storage root are called, and which are ours.

One module, because it is a safety rule: ``gc`` deletes unreferenced files of
this layout and nothing else, so every file the package writes (values, their
temporary siblings, ``doctor``'s probe) must be named here and recognised here.
A new kind of file added anywhere else would be invisible to ``gc`` (an orphan
kept forever) or, worse, a stranger's file could look like ours.

Values: ``<folder of the name>/<32 hex><extension>``, the extension the
serializer's (``.pkl``, ``.parquet``, ``.npy``: plain files other tools open);
while being written, a sibling ``<final>.tmp-<32 hex>`` (renamed into place,
or removed). The folder only
groups a name's files for people browsing the storage: the database row holds
the location, so two names sharing a folder is harmless.
"""

from __future__ import annotations

import functools
import re
import uuid

from ..errors import InvalidArgumentError

#: extension of a pickled value
PICKLE = ".pkl"
#: the extensions of values this package writes (``is_ours`` accepts exactly these); each
#: serializer in ``values.serializers`` writes one of them (a test checks)
VALUE_EXTENSIONS = (PICKLE, ".parquet", ".npy")
#: between a value's final name and the random suffix of its temporary sibling
TMP_MARKER = ".tmp-"
#: where ``doctor`` writes (and removes) its probe, apart from every value
PROBE_FOLDER = "_doctor"

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_OURS = re.compile(
    r"^[^/]+/[0-9a-f]{32}(?:"
    + "|".join(re.escape(e) for e in VALUE_EXTENSIONS)
    + rf")(?:{re.escape(TMP_MARKER)}[0-9a-f]{{32}})?$"
)


def new_location(name: str, extension: str = PICKLE) -> str:
    """A fresh location for a value of ``name``, relative to the storage root."""
    if extension not in VALUE_EXTENSIONS:
        raise InvalidArgumentError(f"{extension!r} is not a value extension of the layout.")
    return f"{folder_of(name)}/{uuid.uuid4().hex}{extension}"


@functools.lru_cache(maxsize=1024)
def folder_of(name: str) -> str:
    """A storage-safe folder for a name: no separators, no dot-only names."""
    safe = _UNSAFE.sub("_", name).strip(".")[:100]
    return safe or "_"


def temp_sibling(final: str) -> str:
    """Where a value destined for ``final`` (a path or location) is written first."""
    return f"{final}{TMP_MARKER}{uuid.uuid4().hex}"


def is_ours(location: str) -> bool:
    """Whether ``location`` is a value, or a value's temporary sibling, of this layout."""
    return _OURS.match(location) is not None


def probe_location() -> str:
    """A location for ``doctor``'s write probe (never a value: ``gc`` leaves it alone)."""
    return f"{PROBE_FOLDER}/{uuid.uuid4().hex}.probe"
