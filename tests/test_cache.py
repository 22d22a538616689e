"""The local cache of remote values, against the loopback S3 server and real processes.

S3 is reached through a ``TcpProxy`` that counts the bytes it relays, so a
hit is seen to make no request at all, and cutting the proxy shows a hit
needs nothing but the database. Every damaged entry is made by changing the
cache's file on disk, the way a failing disk or a stray process would.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from fault_support import DOWN, UP, TcpProxy, keys, s3_client, wait_until

import linea_luigi as ll
from linea_luigi.cli import main as cli_main
from linea_luigi.model import human_size
from linea_luigi.storage.cache import TEMP_FOLDER, ValueCache, default_folder

CACHE_LOG = "linea_luigi.storage.cache"


@pytest.fixture
def proxy(endpoint: str) -> Iterator[TcpProxy]:
    relay = TcpProxy(int(endpoint.rsplit(":", 1)[1]))
    yield relay
    relay.cut()


def s3_store(
    url: str, bucket: str, endpoint: str, cache_dir: Path | str | None, **kw: Any
) -> ll.ArtifactStore:
    return ll.ArtifactStore(
        url,
        f"s3://{bucket}/runs",
        {"client_kwargs": {"endpoint_url": endpoint}},
        cache_dir=None if cache_dir is None else str(cache_dir),
        **kw,
    )


def via(proxy: TcpProxy) -> str:
    return f"http://127.0.0.1:{proxy.port}"


def traffic(proxy: TcpProxy) -> tuple[int, int]:
    return proxy.relayed[UP], proxy.relayed[DOWN]


def entries(folder: Path) -> list[Path]:
    """Every entry file of the cache (``v1/<algorithm>/<2 hex>/<hex>``)."""
    return sorted(p for p in (folder / "v1").glob("*/*/*") if p.is_file())


def temps(folder: Path) -> list[Path]:
    return sorted((folder / "v1" / TEMP_FOLDER).glob("*"))


def entry_of(folder: Path, art: ll.Artifact) -> Path:
    algorithm, _, hexdigest = art.digest.partition(":")
    return folder / "v1" / algorithm / hexdigest[:2] / hexdigest


def array(n: int, seed: int = 0) -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.random.default_rng(seed).random(n)


# -- hits, misses, write-through ----------------------------------------------------------


def test_a_hit_makes_no_request_and_loads_with_s3_gone(
    sqlite_url: str, bucket: str, endpoint: str, proxy: TcpProxy, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    value = array(500_000)
    saved = s3_store(sqlite_url, bucket, endpoint, "none").save(value, "a")
    reader = s3_store(sqlite_url, bucket, via(proxy), cache)

    before = traffic(proxy)
    assert np.array_equal(reader.load("a"), value)  # a miss: read from S3, copied on the way
    assert traffic(proxy)[1] - before[1] >= saved.size_bytes
    assert entries(cache) == [entry_of(cache, saved)] and temps(cache) == []

    before = traffic(proxy)
    assert np.array_equal(reader.load("a"), value)
    assert traffic(proxy) == before  # not one byte to S3 or back

    proxy.cut()  # S3 gone; the database still answers
    assert np.array_equal(reader.load("a"), value)
    assert np.array_equal(s3_store(sqlite_url, bucket, via(proxy), cache).load("a"), value)


def test_a_save_fills_the_cache_while_it_uploads(
    sqlite_url: str, bucket: str, proxy: TcpProxy, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    store = s3_store(sqlite_url, bucket, via(proxy), cache)
    value = array(3_000_000)  # 24 MB: a multipart upload, copied chunk by chunk
    small = {"k": list(range(100))}
    saved = [store.save(value, "big"), store.save(small, "small")]
    assert entries(cache) == sorted(entry_of(cache, a) for a in saved)
    assert temps(cache) == []
    before = traffic(proxy)
    assert np.array_equal(store.load("big"), value) and store.load("small") == small
    assert traffic(proxy) == before


def test_a_failed_save_leaves_no_entry_and_no_temporary_file(
    sqlite_url: str, bucket: str, endpoint: str, tmp_path: Path
) -> None:
    class Bomb:
        def __reduce__(self) -> Any:
            raise RuntimeError("boom")

    cache = tmp_path / "cache"
    store = s3_store(sqlite_url, bucket, endpoint, cache)
    with pytest.raises(ll.SerializationError):
        store.save([bytes(20_000_000), Bomb()], "bad")  # fails after 20 MB were copied
    assert entries(cache) == [] and temps(cache) == []


def test_bytes_that_fail_their_digest_never_become_an_entry(
    sqlite_url: str, bucket: str, endpoint: str, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    s3_store(sqlite_url, bucket, endpoint, "none").save(array(100_000), "a")
    client = s3_client(endpoint)
    (key,) = keys(client, bucket)
    body = bytearray(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    body[len(body) // 2] ^= 0x01
    client.put_object(Bucket=bucket, Key=key, Body=bytes(body))
    with pytest.raises(ll.ChecksumMismatchError):
        s3_store(sqlite_url, bucket, endpoint, cache).load("a")
    assert entries(cache) == [] and temps(cache) == []


# -- damaged entries ------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["flip", "truncate", "append"])
def test_a_damaged_entry_is_removed_logged_and_refetched(
    sqlite_url: str,
    bucket: str,
    endpoint: str,
    proxy: TcpProxy,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    damage: str,
) -> None:
    cache = tmp_path / "cache"
    store = s3_store(sqlite_url, bucket, via(proxy), cache)
    value = array(200_000)
    saved = store.save(value, "a")
    path = entry_of(cache, saved)
    data = bytearray(path.read_bytes())
    if damage == "flip":  # a value in the middle of the array changes: loadable, but wrong
        data[len(data) // 2] ^= 0x40
    elif damage == "truncate":
        del data[len(data) // 2 :]
    else:
        data += b"\0"
    path.write_bytes(bytes(data))

    caplog.set_level(logging.WARNING, logger=CACHE_LOG)
    before = traffic(proxy)
    assert np.array_equal(store.load("a"), value)  # never the damaged bytes
    assert traffic(proxy)[1] - before[1] >= saved.size_bytes  # fetched from S3 again
    warnings = [r for r in caplog.records if r.name == CACHE_LOG]
    assert len(warnings) == 1 and "damaged entry" in warnings[0].getMessage()
    assert "a v0" in warnings[0].getMessage()
    stored = s3_store(sqlite_url, bucket, endpoint, "none").read_bytes(saved)
    assert path.read_bytes() == bytes(stored)  # the refetch put a good entry back
    assert temps(cache) == []


# -- two processes, one entry ---------------------------------------------------------------

FILL_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    import numpy as np
    import linea_luigi as ll
    db, bucket, endpoint, cache, go = sys.argv[1:6]
    store = ll.ArtifactStore(db, f"s3://{bucket}/runs",
                             {"client_kwargs": {"endpoint_url": endpoint}}, cache_dir=cache)
    store.get("big")  # connected and ready before the start line
    open(go + "." + str(os.getpid()), "w").close()
    while not os.path.exists(go):
        time.sleep(0.001)
    value = store.load("big")
    print(float(value.sum()), value.shape[0])
    """
)


