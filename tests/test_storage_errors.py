"""Storage failures leave as ``StorageError``: named location, what to check, no secret.

Real faults only: a bucket that does not exist, credentials moto's S3 server
refuses, an endpoint nobody listens on, a connection cut mid-download, a
full tmpfs (mounted in a private mount namespace, so it cannot outlive the
test) and a process file-size limit. After each failure nothing is visible:
no object, no row, no temporary file.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from ci_support import unavailable
from fault_support import (
    DOWN,
    ONE_ATTEMPT,
    TcpProxy,
    keys,
    pending_uploads,
    s3_client,
)

import linea_luigi as ll
from linea_luigi.storage import ValueStorage

REPO = Path(__file__).resolve().parents[1]


def _s3_store(db: str, root: str, endpoint: str, **options: Any) -> ll.ArtifactStore:
    opts = {"client_kwargs": {"endpoint_url": endpoint}, **options}
    # no local cache: every load must reach the storage whose failures are tested
    return ll.ArtifactStore(db_url=db, storage_dir=root, storage_options=opts, cache_dir="none")


def _whole(err: BaseException) -> str:
    """Everything a traceback would print: the error, its causes, their messages."""
    return "".join(traceback.format_exception(err))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- S3 -------------------------------------------------------------------------------


def test_missing_bucket(endpoint: str, bucket: str, sqlite_url: str, tmp_path: Path) -> None:
    """Saving into, and reading from, a bucket that does not exist: say so, name the URL."""
    store = _s3_store(sqlite_url, "s3://ll-no-such-bucket/runs", endpoint)
    with pytest.raises(ll.StorageError) as info:
        store.save({"k": 1}, "m")
    message = str(info.value)
    assert "s3://ll-no-such-bucket/runs/m/" in message
    assert "bucket exists" in message and "\n" not in message
    assert store.latest_version("m") == -1  # no row without its value

    # a bucket removed under existing artifacts
    client = s3_client(endpoint)
    kept = _s3_store(f"sqlite:///{tmp_path / 'b.sqlite'}", f"s3://{bucket}/r", endpoint)
    artifact = kept.save([1, 2, 3], "gone")
    for key in keys(client, bucket):
        client.delete_object(Bucket=bucket, Key=key)
    client.delete_bucket(Bucket=bucket)
    with pytest.raises(ll.StorageError) as info:
        artifact.load()
    assert artifact.uri in str(info.value) and "bucket" in str(info.value)


@contextlib.contextmanager
def _moto_checks_credentials() -> Iterator[None]:
    """Make the in-process moto server authenticate every request (it accepts any by default)."""
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    before = settings.INITIAL_NO_AUTH_ACTION_COUNT
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
    ActionAuthenticatorMixin.request_count = 0
    try:
        yield
    finally:
        settings.INITIAL_NO_AUTH_ACTION_COUNT = before


def _iam_user(endpoint: str) -> tuple[str, str]:
    """An access key of a moto IAM user allowed everything: the right credentials."""
    iam = boto3.client(
        "iam",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    user = f"ll-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
    }
    iam.put_user_policy(UserName=user, PolicyName="all", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    return str(key["AccessKeyId"]), str(key["SecretAccessKey"])


def test_wrong_credentials(
    endpoint: str, bucket: str, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A wrong secret fails writes and reads with a StorageError that never shows the secret."""
    key_id, secret = _iam_user(endpoint)
    wrong = "wrong-" + uuid.uuid4().hex
    root = f"s3://{bucket}/runs"
    caplog.set_level(logging.DEBUG, logger="linea_luigi")
    with _moto_checks_credentials():
        good = _s3_store(sqlite_url, root, endpoint, key=key_id, secret=secret)
        saved = good.save(np.arange(10), "m")  # the right credentials work: the test can fail
        bad = _s3_store(sqlite_url, root, endpoint, key=key_id, secret=wrong)
        with pytest.raises(ll.StorageError) as writing:
            bad.save({"k": 1}, "m")
        with pytest.raises(ll.StorageError) as reading:
            bad.load("m")
        np.testing.assert_array_equal(good.load("m"), np.arange(10))
    for info, verb in ((writing, "write"), (reading, "read")):
        message = str(info.value)
        assert f"{root}/m/" in message and "credentials" in message and verb in message
        assert "\n" not in message
        for secret_text in (wrong, secret):
            assert secret_text not in _whole(info.value)
    assert saved.uri in str(reading.value)
    assert wrong not in caplog.text and secret not in caplog.text
    assert [a.version for a in good.versions("m")] == [0]  # the refused save left no row
    assert len(keys(s3_client(endpoint), bucket)) == 1


