"""Concurrent writers: separate processes saving to one name get contiguous, unique versions."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import linea_luigi as ll

REPO = Path(__file__).resolve().parents[1]
WRITERS = 6
SAVES = 10

WRITER = """
import json, pickle, sys, time
from pathlib import Path

store = pickle.loads(Path(sys.argv[1]).read_bytes())  # the parent's store, as Luigi ships it
me, ready, go = int(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
(ready / str(me)).touch()
while not go.exists():
    time.sleep(0.001)
got = []
for i in range(int(sys.argv[5])):
    got.append(store.save({"writer": me, "i": i, "pad": bytes(1000 * i)}, "shared").version)
print(json.dumps(got))
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    return sqlite_url if request.param == "sqlite" else str(request.getfixturevalue("pg_url"))


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def test_processes_saving_one_name(db_url: str, tmp_path: Path) -> None:
    """6 processes x 10 saves, released together on a fresh database: versions 0..59 exactly.

    The schema does not exist yet either, so the writers also race to create it.
    """
    storage = tmp_path / "artifacts"
    store = ll.ArtifactStore(db_url=db_url, storage_dir=str(storage))
    pickled = tmp_path / "store.pickle"
    pickled.write_bytes(pickle.dumps(store))
    ready, go = tmp_path / "ready", tmp_path / "go"
    ready.mkdir()
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                textwrap.dedent(WRITER),
                str(pickled),
                str(n),
                str(ready),
                str(go),
                str(SAVES),
            ],
            env=_child_env(),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(WRITERS)
    ]
    try:
        deadline = time.monotonic() + 120
        while len(list(ready.iterdir())) < WRITERS:
            assert all(c.poll() is None for c in children), "a writer died before the start"
            assert time.monotonic() < deadline, "writers did not get ready"
            time.sleep(0.01)
        go.touch()  # every writer is waiting: release them at once
        outputs = [c.communicate(timeout=120) for c in children]
    finally:
        for c in children:
            if c.poll() is None:
                c.kill()

    claimed: dict[int, tuple[int, int]] = {}
    for writer, (child, (stdout, stderr)) in enumerate(zip(children, outputs, strict=True)):
        assert child.returncode == 0, stderr
        assert "locked" not in stderr.lower()
        versions = json.loads(stdout.strip().splitlines()[-1])
        assert len(versions) == SAVES
        assert versions == sorted(versions)  # one writer's saves come out in order
        for i, version in enumerate(versions):
            assert version not in claimed, f"version {version} handed out twice"
            claimed[version] = (writer, i)
    assert sorted(claimed) == list(range(WRITERS * SAVES))

    found = store.versions("shared")
    assert [a.version for a in found] == list(range(WRITERS * SAVES))
    assert len({a.uri for a in found}) == WRITERS * SAVES
    for artifact in found:  # each row points at the value its writer saved under that version
        writer, i = claimed[artifact.version]
        value = artifact.load()
        assert (value["writer"], value["i"], len(value["pad"])) == (writer, i, 1000 * i)
    files = [p for p in storage.rglob("*") if p.is_file()]
    assert len(files) == WRITERS * SAVES
    assert not [p for p in files if ".tmp-" in p.name]


def test_threads_saving_one_name(db_url: str, tmp_path: Path) -> None:
    """Threads of one process (Luigi's parallel workers can be threads) share engines safely."""
    store = ll.ArtifactStore(db_url=db_url, storage_dir=str(tmp_path / "artifacts"))

    def work(n: int) -> list[int]:
        return [store.save((n, i), "threaded").version for i in range(SAVES)]

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(work, range(4)))
    everything = sorted(v for result in results for v in result)
    assert everything == list(range(4 * SAVES))
    for n, result in enumerate(results):
        assert result == sorted(result)
        assert [store.load("threaded", v) for v in result] == [(n, i) for i in range(SAVES)]


def test_concurrent_names_do_not_interfere(db_url: str, tmp_path: Path) -> None:
    """Writers of different names each get their own contiguous sequence."""
    store = ll.ArtifactStore(db_url=db_url, storage_dir=str(tmp_path / "artifacts"))

    def work(name: str) -> list[int]:
        return [store.save(i, name).version for i in range(SAVES)]

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = dict(zip("abc", pool.map(work, "abc"), strict=True))
    assert results == {name: list(range(SAVES)) for name in "abc"}
    assert [(a.name, a.version) for a in store.list()] == [(n, SAVES - 1) for n in "abc"]
