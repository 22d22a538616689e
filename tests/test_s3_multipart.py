"""S3 saves as multipart uploads whose parts go up concurrently, against moto on loopback.

Parts are made small (``default_block_size`` of 5 MiB, S3's smallest) so a few
tens of MB already take several parts in flight. A loopback TCP proxy in front
of moto shows what went over the wire (bytes, concurrent connections) and cuts
it where a test needs a storage failure. What the tests check is what a user
or a reader of the bucket would see: the stored bytes and their digest, the
object's part count (its ETag), pending multipart uploads, the rows.
"""

from __future__ import annotations

import multiprocessing
import traceback
import uuid
from collections.abc import Iterator
from typing import Any

import blake3
import numpy as np
import pytest
from fault_support import (
    ONE_ATTEMPT,
    UP,
    TcpProxy,
    keys,
    pending_uploads,
    s3_client,
)

import linea_luigi as ll
from linea_luigi.storage import ValueStorage

PART = 5 * 2**20


@pytest.fixture
def proxy(endpoint: str) -> Iterator[TcpProxy]:
    relay = TcpProxy(int(endpoint.rsplit(":", 1)[1]))
    yield relay
    relay.cut()


def _options(url: str, **extra: Any) -> dict[str, Any]:
    return {"client_kwargs": {"endpoint_url": url}, "default_block_size": PART, **extra}


def _store(sqlite_url: str, bucket: str, url: str, **extra: Any) -> ll.ArtifactStore:
    return ll.ArtifactStore(
        db_url=sqlite_url, storage_dir=f"s3://{bucket}/runs", storage_options=_options(url, **extra)
    )


def _object(client: Any, bucket: str, uri: str) -> tuple[bytes, str]:
    """The stored bytes of ``uri`` and its ETag (``<md5>`` for one PUT, ``<x>-N`` for N parts)."""
    key = uri.removeprefix(f"s3://{bucket}/")
    got = client.get_object(Bucket=bucket, Key=key)
    return got["Body"].read(), got["ETag"].strip('"')


def _parts(etag: str) -> int:
    return int(etag.rpartition("-")[2]) if "-" in etag else 1


def _open_connections(relay: TcpProxy) -> int:
    # the relay keeps two sockets per client connection; s3fs keeps idle ones pooled
    return len(relay._sockets) // 2