def test_unreachable_endpoint(endpoint: str, bucket: str, sqlite_url: str) -> None:
    """Nobody listens at the endpoint: saving and loading fail promptly, saying what to check."""
    root = f"s3://{bucket}/runs"
    saved = _s3_store(sqlite_url, root, endpoint).save("kept", "m")
    dead = f"http://127.0.0.1:{_free_port()}"
    store = _s3_store(sqlite_url, root, dead)  # default retries: what a user gets
    started = time.monotonic()
    with pytest.raises(ll.StorageError) as writing:
        store.save("lost", "m")
    elapsed = time.monotonic() - started
    reader = _s3_store(sqlite_url, root, dead, config_kwargs=ONE_ATTEMPT)
    with pytest.raises(ll.StorageError) as reading:
        reader.load("m")
    for info in (writing, reading):
        message = str(info.value)
        assert f"{root}/m/" in message and "\n" not in message
        assert "endpoint" in message and "reachable" in message
    assert saved.uri in str(reading.value)
    assert elapsed < 60, f"gave up only after {elapsed:.0f} s"
    assert [a.version for a in store.versions("m")] == [0]
    assert len(keys(s3_client(endpoint), bucket)) == 1


def test_connection_cut_mid_download(endpoint: str, bucket: str, sqlite_url: str) -> None:
    """The S3 server goes away while a value streams in: StorageError, nothing unpickled."""
    root = f"s3://{bucket}/runs"
    value = np.random.default_rng(1).random(4_000_000)  # 32 MB
    _s3_store(sqlite_url, root, endpoint).save(value, "big")
    proxy = TcpProxy(int(endpoint.rsplit(":", 1)[1]))
    try:
        store = _s3_store(
            sqlite_url, root, f"http://127.0.0.1:{proxy.port}", config_kwargs=ONE_ATTEMPT
        )
        proxy.cut_after(DOWN, 8 * 2**20)
        with pytest.raises(ll.StorageError) as info:
            store.load("big")
        assert proxy.cut_done.wait(10)
        message = str(info.value)
        assert message.startswith(f"Cannot read {root}/big/") and "reachable" in message
        proxy.start()  # the server is back: the same store reads the value whole
        np.testing.assert_array_equal(store.load("big"), value)
    finally:
        proxy.cut()
    assert pending_uploads(s3_client(endpoint), bucket) == []


# -- local disks ----------------------------------------------------------------------

