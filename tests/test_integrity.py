"""Integrity: tampered values are refused before unpickling; crashes never publish half a value."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from digests import digest_of
from sqlalchemy import text

import linea_luigi as ll
from linea_luigi.db.engine import get_engine
from linea_luigi.values.serializers import get_serializer

REPO = Path(__file__).resolve().parents[1]
FILLER = b"\xaa" * 4096


class LeavesMark:
    """Unpickling this creates a folder: proof that pickle code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Callable[[str], None], tuple[str]]:
        return (os.mkdir, (self.marker,))


def _path(artifact: ll.Artifact) -> Path:
    return Path(artifact.uri.removeprefix("file://"))


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


TAMPERS: dict[str, Callable[[bytes], bytes]] = {
    "flip-middle": lambda b: _flip(b, len(b) // 2),
    "flip-first": lambda b: _flip(b, 0),
    "flip-last": lambda b: _flip(b, len(b) - 1),
    "flip-in-filler": lambda b: _flip(b, b.index(FILLER) + len(FILLER) // 2),
    "truncate-one": lambda b: b[:-1],
    "truncate-half": lambda b: b[: len(b) // 2],
    "empty": lambda b: b"",
    "append-one": lambda b: b + b"\x00",
    "append-many": lambda b: b + b"junk" * 1000,
    "swap-two-bytes": lambda b: b[:100] + b[101:102] + b[100:101] + b[102:],
}


# -- tampering ----------------------------------------------------------------------------


@pytest.mark.parametrize("checksum", ["blake3", "sha256"])
@pytest.mark.parametrize("tamper", TAMPERS)
def test_tampered_value_is_refused_unread(
    sqlite_url: str, storage_dir: Path, tmp_path: Path, tamper: str, checksum: str
) -> None:
    """Any change to the stored bytes is caught, and no byte of them is unpickled."""
    store = ll.ArtifactStore(sqlite_url, str(storage_dir), checksum=checksum)
    marker = tmp_path / "unpickled"
    artifact = store.save((LeavesMark(marker), FILLER), "payload")
    assert artifact.digest.startswith(f"{checksum}:")
    assert not marker.exists()  # saving does not run the payload
    path = _path(artifact)
    original = path.read_bytes()
    tampered = TAMPERS[tamper](original)
    assert tampered != original
    path.write_bytes(tampered)

    for load in (artifact.load, lambda: store.load("payload"), lambda: store.load("payload", 0)):
        with pytest.raises(ll.ChecksumMismatchError) as info:
            load()
        message = str(info.value)
        assert "'payload'" in message
        assert artifact.uri in message  # where the corrupt value is
        assert "delete" in message  # what to do
    assert not marker.exists()

    path.write_bytes(original)  # the untampered value does run the payload: the test can fail
    assert store.load("payload") == (None, FILLER)
    assert marker.is_dir()


def test_tampered_bytes_would_have_run(store: ll.ArtifactStore, tmp_path: Path) -> None:
    """The tampered file is still a valid pickle: only the checksum stands between it and us."""
    marker = tmp_path / "unpickled"
    artifact = store.save((LeavesMark(marker), FILLER), "payload")
    path = _path(artifact)
    tampered = TAMPERS["flip-in-filler"](path.read_bytes())
    path.write_bytes(tampered)
    with pytest.raises(ll.ChecksumMismatchError):
        store.load("payload")
    assert not marker.exists()
    # the same bytes handed to the deserializer directly do execute the payload
    loaded = get_serializer(artifact.serializer).load(bytearray(tampered))
    assert marker.is_dir()
    assert loaded[1] != FILLER


def test_tampered_array_would_load_silently(store: ll.ArtifactStore) -> None:
    """A flipped bit in an array's raw buffer unpickles fine: the checksum is the only guard."""
    array = np.arange(200_000, dtype=np.float64)
    artifact = store.save(array, "array")
    path = _path(artifact)
    tampered = TAMPERS["flip-middle"](path.read_bytes())
    path.write_bytes(tampered)
    with pytest.raises(ll.ChecksumMismatchError):
        store.load("array")
    silently_wrong = get_serializer(artifact.serializer).load(bytearray(tampered))
    assert silently_wrong.shape == array.shape
    assert not np.array_equal(silently_wrong, array)


def test_tampering_one_version_spares_the_others(store: ll.ArtifactStore) -> None:
    """Corruption is per value: other versions load, and the bad one can be deleted."""
    first = store.save("zero", "x")
    second = store.save("one", "x")
    _path(second).write_bytes(TAMPERS["flip-middle"](_path(second).read_bytes()))
    with pytest.raises(ll.ChecksumMismatchError):
        store.load("x")
    assert first.load() == "zero"
    assert store.delete("x", "latest") == 1  # the way out the message suggests
    assert store.load("x") == "zero"


def test_missing_value_file(store: ll.ArtifactStore) -> None:
    """A value removed behind our back is a clear StorageError naming its location."""
    artifact = store.save("v", "x")
    _path(artifact).unlink()
    with pytest.raises(ll.StorageError) as info:
        store.load("x")
    assert artifact.uri in str(info.value)
    assert store.delete("x", 0) == 1  # a dangling row can still be removed


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_version_deleted_between_get_and_load_is_not_found(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Another process deleting the version after ``get`` is named as a deletion (not as a
    value "removed outside linea_luigi", which was the advice before)."""
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    ours = ll.ArtifactStore(url, str(tmp_path / "values"))
    theirs = ll.ArtifactStore(url, str(tmp_path / "values"))
    ours.save("old", "v")
    ours.save("new", "v")
    looked_up = ours.get("v", 0)
    assert theirs.delete("v", 0) == 1
    with pytest.raises(ll.ArtifactNotFoundError) as info:
        ours.load_artifact(looked_up)
    message = str(info.value)
    assert "'v' v0 was deleted after it was looked up" in message
    assert "outside linea_luigi" not in message
    assert ours.load("v") == "new"  # looking up again finds what exists


# -- crash safety ---------------------------------------------------------------------------


def _child(
    script: str, *args: str, stdout: int | None = subprocess.DEVNULL
) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        env=env,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
    )


def _kill(child: subprocess.Popen[str]) -> None:
    """SIGKILL the child if it still runs (a failed wait has reported why it does not)."""
    if child.poll() is None:
        child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)


def _wait_for(
    child: subprocess.Popen[str], ready: Callable[[], bool], what: str, timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if child.poll() is not None:
            stderr = child.stderr.read() if child.stderr else ""
            pytest.fail(f"child exited ({child.returncode}) before {what}:\n{stderr}")
        if time.monotonic() > deadline:
            child.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.002)


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _assert_store_healthy(store: ll.ArtifactStore, name: str) -> None:
    """Nothing of ``name`` is visible, the database is sound, and saving works again."""
    assert store.latest_version(name) == -1
    assert name not in [a.name for a in store.list()]
    with pytest.raises(ll.ArtifactNotFoundError):
        store.get(name)
    with get_engine(store.settings.database_url).connect() as conn:
        assert conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"
    again = store.save(np.arange(10), name)
    assert again.version == 0  # the killed save took no version number
    np.testing.assert_array_equal(store.load(name), np.arange(10))
    assert store.load("before") == "still here"


SAVE_BIG = """
import sys
import numpy as np
import linea_luigi as ll
store = ll.ArtifactStore(db_url=sys.argv[1], storage_dir=sys.argv[2])
store.save(np.zeros(400 * 2**20, dtype=np.uint8), "big")
"""


def test_kill_during_value_write_publishes_nothing(
    store: ll.ArtifactStore, storage_dir: Path, sqlite_url: str
) -> None:
    """SIGKILL while a 400 MB value is being written: no artifact, only a temp orphan."""
    store.save("still here", "before")
    child = _child(SAVE_BIG, sqlite_url, str(storage_dir))
    folder = storage_dir / "big"

    def partial_temp_file() -> bool:
        try:
            return any(p.stat().st_size > 32 * 2**20 for p in folder.glob("*.tmp-*"))
        except FileNotFoundError:  # renamed in between: the save finished, which fails below
            return False

    try:
        _wait_for(child, partial_temp_file, "a partial temp file of 32 MB")
    finally:
        _kill(child)
    assert child.returncode == -signal.SIGKILL
    leftovers = _files(storage_dir / "big")
    assert leftovers, "the child was killed before it wrote anything"
    assert all(".tmp-" in p.name for p in leftovers)  # never a complete-looking value
    assert all(p.stat().st_size < 400 * 2**20 for p in leftovers)
    _assert_store_healthy(store, "big")


PAUSE_IN_PUBLISH = """
import sys, time
from pathlib import Path
import linea_luigi as ll
from linea_luigi.db.queries.artifacts import INSERT_ARTIFACT
from linea_luigi.db import executor as fast

store = ll.ArtifactStore(db_url=sys.argv[1], storage_dir=sys.argv[2])
flag = Path(sys.argv[3])
execute_scalar = fast.Tx.scalar

def pause_after_insert(self, statement, params):
    result = execute_scalar(self, statement, params)
    if statement is INSERT_ARTIFACT:
        flag.write_text("inserted, not committed")
        time.sleep(120)
    return result

fast.Tx.scalar = pause_after_insert
store.save(b"x" * 2**20, "mid")
"""


def test_kill_inside_the_publishing_transaction(
    store: ll.ArtifactStore, storage_dir: Path, sqlite_url: str, tmp_path: Path
) -> None:
    """SIGKILL after the row is inserted but before commit: the row never appears."""
    store.save("still here", "before")
    flag = tmp_path / "inserted"
    child = _child(PAUSE_IN_PUBLISH, sqlite_url, str(storage_dir), str(flag))
    try:
        _wait_for(child, flag.exists, "the uncommitted insert")
    finally:
        _kill(child)
    assert child.returncode == -signal.SIGKILL
    # the value was published before the row, so a complete but unreferenced file remains
    orphans = _files(storage_dir / "mid")
    assert len(orphans) == 1
    assert ".tmp-" not in orphans[0].name
    _assert_store_healthy(store, "mid")  # also: the dead writer's lock is gone


SAVE_THEN_WAIT = """
import json, sys, time
import numpy as np
import linea_luigi as ll
store = ll.ArtifactStore(db_url=sys.argv[1], storage_dir=sys.argv[2])
a = store.save(np.arange(5_000_000, dtype=np.float64), "done")
print(json.dumps({"version": a.version, "digest": a.digest, "uri": a.uri}), flush=True)
time.sleep(120)
"""


def test_kill_right_after_save_keeps_the_artifact(
    store: ll.ArtifactStore, storage_dir: Path, sqlite_url: str
) -> None:
    """Once ``save`` returned, a crash cannot take the artifact back."""
    child = _child(SAVE_THEN_WAIT, sqlite_url, str(storage_dir), stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
    finally:
        _kill(child)
    assert line, child.stderr.read() if child.stderr else "child printed nothing"
    assert child.returncode == -signal.SIGKILL
    reported = json.loads(line)
    artifact = store.get("done")
    assert (artifact.version, artifact.digest, artifact.uri) == (
        0,
        reported["digest"],
        reported["uri"],
    )
    assert digest_of(_path(artifact).read_bytes()) == artifact.digest
    np.testing.assert_array_equal(artifact.load(), np.arange(5_000_000, dtype=np.float64))
    assert not [p for p in _files(storage_dir) if ".tmp-" in p.name]