class _Bomb:
    """Fails to pickle, after everything before it in a list was already streamed."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def __reduce__(self) -> Any:
        raise self.error


def test_large_value_goes_up_in_concurrent_parts_in_order(
    bucket: str, proxy: TcpProxy, sqlite_url: str
) -> None:
    """Several parts in flight at once; the object holds exactly the bytes that were hashed."""
    store = _store(sqlite_url, bucket, f"http://127.0.0.1:{proxy.port}")
    value = {
        "array": np.random.default_rng(3).integers(0, 256, 23 * 2**20, dtype=np.uint8),
        "tail": list(range(1000)),
    }
    art = store.save(value, "big")
    body, etag = _object(s3_client(f"http://127.0.0.1:{proxy.port}"), bucket, art.uri)
    assert len(body) == art.size_bytes
    assert _parts(etag) == -(-art.size_bytes // PART) == 5
    assert art.digest == f"blake3:{blake3.blake3(body).hexdigest()}"  # parts in the right order
    assert _open_connections(proxy) >= 2  # parts overlapped (one at a time reuses one)
    loaded = store.load("big")
    np.testing.assert_array_equal(loaded["array"], value["array"])
    assert loaded["tail"] == value["tail"]
    assert pending_uploads(s3_client(f"http://127.0.0.1:{proxy.port}"), bucket) == []


def test_uneven_writes_land_byte_for_byte(endpoint: str, bucket: str) -> None:
    """Writes of every size, across part boundaries, with 4 parts in flight."""
    storage = ValueStorage(f"s3://{bucket}/raw", _options(endpoint))
    rng = np.random.default_rng(4)
    pieces = [rng.bytes(n) for n in (1, PART - 1, 2, 64 * 1024, 3 * PART + 7, PART, 5, 2 * PART)]
    for n in range(40):  # many small writes, as pickle's frames come
        pieces.append(rng.bytes(1000 + n))
    with storage.open_write("x/v.bin") as handle:
        for piece in pieces:
            assert handle.write(memoryview(piece)) == len(piece)
    expected = b"".join(pieces)
    body, etag = _object(s3_client(endpoint), bucket, storage.uri("x/v.bin"))
    assert body == expected
    assert _parts(etag) == -(-len(expected) // PART)


def test_small_value_is_one_put(bucket: str, proxy: TcpProxy, sqlite_url: str) -> None:
    """Below one part there is no multipart upload: one request, an ordinary object."""
    store = _store(sqlite_url, bucket, f"http://127.0.0.1:{proxy.port}")
    art = store.save({"k": list(range(100))}, "small")
    body, etag = _object(s3_client(f"http://127.0.0.1:{proxy.port}"), bucket, art.uri)
    assert "-" not in etag  # a multipart object's ETag ends in -<parts>
    assert art.digest == f"blake3:{blake3.blake3(body).hexdigest()}"
    assert store.load("small") == {"k": list(range(100))}

    storage = ValueStorage(f"s3://{bucket}/raw", _options(f"http://127.0.0.1:{proxy.port}"))
    with storage.open_write("empty.bin"):
        pass
    assert _object(s3_client(f"http://127.0.0.1:{proxy.port}"), bucket, storage.uri("empty.bin"))[
        0
    ] == (b"")


@pytest.mark.parametrize(
    "error",
    [TypeError("cannot pickle this"), KeyboardInterrupt()],
    ids=["unpicklable", "interrupt"],
)
def test_failure_mid_stream_aborts_the_upload(
    error: BaseException, bucket: str, proxy: TcpProxy, sqlite_url: str
) -> None:
    """Parts already uploaded and parts in flight: all thrown away, nothing pending or visible."""
    url = f"http://127.0.0.1:{proxy.port}"
    store = _store(sqlite_url, bucket, url)
    payload = np.random.default_rng(5).bytes(40 * 2**20)  # bytes are pickled in-band
    expected = ll.SerializationError if isinstance(error, Exception) else type(error)
    with pytest.raises(expected):
        store.save([payload, _Bomb(error)], "bad")
    assert proxy.relayed[UP] > 3 * PART  # parts had gone up before the failure
    client = s3_client(url)
    assert keys(client, bucket) == []
    assert pending_uploads(client, bucket) == []
    assert store.latest_version("bad") == -1
    assert store.save("fine", "bad").version == 0  # the store is usable afterwards


def test_storage_cut_mid_upload(
    endpoint: str, bucket: str, proxy: TcpProxy, sqlite_url: str
) -> None:
    """The server goes away while parts are in flight: StorageError without secrets; the
    abort that could not get through is retried by the next save once it is back."""
    url = f"http://127.0.0.1:{proxy.port}"
    secret = "s3cret-" + uuid.uuid4().hex
    store = _store(sqlite_url, bucket, url, key="testing", secret=secret, config_kwargs=ONE_ATTEMPT)
    store.save("before", "m")
    proxy.cut_after(UP, 3 * PART)
    with pytest.raises(ll.StorageError) as info:
        store.save(np.ones(40 * 2**20, dtype=np.uint8), "m")
    assert proxy.cut_done.wait(10)
    message = str(info.value)
    assert message.startswith(f"Cannot write s3://{bucket}/runs/m/") and "reachable" in message
    assert "\n" not in message and secret not in "".join(traceback.format_exception(info.value))
    client = s3_client(endpoint)  # the server itself, past the cut relay
    assert len(keys(client, bucket)) == 1  # only "before"
    assert len(pending_uploads(client, bucket)) == 1  # the abort could not get through

    proxy.start()
    assert store.save("after", "m").version == 1
    assert pending_uploads(client, bucket) == []
    assert [store.load("m", v) for v in (0, 1)] == ["before", "after"]


def _save_in_child(sqlite_url: str, bucket: str, url: str, seed: int) -> None:
    store = _store(sqlite_url, bucket, url)
    value = np.random.default_rng(seed).integers(0, 256, 12 * 2**20, dtype=np.uint8)
    store.save(value, "forked")


def test_save_in_a_forked_child(endpoint: str, bucket: str, sqlite_url: str) -> None:
    """As in Luigi's forked workers: the parent's event loop and threads stay behind."""
    store = _store(sqlite_url, bucket, endpoint)
    store.save(np.zeros(12 * 2**20, dtype=np.uint8), "forked")  # the parent's loop is running
    child = multiprocessing.get_context("fork").Process(
        target=_save_in_child, args=(sqlite_url, bucket, endpoint, 6)
    )
    child.start()
    child.join(120)
    assert child.exitcode == 0
    expected = np.random.default_rng(6).integers(0, 256, 12 * 2**20, dtype=np.uint8)
    np.testing.assert_array_equal(store.load("forked", 1), expected)
    store.save(b"after", "forked")  # and the parent still saves
    assert [a.version for a in store.versions("forked")] == [0, 1, 2]
    assert pending_uploads(s3_client(endpoint), bucket) == []


def test_part_size_below_s3_minimum_is_refused(endpoint: str, sqlite_url: str) -> None:
    with pytest.raises(ll.ConfigError, match="default_block_size"):
        ll.ArtifactStore(
            db_url=sqlite_url,
            storage_dir="s3://ll-any/runs",
            storage_options={
                "client_kwargs": {"endpoint_url": endpoint},
                "default_block_size": 2**20,
            },
        )
