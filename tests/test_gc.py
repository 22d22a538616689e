"""Garbage collection: retention keeps latest, aliased and input versions; orphans by age.

SQLite with a local folder, and PostgreSQL with S3 (moto on loopback).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fault_support import S3_ENV, keys, moto_s3, s3_client

import linea_luigi as ll
from linea_luigi.store.gc import parse_duration

BUCKET = "ll-gc"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with moto_s3() as endpoint:
        yield endpoint


@pytest.fixture(params=["sqlite+local", "postgresql+s3"])
def gstore(
    request: pytest.FixtureRequest, sqlite_url: str, storage_dir: Path, monkeypatch: Any
) -> Iterator[ll.ArtifactStore]:
    if request.param == "sqlite+local":
        yield ll.ArtifactStore(sqlite_url, str(storage_dir))
        return
    pg_url = request.getfixturevalue("pg_url")
    endpoint = request.getfixturevalue("s3_endpoint")
    for var, value in S3_ENV.items():
        monkeypatch.setenv(var, value)
    client = s3_client(endpoint)
    client.create_bucket(Bucket=BUCKET)
    try:
        yield ll.ArtifactStore(
            pg_url,
            f"s3://{BUCKET}/runs",
            storage_options={"client_kwargs": {"endpoint_url": endpoint}},
        )
    finally:
        for key in keys(client, BUCKET):
            client.delete_object(Bucket=BUCKET, Key=key)
        client.delete_bucket(Bucket=BUCKET)


def _versions(store: ll.ArtifactStore, name: str) -> list[int]:
    return [a.version for a in store.versions(name)]


def _pipeline(store: ll.ArtifactStore) -> None:
    """data v0..v3; model v0 made from data v1, model v1 from data v2; data v0 aliased."""
    data = [store.save(list(range(100 * i)), "data") for i in range(4)]
    store.save("m0", "model", upstream=[data[1]])
    store.save("m1", "model", upstream=[data[2]])
    store.set_alias("data", 0, "golden")


def test_retention_keeps_latest_aliased_and_inputs(gstore: ll.ArtifactStore) -> None:
    _pipeline(gstore)
    planned = gstore.gc(keep_last=1)  # a dry run by default
    assert planned.dry_run
    assert [(a.name, a.version) for a in planned.versions] == [("data", 1), ("model", 0)]
    assert planned.size_bytes == sum(a.size_bytes for a in planned.versions) > 0
    assert _versions(gstore, "data") == [0, 1, 2, 3]  # nothing deleted

    done = gstore.gc(keep_last=1, dry_run=False)
    assert [(a.name, a.version) for a in done.versions] == [("data", 1), ("model", 0)]
    assert _versions(gstore, "data") == [0, 2, 3]  # 0 aliased, 2 input of model v1, 3 latest
    assert _versions(gstore, "model") == [1]
    assert done.orphans == [] and done.failed == []
    assert not gstore.values.exists(done.versions[0].location)
    assert gstore.load("data", 2) == list(range(200))

    inputs = gstore.gc(keep_last=1, dry_run=False, include_inputs=True)
    assert [(a.name, a.version) for a in inputs.versions] == [("data", 2)]
    assert gstore.upstream("model", 1) == []
    assert gstore.load("data@golden") == []


def test_keep_last_and_older_than(gstore: ll.ArtifactStore) -> None:
    for i in range(4):
        gstore.save(i, "x")
    assert gstore.gc(keep_last=1, older_than="1h", dry_run=False).versions == []
    assert gstore.gc(dry_run=False).versions == []  # no rule: versions untouched
    time.sleep(0.05)
    done = gstore.gc(keep_last=2, older_than="0s", dry_run=False)
    assert [a.version for a in done.versions] == [0, 1]
    assert gstore.gc(keep_last=0, dry_run=False).versions[0].version == 2  # latest stays
    assert _versions(gstore, "x") == [3]


def _plant(store: ll.ArtifactStore, location: str, data: bytes, age_s: float) -> None:
    """A value file no row references, as a crash between write and commit leaves it."""
    local = store.values._local
    if local is not None:
        path = Path(local, location)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        then = time.time() - age_s
        os.utime(path, (then, then))
    else:
        fs, root = store.values._fs
        fs.pipe_file(f"{root}/{location}", data)


def test_orphans_after_a_crash(gstore: ll.ArtifactStore) -> None:
    kept = gstore.save("kept", "x")
    crashed = f"x/{uuid.uuid4().hex}.pkl"
    temp = f"x/{uuid.uuid4().hex}.pkl.tmp-{uuid.uuid4().hex}"
    foreign = "notes/readme.txt"  # not our layout: never touched
    for location in (crashed, temp, foreign):
        _plant(gstore, location, b"0123456789", age_s=3 * 3600)
    local = gstore.values._local is not None
    grace = "1h" if local else "0s"  # S3 keeps its own mtimes: age by a zero grace

    planned = gstore.gc(grace=grace)
    assert sorted(o.location for o in planned.orphans) == sorted([crashed, temp])
    assert planned.size_bytes == 20
    assert gstore.values.exists(crashed)

    done = gstore.gc(dry_run=False, grace=grace)
    assert sorted(o.location for o in done.orphans) == sorted([crashed, temp])
    assert not gstore.values.exists(crashed) and not gstore.values.exists(temp)
    assert gstore.values.exists(foreign)
    assert gstore.load("x") == "kept" and gstore.values.exists(kept.location)


def test_a_young_orphan_is_left_alone(gstore: ll.ArtifactStore) -> None:
    gstore.save("kept", "x")
    young = f"x/{uuid.uuid4().hex}.pkl"
    _plant(gstore, young, b"abc", age_s=0)
    done = gstore.gc(dry_run=False)  # default grace: one hour
    assert done.orphans == []
    assert [o.location for o in done.young_orphans] == [young]
    assert gstore.values.exists(young)


def test_bad_arguments(store: ll.ArtifactStore) -> None:
    assert parse_duration("7d").days == 7
    assert parse_duration("12h").total_seconds() == 12 * 3600
    for bad in ["7", "d", "-1d", "7y", 7]:
        with pytest.raises(ll.InvalidArgumentError, match="Invalid older_than"):
            store.gc(older_than=bad)  # type: ignore[arg-type]
    with pytest.raises(ll.InvalidArgumentError, match="keep_last"):
        store.gc(keep_last=-1)


def test_cli_gc(sqlite_url: str, storage_dir: Path) -> None:
    from click.testing import CliRunner

    from linea_luigi.cli import main

    s = ll.ArtifactStore(sqlite_url, str(storage_dir))
    _pipeline(s)
    _plant(s, f"data/{uuid.uuid4().hex}.pkl", b"x" * 2048, age_s=2 * 86400)
    base = ["--db-url", sqlite_url, "--storage-dir", str(storage_dir)]
    planned = CliRunner().invoke(main, [*base, "gc", "--keep-last", "1", "--dry-run"])
    assert planned.exit_code == 0, planned.output
    lines = planned.stdout.splitlines()
    assert lines[0].startswith("would delete data v1 ") and lines[1].startswith(
        "would delete model v0 "
    )
    assert lines[2].startswith("would delete orphan value  2.0 KiB  file://")
    assert lines[-1].startswith("would free 2 version(s), 1 orphan value(s), ")
    assert _versions(s, "data") == [0, 1, 2, 3]
    done = CliRunner().invoke(main, [*base, "gc", "--keep-last", "1", "--older-than", "0s"])
    assert done.exit_code == 0, done.output
    assert done.stdout.splitlines()[-1].startswith("freed 2 version(s), 1 orphan value(s), ")
    assert _versions(s, "data") == [0, 2, 3]
    bad = CliRunner().invoke(main, [*base, "gc", "--older-than", "a week"])
    assert bad.exit_code == 1 and "Invalid older_than" in bad.stderr
