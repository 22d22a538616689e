"""A real ``luigid`` or ``linea-luigid`` for tests: started on a free loopback port, stopped after.

``scheduler_process`` starts either console script with its own state file and
log folder under ``tmp_path``, waits until its port answers (failing with the
server's log if it exits first) and stops it afterwards. ``get`` and ``api``
talk to it over HTTP.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from luigi_support import REPO, stop_process


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def script(name: str, module: str) -> list[str]:
    """This interpreter's console script ``name`` (its module as a fallback)."""
    path = Path(sys.executable).with_name(name)
    return [str(path)] if path.exists() else [sys.executable, "-c", f"import {module}"]


LINEA_LUIGID = script("linea-luigid", "linea_luigi.integration.luigid as m; m.main()")
LUIGID = script("luigid", "luigi.cmdline as m; m.luigid()")


def history_config(history_url: str, storage_dir: Path) -> str:
    """luigi.cfg text: task history recorded in ``history_url``; artifacts share that database."""
    return (
        "[scheduler]\nrecord_task_history = true\n"
        f"[task_history]\ndb_connection = {history_url}\n"
        f"[artifact_store]\nartifact_storage_dir = {storage_dir}\n"
    )


def scheduler_env(tmp_path: Path, cfg: Path) -> dict[str, str]:
    """Environment for the scheduler and its workers: ``cfg`` is their only luigi.cfg."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(tmp_path), str(REPO), *filter(None, [env.get("PYTHONPATH")])]
    )
    env["LUIGI_CONFIG_PATH"] = str(cfg)
    for var in ("LINEA_LUIGI_DATABASE_URL", "LINEA_LUIGI_ARTIFACT_STORAGE_DIR"):
        env.pop(var, None)
    return env


@contextmanager
def scheduler_process(command: list[str], tmp_path: Path, env: dict[str, str]) -> Iterator[int]:
    """Start ``command`` (luigid or linea-luigid) on a free loopback port; yield the port."""
    port = free_port()
    logdir = tmp_path / f"logs-{port}"
    logdir.mkdir()
    cmd = [
        *command,
        "--port",
        str(port),
        "--address",
        "127.0.0.1",
        "--state-path",
        str(tmp_path / f"state-{port}.pickle"),
        "--logdir",
        str(logdir),
    ]
    out_path = logdir / "stdout.txt"
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path, env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                log = logdir / "luigi-server.log"
                text = out_path.read_text() + (log.read_text() if log.exists() else "")
                pytest.fail(f"{command[-1]} exited with {proc.returncode}: {text[-4000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("the scheduler did not open its port within 30 s")
                time.sleep(0.1)
        yield port
    finally:
        stop_process(proc)


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=20) as r:
            return int(r.status), r.read().decode()
    except urllib.error.HTTPError as err:
        return int(err.code), err.read().decode(errors="replace")


def api(port: int, method: str, **data: Any) -> Any:
    query = urllib.parse.urlencode({"data": json.dumps(data)})
    status, body = get(port, f"/api/{method}?{query}")
    assert status == 200, body
    return json.loads(body)["response"]
