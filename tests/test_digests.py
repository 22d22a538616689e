"""Digests: BLAKE3 by default, SHA-256 on request, both verified before unpickling.

Also the settings cache that keeps configuration off the per-task hot path, and
the in-place upgrade of databases written before digests named their algorithm.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from digests import digest_of

import linea_luigi as ll
from linea_luigi.db.engine import dispose_all


def _bytes(artifact: ll.Artifact) -> bytes:
    return Path(artifact.uri.removeprefix("file://")).read_bytes()


def test_new_values_carry_a_blake3_digest(store: ll.ArtifactStore) -> None:
    artifact = store.save({"a": 1}, "thing")
    assert re.fullmatch(r"blake3:[0-9a-f]{64}", artifact.digest)
    assert artifact.digest == digest_of(_bytes(artifact), "blake3")
    assert store.get("thing").digest == artifact.digest


ChooseSha = Callable[[str, Path, Callable[[str], Path]], ll.ArtifactStore]


def _by_argument(url: str, folder: Path, _cfg: Callable[[str], Path]) -> ll.ArtifactStore:
    return ll.ArtifactStore(url, str(folder), checksum="sha256")


def _by_option(url: str, folder: Path, _cfg: Callable[[str], Path]) -> ll.ArtifactStore:
    ll.options.set("database_url", url)
    ll.options.set("artifact_storage_dir", str(folder))
    ll.options.set("checksum", "sha256")
    return ll.artifact_store()


def _by_luigi_cfg(url: str, folder: Path, cfg: Callable[[str], Path]) -> ll.ArtifactStore:
    cfg(
        f"[artifact_store]\ndb_connection = {url}\nartifact_storage_dir = {folder}\n"
        "checksum = SHA256\n"
    )
    return ll.artifact_store()


@pytest.mark.parametrize("choose", [_by_argument, _by_option, _by_luigi_cfg])
def test_sha256_can_be_required(
    sqlite_url: str, storage_dir: Path, luigi_cfg: Callable[[str], Path], choose: ChooseSha
) -> None:
    store = choose(sqlite_url, storage_dir, luigi_cfg)
    assert store.settings.checksum == "sha256"
    value = np.arange(300_000, dtype=np.int64)  # large enough for the threaded path
    artifact = store.save(value, "thing")
    assert artifact.digest == "sha256:" + hashlib.sha256(_bytes(artifact)).hexdigest()
    np.testing.assert_array_equal(store.load("thing"), value)


def test_both_algorithms_verify_side_by_side(sqlite_url: str, storage_dir: Path) -> None:
    """Changing the setting never strands values written under the other algorithm."""
    sha = ll.ArtifactStore(sqlite_url, str(storage_dir), checksum="sha256")
    blake = ll.ArtifactStore(sqlite_url, str(storage_dir))
    first = sha.save("old", "thing")
    second = blake.save("new", "thing")
    assert (first.digest[:7], second.digest[:7]) == ("sha256:", "blake3:")
    for store in (sha, blake):
        assert [store.load("thing", v) for v in (0, 1)] == ["old", "new"]


@pytest.mark.parametrize("bad", ["md5", "", "blake2"])
def test_unknown_checksum_is_a_config_error(
    sqlite_url: str, storage_dir: Path, luigi_cfg: Callable[[str], Path], bad: str
) -> None:
    if bad:
        with pytest.raises(ll.ConfigError, match="blake3, sha256"):
            ll.ArtifactStore(sqlite_url, str(storage_dir), checksum=bad)
    luigi_cfg(f"[artifact_store]\nchecksum = {bad or 'sha-1'}\n")
    with pytest.raises(ll.ConfigError, match="Unknown checksum"):
        ll.resolve_settings()


def test_unknown_recorded_algorithm_refuses_to_load(store: ll.ArtifactStore) -> None:
    artifact = store.save("value", "thing")
    engine = sa.create_engine(store.settings.database_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE ll_artifacts SET digest = 'md5:' || digest"))
    engine.dispose()
    with pytest.raises(ll.ChecksumMismatchError, match="Unknown digest algorithm 'md5'"):
        store.load("thing")
    assert artifact.version == 0


@pytest.mark.parametrize("size", [10, 3 * 2**20 + 17])
def test_loaded_arrays_are_private_and_writable(store: ll.ArtifactStore, size: int) -> None:
    """Large values land in anonymous memory of this process, small ones in a bytearray."""
    value = np.frombuffer(np.random.default_rng(1).bytes(size), dtype=np.uint8).copy()
    store.save(value, "arr")
    loaded = store.load("arr")
    np.testing.assert_array_equal(loaded, value)
    assert loaded.flags.writeable
    loaded[0] ^= 0xFF  # our copy; the stored value is untouched
    np.testing.assert_array_equal(store.load("arr"), value)


def test_truncated_large_value_is_refused(store: ll.ArtifactStore) -> None:
    artifact = store.save(np.zeros(5 * 2**20, dtype=np.uint8), "arr")
    path = Path(artifact.uri.removeprefix("file://"))
    path.write_bytes(path.read_bytes()[: 3 * 2**20 + 5])
    with pytest.raises(ll.ChecksumMismatchError, match=r"found \d+ bytes"):
        store.load("arr")


# -- the settings cache --------------------------------------------------------------------


def test_settings_are_cached_until_an_input_changes(
    tmp_path: Path, luigi_cfg: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    first = ll.resolve_settings()
    assert ll.resolve_settings() is first  # no change, no re-resolution
    assert ll.artifact_store() is ll.artifact_store()

    ll.options.set("artifact_storage_dir", str(tmp_path / "a"))
    after_option = ll.resolve_settings()
    assert after_option.storage_dir == str(tmp_path / "a")

    monkeypatch.setenv("LINEA_LUIGI_DATABASE_URL", f"sqlite:///{tmp_path / 'env.sqlite'}")
    assert ll.resolve_settings().database_url.database == str(tmp_path / "env.sqlite")

    import luigi.configuration

    luigi.configuration.get_config().set("artifact_store", "checksum", "sha256")
    assert ll.resolve_settings().checksum == "sha256"  # an in-place edit of the section

    luigi_cfg("[artifact_store]\nchecksum = blake3\n")  # a reloaded configuration
    assert ll.resolve_settings().checksum == "blake3"


def test_interpolated_sections_are_never_cached(
    tmp_path: Path, luigi_cfg: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``${VAR}`` may change at any time, so such a section is read on every call."""
    monkeypatch.setenv("LL_DIR", str(tmp_path / "one"))
    luigi_cfg("[artifact_store]\nartifact_storage_dir = ${LL_DIR}\n")
    assert ll.resolve_settings().storage_dir == str(tmp_path / "one")
    monkeypatch.setenv("LL_DIR", str(tmp_path / "two"))
    assert ll.resolve_settings().storage_dir == str(tmp_path / "two")