FULL_DISK = """
import json, os, subprocess, sys
import numpy as np
import linea_luigi as ll

mount, db = sys.argv[1], sys.argv[2]
mounted = subprocess.run(
    ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mount], capture_output=True, text=True
)
if mounted.returncode != 0:
    print(mounted.stderr, file=sys.stderr)
    sys.exit(77)
store = ll.ArtifactStore(db_url=db, storage_dir=os.path.join(mount, "values"))
store.save("fits", "small")
results = {}

def files():
    return sorted(
        os.path.relpath(os.path.join(d, f), mount) for d, _, fs in os.walk(mount) for f in fs
    )

def attempt(case, value):
    try:
        store.save(value, case)
        outcome = {"saved": True}
    except ll.StorageError as err:
        outcome = {"error": str(err), "errno": getattr(err.__cause__, "errno", None)}
    except BaseException as err:
        outcome = {"other": f"{type(err).__name__}: {err}"}
    outcome.update(latest=store.latest_version(case), files=files())
    results[case] = outcome

attempt("in_band", b"\\x01" * (3 * 2**20))  # bytes: written by the pickler itself
attempt("out_of_band", np.ones(3 * 2**20, dtype=np.uint8))  # an array's buffer, written raw
with open(os.path.join(mount, "filler"), "wb", buffering=0) as fh:  # take every free page
    chunk = 1 << 16
    while chunk:
        try:
            fh.write(b"\\0" * chunk)
        except OSError:
            chunk //= 2
attempt("at_close", "a few bytes")  # fits the write buffer: fails when close() flushes it
os.remove(os.path.join(mount, "filler"))
attempt("space_freed", "a few bytes")
results["loaded"] = [store.load("small"), store.load("space_freed")]
print(json.dumps(results))
"""


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def test_full_disk(tmp_path: Path) -> None:
    """A 2 MB tmpfs fills up mid-pickle, mid-array and at close: StorageError, nothing left.

    The tmpfs is mounted in a private mount namespace of a child process
    (``unshare``), so it disappears with the child even if the test is killed.
    """
    if shutil.which("unshare") is None:
        unavailable("unshare(1) is missing: cannot mount a private tmpfs")
    mount = tmp_path / "small-disk"
    mount.mkdir()
    unshare = ["unshare", "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        unshare[1:1] = ["--user", "--map-root-user"]
    proc = subprocess.run(
        [
            *unshare,
            sys.executable,
            "-c",
            textwrap.dedent(FULL_DISK),
            str(mount),
            f"sqlite:///{tmp_path / 'm.sqlite'}",
        ],
        env=_child_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode == 77 or proc.stderr.startswith("unshare:"):
        unavailable(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not any(mount.iterdir()), "the tmpfs was visible outside its namespace"

    root = f"file://{mount}/values"
    for case in ("in_band", "out_of_band", "at_close"):
        outcome = results[case]
        assert "error" in outcome, (case, outcome)
        assert outcome["error"].startswith(f"Cannot write {root}/{case}/"), outcome
        assert "disk is full" in outcome["error"] and "\n" not in outcome["error"]
        assert outcome["errno"] == 28  # ENOSPC, chained as the cause
        assert outcome["latest"] == -1  # no row
        leftovers = [f for f in outcome["files"] if not f.startswith(("values/small/", "filler"))]
        assert leftovers == [], (case, outcome["files"])  # no partial or temporary file
    assert results["space_freed"]["saved"] and results["space_freed"]["latest"] == 0
    assert results["loaded"] == ["fits", "a few bytes"]


FILE_SIZE_LIMIT = """
import json, resource, signal, sys
import numpy as np
import linea_luigi as ll

store = ll.ArtifactStore(db_url=sys.argv[1], storage_dir=sys.argv[2])
store.save("fits", "small")
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of a kill
resource.setrlimit(resource.RLIMIT_FSIZE, (2**20, 2**20))
try:
    store.save(np.ones(3 * 2**20, dtype=np.uint8), "big")
    print(json.dumps({"saved": True}))
except ll.StorageError as err:
    print(json.dumps({"error": str(err), "errno": err.__cause__.errno,
                      "latest": store.latest_version("big")}))
"""


def test_file_size_limit(tmp_path: Path, storage_dir: Path) -> None:
    """``ulimit -f`` (EFBIG, not ENOSPC: the disk has room, the process may not use it)."""
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(FILE_SIZE_LIMIT),
            f"sqlite:///{tmp_path / 'm.sqlite'}",
            str(storage_dir),
        ],
        env=_child_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    outcome = json.loads(proc.stdout.strip().splitlines()[-1])
    assert outcome["errno"] == 27  # EFBIG
    assert outcome["error"].startswith(f"Cannot write file://{storage_dir}/big/")
    assert "ulimit -f" in outcome["error"] and outcome["latest"] == -1
    assert [p.name for p in storage_dir.rglob("*") if p.is_file() and "big" in p.parts] == []


def test_folder_that_cannot_be_made(store: ll.ArtifactStore, storage_dir: Path) -> None:
    """A file where the value's folder should be: StorageError at open, naming the location."""
    storage_dir.mkdir(parents=True, exist_ok=True)
    (storage_dir / "blocked").write_text("not a folder")
    with pytest.raises(ll.StorageError) as info:
        store.save(1, "blocked")
    assert str(info.value).startswith(f"Cannot open file://{storage_dir}/blocked/")
    assert "for writing" in str(info.value)
    assert store.latest_version("blocked") == -1


# -- what is not a storage failure stays what it is -----------------------------------


@pytest.mark.parametrize("where", ["local", "memory"])
@pytest.mark.parametrize(
    "error",
    [KeyboardInterrupt(), ValueError("the caller's"), ll.SerializationError("the value's")],
    ids=["interrupt", "value-error", "serialization"],
)
def test_other_errors_pass_through_unchanged(
    where: str, error: BaseException, tmp_path: Path
) -> None:
    """Only storage failures are converted; the value is discarded either way."""
    root = str(tmp_path / "v") if where == "local" else f"memory://ll-pass-{uuid.uuid4().hex[:8]}"
    storage = ValueStorage(root)
    with pytest.raises(type(error)) as info, storage.open_write("n/v.pkl") as handle:
        handle.write(b"partial")
        raise error
    assert info.value is error
    assert not storage.exists("n/v.pkl")
    if where == "local":
        assert [p for p in (tmp_path / "v").rglob("*") if p.is_file()] == []


def test_unpicklable_value_is_a_serialization_error(
    store: ll.ArtifactStore, storage_dir: Path
) -> None:
    """A value that fails to pickle after 2 MB were written is the value's fault, not the disk's."""
    with pytest.raises(ll.SerializationError):
        store.save([b"\x01" * 2**21, _Unpicklable()], "x")
    assert [p for p in storage_dir.rglob("*") if p.is_file()] == []
    assert store.latest_version("x") == -1


class _Unpicklable:
    def __reduce__(self) -> Any:
        raise TypeError("cannot pickle this")
