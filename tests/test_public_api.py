"""The public surface: ``linea_luigi.__all__`` is complete and holds the contract's names."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import linea_luigi as ll

#: names the issue's contract promises at the top level (users call them exactly so)
CONTRACT = {
    "Artifact",
    "ArtifactStore",
    "ArtifactStoreError",
    "ArtifactNotFoundError",
    "ChecksumMismatchError",
    "CommitOutcomeUnknownError",
    "ConfigError",
    "StoreMismatchError",
    "InvalidArgumentError",
    "SchemaTooNewError",
    "SerializationError",
    "DatabaseError",
    "save",
    "get",
    "load",
    "delete",
    "artifact_store",
    "options",
    "resolve_settings",
}

ERRORS = [
    "ArtifactNotFoundError",
    "ChecksumMismatchError",
    "ConfigError",
    "DatabaseError",
    "InvalidArgumentError",
    "SerializationError",
    "StorageError",
    "StoreMismatchError",
]


@pytest.mark.parametrize("name", ll.__all__)
def test_every_exported_name_exists(name: str) -> None:
    """A name in ``__all__`` that is missing breaks ``from linea_luigi import *``."""
    assert getattr(ll, name, None) is not None


def test_all_has_no_duplicates() -> None:
    """A duplicated name hints at a merge mistake in __all__."""
    assert len(ll.__all__) == len(set(ll.__all__))


def test_contract_names_are_exported() -> None:
    """Later issues and external tests import these names; they must stay public."""
    assert set(ll.__all__) >= CONTRACT


@pytest.mark.parametrize("name", ERRORS)
def test_errors_share_one_root(name: str) -> None:
    """Catching ``ArtifactStoreError`` must catch everything the package raises on purpose."""
    cls = getattr(ll, name)
    assert issubclass(cls, ll.ArtifactStoreError)
    assert name in ll.__all__


def test_error_leaves_are_also_standard_exceptions() -> None:
    """Code written against builtins (``except ValueError``/``LookupError``) keeps working."""
    assert issubclass(ll.InvalidArgumentError, ValueError)
    assert issubclass(ll.ArtifactNotFoundError, LookupError)


def test_store_has_the_contract_methods() -> None:
    """The store methods the contract names exist and are callable."""
    for method in ("save", "get", "load", "versions", "list", "latest_version", "delete"):
        assert callable(getattr(ll.ArtifactStore, method)), method
    assert callable(ll.ArtifactStore.from_config)


def test_constructor_and_shortcut_keywords() -> None:
    """The keyword names in the contract are part of the API, not just the positions."""
    init = inspect.signature(ll.ArtifactStore)
    assert list(init.parameters)[:3] == ["db_url", "storage_dir", "storage_options"]
    assert init.parameters["storage_options"].default is None
    assert inspect.signature(ll.get).parameters["version"].default is None
    assert list(inspect.signature(ll.delete).parameters) == ["name", "version"]
    assert inspect.signature(ll.ArtifactStore.load).parameters["version"].default == "latest"


def test_artifact_record_fields() -> None:
    """The record carries the fields the contract names, and can load itself."""
    fields = set(ll.Artifact.__dataclass_fields__)
    assert fields >= {"name", "version", "created_at", "uri", "size_bytes", "digest", "task_id"}
    assert callable(ll.Artifact.load)


def test_version_matches_pyproject() -> None:
    """``ll.__version__`` must not drift from the distribution's version."""
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    declared = re.search(r'^version = "([^"]+)"', pyproject.read_text(), re.M)
    assert declared is not None
    assert ll.__version__ == declared.group(1)
