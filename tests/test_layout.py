"""The storage layout: every file the package writes is recognised as ours, nothing else is."""

from __future__ import annotations

import pytest

import linea_luigi as ll
from linea_luigi.storage import layout
from linea_luigi.values.serializers import SERIALIZERS


@pytest.mark.parametrize("name", ["model", "a/b", "..", "名前", "x" * 255, "a b:c@d"])
def test_what_save_writes_is_ours_and_so_is_its_temporary_sibling(name: str) -> None:
    location = layout.new_location(name)
    folder, _, file = location.partition("/")
    assert folder == layout.folder_of(name) and "/" not in file and folder not in ("", ".", "..")
    assert layout.is_ours(location)
    assert layout.is_ours(layout.temp_sibling(location))
    assert location != layout.new_location(name)  # every save gets its own file


@pytest.mark.parametrize("extension", layout.VALUE_EXTENSIONS)
def test_every_value_extension_and_its_temporary_sibling_is_ours(extension: str) -> None:
    location = layout.new_location("frame", extension)
    assert location.endswith(extension)
    assert layout.is_ours(location) and layout.is_ours(layout.temp_sibling(location))


def test_every_serializer_writes_an_extension_of_the_layout() -> None:
    extensions = {s.extension for s in SERIALIZERS.values()}
    assert extensions == set(layout.VALUE_EXTENSIONS)


@pytest.mark.parametrize(
    "location",
    [
        "notes.txt",
        "model/readme.md",
        "model/" + "0" * 32 + ".pkl.bak",
        "model/" + "0" * 31 + ".pkl",
        "model/" + "0" * 32 + ".csv",  # not a value extension
        "model/" + "0" * 32 + ".parquet.bak",
        "model/" + "0" * 32 + ".npy" + layout.TMP_MARKER + "zz",
        "a/b/" + "0" * 32 + ".pkl",
        "model/" + "0" * 32 + ".pkl" + layout.TMP_MARKER + "zz",
    ],
)
def test_a_strangers_file_is_not_ours(location: str) -> None:
    assert not layout.is_ours(location)


def test_doctors_probe_is_not_a_value() -> None:
    assert not layout.is_ours(layout.probe_location())


def test_only_value_extensions_are_written() -> None:
    with pytest.raises(ll.InvalidArgumentError):
        layout.new_location("x", ".exe")


def test_saved_values_follow_the_layout(store: ll.ArtifactStore) -> None:
    import numpy as np
    import pandas as pd

    for value in ({"a": 1}, np.arange(3), pd.DataFrame({"a": [1]})):
        assert layout.is_ours(store.save(value, "some/name").location)