def test_two_processes_filling_one_entry_at_once(
    sqlite_url: str, bucket: str, endpoint: str, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    value = array(8_000_000)  # 64 MB: both copies are being written at the same time
    saved = s3_store(sqlite_url, bucket, endpoint, "none").save(value, "big")
    script = tmp_path / "fill.py"
    script.write_text(FILL_SCRIPT)
    go = tmp_path / "go"
    args = [sys.executable, str(script), sqlite_url, bucket, endpoint, str(cache), str(go)]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    wait_until(lambda: len(list(tmp_path.glob("go.*"))) == 2, "both processes ready", 60)
    go.touch()
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outputs == [f"{float(value.sum())} {value.shape[0]}\n"] * 2
    assert entries(cache) == [entry_of(cache, saved)] and temps(cache) == []
    assert entry_of(cache, saved).read_bytes() == bytes(
        s3_store(sqlite_url, bucket, endpoint, "none").read_bytes(saved)
    )


# -- the cap --------------------------------------------------------------------------------


def test_the_cap_evicts_the_least_recently_used(
    sqlite_url: str, bucket: str, endpoint: str, proxy: TcpProxy, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    writer = s3_store(sqlite_url, bucket, endpoint, "none")
    values = {name: array(12_500, seed) for seed, name in enumerate("abc")}  # ~100 KB each
    saved = {name: writer.save(v, name) for name, v in values.items()}
    reader = s3_store(sqlite_url, bucket, via(proxy), cache, cache_max_bytes=250_000)
    for name in ("a", "b", "a", "c"):  # a is used again after b: b is the oldest when c comes
        assert np.array_equal(reader.load(name), values[name])
        time.sleep(0.05)  # mtimes a clock tick apart
    assert entries(cache) == sorted([entry_of(cache, saved["a"]), entry_of(cache, saved["c"])])
    assert ValueCache(str(cache), 250_000).stats().size_bytes <= 250_000
    before = traffic(proxy)
    reader.load("a")
    reader.load("c")
    assert traffic(proxy) == before


def test_a_value_larger_than_the_cap_is_not_cached(
    sqlite_url: str, bucket: str, endpoint: str, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    store = s3_store(sqlite_url, bucket, endpoint, cache, cache_max_bytes=50_000)
    small = store.save(array(1000), "small")
    store.save(array(100_000), "big")  # 800 KB
    assert np.array_equal(store.load("big"), array(100_000))
    assert entries(cache) == [entry_of(cache, small)] and temps(cache) == []


def test_stale_temporary_files_are_removed_and_fresh_ones_kept(
    sqlite_url: str, bucket: str, endpoint: str, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    folder = cache / "v1" / TEMP_FOLDER
    folder.mkdir(parents=True)
    stale, fresh = folder / f"{'a' * 32}.part", folder / f"{'b' * 32}.part"
    stale.write_bytes(b"x" * 10)
    fresh.write_bytes(b"y" * 10)
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    s3_store(sqlite_url, bucket, endpoint, cache).save({"k": 1}, "a")  # an insert scans
    assert temps(cache) == [fresh]


def test_eviction_does_not_break_a_reader_that_has_the_entry_open(
    sqlite_url: str, bucket: str, endpoint: str, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    saved = s3_store(sqlite_url, bucket, endpoint, cache).save(array(100_000), "a")
    found = ValueCache(str(cache))
    handle = found.open_entry(saved.digest)
    assert handle is not None
    with handle:
        assert found.clear().entries == 1 and entries(cache) == []
        assert handle.read() == bytes(
            s3_store(sqlite_url, bucket, endpoint, "none").read_bytes(saved)
        )


# -- column loads ----------------------------------------------------------------------------


def test_column_loads_read_the_cached_entry(
    sqlite_url: str, bucket: str, proxy: TcpProxy, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "cache"
    frame = pd.DataFrame({f"c{i}": np.arange(200_000) * i for i in range(4)})
    store = s3_store(sqlite_url, bucket, via(proxy), cache)
    saved = store.save(frame, "f")
    assert saved.serializer == "parquet"
    before = traffic(proxy)
    pd.testing.assert_frame_equal(store.load("f", columns=["c2"]), frame[["c2"]])
    assert traffic(proxy) == before

    path = entry_of(cache, saved)  # a flipped page: its CRC fails, S3 is read instead
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF
    path.write_bytes(bytes(data))
    caplog.set_level(logging.WARNING, logger=CACHE_LOG)
    for column in ("c0", "c1", "c2", "c3"):
        pd.testing.assert_frame_equal(store.load("f", columns=[column]), frame[[column]])
    assert traffic(proxy)[1] > before[1]
    assert len([r for r in caplog.records if r.name == CACHE_LOG]) == 1
    assert not path.exists()


# -- when the cache is off, or cannot be written -----------------------------------------


def test_local_storage_never_uses_the_cache(sqlite_url: str, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    for cache_dir in (None, str(cache)):
        store = ll.ArtifactStore(sqlite_url, str(tmp_path / "artifacts"), cache_dir=cache_dir)
        assert store.cache is None
        store.save(array(1000), "a")
        assert np.array_equal(store.load("a"), array(1000))
    assert not cache.exists() and not Path(default_folder()).exists()


def test_cache_dir_none_turns_it_off(sqlite_url: str, bucket: str, proxy: TcpProxy) -> None:
    store = ll.ArtifactStore(
        sqlite_url,
        f"s3://{bucket}/runs",
        {"client_kwargs": {"endpoint_url": via(proxy)}},
        cache_dir="none",
    )
    assert store.cache is None
    saved = store.save(array(100_000), "a")
    for _ in range(2):
        before = traffic(proxy)
        store.load("a")
        assert traffic(proxy)[1] - before[1] >= saved.size_bytes  # every load reads S3
    assert not Path(default_folder()).exists()


def test_auto_is_under_xdg_cache_home_or_the_home_cache(
    sqlite_url: str, bucket: str, endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = s3_store(sqlite_url, bucket, endpoint, None)
    assert store.cache is not None
    assert store.cache.folder == str(Path.home() / ".cache" / "linea_luigi")
    saved = store.save({"k": 1}, "a")
    assert entry_of(Path(store.cache.folder), saved).is_file()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    other = s3_store(sqlite_url, bucket, endpoint, "auto")
    assert other.cache is not None and other.cache.folder == str(tmp_path / "xdg" / "linea_luigi")


def test_an_unwritable_cache_folder_does_not_fail_saves_or_loads(
    sqlite_url: str, bucket: str, endpoint: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    caplog.set_level(logging.WARNING, logger=CACHE_LOG)
    store = s3_store(sqlite_url, bucket, endpoint, blocker / "cache")
    value = array(100_000)
    store.save(value, "a")
    for _ in range(2):
        assert np.array_equal(store.load("a"), value)
    warnings = [r for r in caplog.records if r.name == CACHE_LOG]
    assert len(warnings) == 1 and "going on without it" in warnings[0].getMessage()


FULL_DISK_SCRIPT = textwrap.dedent(
    """
    import resource, signal, sys
    import linea_luigi as ll
    db, bucket, endpoint, cache = sys.argv[1:5]
    store = ll.ArtifactStore(db, f"s3://{bucket}/runs",
                             {"client_kwargs": {"endpoint_url": endpoint}}, cache_dir=cache)
    store.get("a")
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, resource.RLIM_INFINITY))
    print(float(store.load("a").sum()))
    """
)


def test_a_cache_write_failing_midway_does_not_fail_the_load(
    sqlite_url: str, bucket: str, endpoint: str, tmp_path: Path
) -> None:
    """The cache's disk "fills up" after 1 MiB of an 8 MB value: the load still succeeds."""
    cache = tmp_path / "cache"
    value = array(1_000_000)
    s3_store(sqlite_url, bucket, endpoint, "none").save(value, "a")
    script = tmp_path / "full.py"
    script.write_text(FULL_DISK_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), sqlite_url, bucket, endpoint, str(cache)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == f"{float(value.sum())}\n"
    assert done.stderr.count("going on without it") == 1, done.stderr[-2000:]
    assert entries(cache) == [] and temps(cache) == []


# -- the command line -------------------------------------------------------------------------


def cli(*argv: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli_main, list(argv))
    return result.exit_code, result.output


def test_cache_and_cache_clear_commands(
    sqlite_url: str, bucket: str, endpoint: str, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    store = s3_store(sqlite_url, bucket, endpoint, cache, cache_max_bytes="1GiB")
    sizes = [store.save(array(n), f"v{n}").size_bytes for n in (1000, 2000)]
    ll.options.set("cache_dir", str(cache))
    ll.options.set("cache_max_bytes", "1GiB")
    ll.options.set("storage_options", {"client_kwargs": {"endpoint_url": endpoint}})
    base = ["--db-url", sqlite_url, "--storage-dir", f"s3://{bucket}/runs"]
    code, out = cli(*base, "cache")
    assert code == 0, out
    lines = dict(line.split(None, 1) for line in out.splitlines())
    assert lines["folder"] == str(cache)
    assert lines["used"] == f"on for s3://{bucket}/runs"
    assert lines["size"] == f"{human_size(sum(sizes))} in 2 entries"
    assert lines["cap"] == "1.0 GiB (cache_max_bytes)"

    code, out = cli(*base, "cache", "clear")
    assert (code, out) == (0, f"removed 2 entries ({human_size(sum(sizes))}) from {cache}\n")
    assert entries(cache) == []
    assert "0 B in 0 entries" in cli(*base, "cache")[1]

    code, out = cli("--db-url", sqlite_url, "--storage-dir", str(tmp_path / "local"), "cache")
    assert code == 0 and "used      off for file://" in out
    code, out = cli(*base, "doctor")
    assert f"cache_dir             {cache} (remote storage only)" in out
    assert "cache_max_bytes       1.0 GiB (cache_max_bytes)" in out

    ll.options.set("cache_dir", "none")
    assert cli(*base, "cache") == (0, "cache     off (cache_dir = none)\n")
    assert "cache_dir             off (none)" in cli(*base, "doctor")[1]


def test_the_default_cap_is_at_most_ten_gib_and_a_tenth_of_the_free_space(
    tmp_path: Path,
) -> None:
    found = ValueCache(str(tmp_path / "not-yet" / "cache"))
    st = os.statvfs(tmp_path)
    assert found.max_bytes <= min(10 << 30, st.f_bavail * st.f_frsize // 10 + (1 << 20))
    assert found.max_bytes > 0 and not (tmp_path / "not-yet").exists()


def test_concurrent_loads_in_threads_share_one_entry(
    sqlite_url: str, bucket: str, endpoint: str, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    value = array(1_000_000)
    s3_store(sqlite_url, bucket, endpoint, "none").save(value, "a")
    store = s3_store(sqlite_url, bucket, endpoint, cache)
    results: list[bool] = []
    threads = [
        threading.Thread(target=lambda: results.append(np.array_equal(store.load("a"), value)))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [True] * 4
    assert len(entries(cache)) == 1 and temps(cache) == []
