"""Value storage on S3 through s3fs, against moto's S3 server on loopback.

The store must treat S3 as "a URL plus storage_options": same API, atomic
publish (an upload that fails leaves no object and no pending multipart upload).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fault_support import S3_ENV, moto_s3, s3_client

import linea_luigi as ll

BUCKET = "ll-test"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with moto_s3() as endpoint:
        yield endpoint


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    for var, value in S3_ENV.items():
        monkeypatch.setenv(var, value)
    client = s3_client(s3_endpoint)
    client.create_bucket(Bucket=BUCKET)
    yield client
    for obj in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=obj["Key"])
    client.delete_bucket(Bucket=BUCKET)


@pytest.fixture
def s3_store(s3: Any, s3_endpoint: str, tmp_path: Path) -> ll.ArtifactStore:
    return ll.ArtifactStore(
        db_url=f"sqlite:///{tmp_path / 'meta.sqlite'}",
        storage_dir=f"s3://{BUCKET}/runs",
        storage_options={"client_kwargs": {"endpoint_url": s3_endpoint}},
    )


def _keys(client: Any) -> list[str]:
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=BUCKET).get("Contents", []))


def test_round_trip_versions_and_delete_on_s3(s3_store: ll.ArtifactStore, s3: Any) -> None:
    big = np.random.default_rng(0).random(3_000_000)  # 24 MB: a multipart upload
    a0 = s3_store.save({"k": 1}, "m")
    a1 = s3_store.save(big, "m")
    assert (a0.version, a1.version) == (0, 1)
    assert a1.uri.startswith(f"s3://{BUCKET}/runs/")
    assert s3_store.load("m", 0) == {"k": 1}
    assert np.array_equal(s3_store.load("m"), big)
    assert len(_keys(s3)) == 2
    assert s3_store.delete("m", "all") == 2
    assert _keys(s3) == []


def test_failed_upload_leaves_no_object_and_no_multipart(
    s3_store: ll.ArtifactStore, s3: Any
) -> None:
    """A value that fails to pickle after 60 MB were streamed (a part uploaded) is not published."""

    class Bomb:
        def __reduce__(self) -> Any:
            raise RuntimeError("boom")

    with pytest.raises(ll.SerializationError):
        s3_store.save([bytes(60_000_000), Bomb()], "bad")
    with pytest.raises(ll.SerializationError):
        s3_store.save(threading.Lock(), "bad")
    assert _keys(s3) == []
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    assert s3_store.latest_version("bad") == -1


def test_tampered_object_is_refused(s3_store: ll.ArtifactStore, s3: Any) -> None:
    # no local cache: the load must read the tampered object (tests/test_cache.py covers the cache)
    s3_store = ll.ArtifactStore.from_settings(replace(s3_store.settings, cache_dir="none"))
    art = s3_store.save(list(range(1000)), "t")
    key = _keys(s3)[0]
    body = bytearray(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    body[len(body) // 2] ^= 0xFF
    s3.put_object(Bucket=BUCKET, Key=key, Body=bytes(body))
    with pytest.raises(ll.ChecksumMismatchError):
        art.load()