# -- databases written before digests named their algorithm --------------------------------


def _make_schema_v1(store: ll.ArtifactStore) -> None:
    """Turn a fresh database into what linea_luigi 0.1.0 wrote: a bare sha256 column.

    That release predates migrations, so its database has no Alembic version table.
    """
    engine = sa.create_engine(store.settings.database_url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE linea_luigi_alembic_version"))
        conn.execute(sa.text("ALTER TABLE ll_artifacts RENAME COLUMN digest TO sha256"))
        conn.execute(sa.text("UPDATE ll_artifacts SET sha256 = substr(sha256, 8)"))
        conn.execute(sa.text("UPDATE ll_store_info SET value = '1' WHERE key = 'schema_version'"))
    engine.dispose()


def test_a_version_1_database_is_upgraded_in_place(sqlite_url: str, storage_dir: Path) -> None:
    old = ll.ArtifactStore(sqlite_url, str(storage_dir), checksum="sha256")
    old.save({"kept": True}, "thing")
    old.save([1, 2], "other")
    _make_schema_v1(old)
    dispose_all()

    store = ll.ArtifactStore(sqlite_url, str(storage_dir))  # a new process, in effect
    assert store.load("thing") == {"kept": True}
    assert store.get("other").digest.startswith("sha256:")
    assert store.save("next", "thing").version == 1  # the counters survived
    engine = sa.create_engine(sqlite_url)
    with engine.connect() as conn:
        version = conn.execute(
            sa.text("SELECT value FROM ll_store_info WHERE key = 'schema_version'")
        ).scalar()
        columns = {c["name"] for c in sa.inspect(conn).get_columns("ll_artifacts")}
    engine.dispose()
    assert version == "2"
    assert "digest" in columns and "sha256" not in columns
