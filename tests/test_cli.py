"""The ``linea-luigi`` command line against real stores: SQLite + folder, PostgreSQL + S3.

Every command runs through click's CliRunner in this process; the installed
console script runs as a subprocess too. Failures must be one line on stderr
with a non-zero status, never a traceback.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result
from fault_support import S3_ENV, empty_bucket, moto_s3, s3_client
from test_task_runs import RModel, build

import linea_luigi as ll
from linea_luigi.cli import main
from linea_luigi.cli import reading as cli
from linea_luigi.cli.params import parse_spec
from linea_luigi.store.records import Records

SCRIPT = Path(sys.executable).with_name("linea-luigi")
BUCKET = "ll-cli"
JSON_KEYS = {"name", "version", "created_at", "size_bytes", "digest", "task_id"}


class Env:
    """A populated store and how to reach it from the command line."""

    def __init__(self, store: ll.ArtifactStore, args: list[str]) -> None:
        self.store = store
        self.args = args
        raw0 = store.save(b"raw bytes", "raw")
        raw1 = store.save(np.arange(12).reshape(3, 4), "raw")
        other = store.save("some text", "other")
        task = ll.TaskInfo("Features", "Features_3_abc", "k" * 16, {"n": "3"})
        feat = store.save({"x": list(range(100))}, "features", task=task, upstream=[raw1, other])
        store.save([1, 2, 3], "model", upstream=[feat])
        self.raw0 = raw0

    def run(self, *argv: str, input: str | None = None) -> Result:
        return CliRunner().invoke(main, [*self.args, *argv], input=input)


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def fails(result: Result, code: int = 1, *, prompted: bool = False) -> str:
    """The one error line of a failed command (after the prompt, if one was asked)."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    if code == 1 and not prompted:
        assert len(lines) == 1, result.stderr
    return lines[-1]


@pytest.fixture
def local(sqlite_url: str, storage_dir: Path) -> Env:
    store = ll.ArtifactStore(db_url=sqlite_url, storage_dir=str(storage_dir))
    return Env(store, ["--db-url", sqlite_url, "--storage-dir", str(storage_dir)])


@pytest.fixture
def pg_s3(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, luigi_cfg: Callable[[str], Path]
) -> Iterator[Env]:
    """PostgreSQL + S3 (moto), reached through luigi.cfg like the library, no overrides."""
    for var, value in S3_ENV.items():
        monkeypatch.setenv(var, value)
    with moto_s3() as endpoint:
        client = s3_client(endpoint)
        client.create_bucket(Bucket=BUCKET)
        options = json.dumps({"client_kwargs": {"endpoint_url": endpoint}})
        luigi_cfg(
            f"[artifact_store]\ndb_connection = {pg_url}\n"
            f"artifact_storage_dir = s3://{BUCKET}/cli\nstorage_options = {options}\n"
        )
        try:
            yield Env(ll.artifact_store(), [])
        finally:
            empty_bucket(client, BUCKET)


@pytest.fixture(params=["sqlite-local", "postgresql-s3"])
def env(request: pytest.FixtureRequest) -> Env:
    fixture = "local" if request.param == "sqlite-local" else "pg_s3"
    result: Env = request.getfixturevalue(fixture)
    return result


def test_list_table_and_json(env: Env) -> None:
    out = ok(env.run("list")).splitlines()
    assert out[0].split() == ["NAME", "VERSION", "CREATED", "SIZE", "TASK"]
    assert [line.split()[0] for line in out[1:]] == ["features", "model", "other", "raw"]
    raw = out[-1].split()
    assert raw[1] == "1" and raw[-1] == "-"
    assert out[1].split()[-1] == "Features_3_abc"
    objs = json.loads(ok(env.run("list", "--json")))
    assert [o["name"] for o in objs] == ["features", "model", "other", "raw"]
    assert all(set(o) >= JSON_KEYS for o in objs)
    feat = objs[0]
    assert feat["task_id"] == "Features_3_abc" and feat["params"] == {"n": "3"}
    assert feat["created_at"].endswith("Z") and "T" in feat["created_at"]
    assert feat["digest"] == env.store.get("features").digest
    assert [o["name"] for o in json.loads(ok(env.run("list", "--json", "[mr]*")))] == [
        "model",
        "raw",
    ]
    assert json.loads(ok(env.run("list", "--json", "nothing*"))) == []


def test_list_reads_page_by_page(local: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """No query of the listing returns more than a page, yet every name is printed."""
    names = [f"p{i}" for i in range(7)]
    for name in names:
        local.store.save(0, name)
    monkeypatch.setattr(cli, "PAGE_SIZE", 2)
    sizes: list[int] = []
    rows = Records.rows

    def counting(self: Records, q: Any, doing: str) -> list[ll.Artifact]:
        found = rows(self, q, doing)
        sizes.append(len(found))
        return found

    monkeypatch.setattr(Records, "rows", counting)
    listed = [o["name"] for o in json.loads(ok(local.run("list", "--json")))]
    assert listed == sorted(["features", "model", "other", "raw", *names])
    assert max(sizes) == 2 and len(sizes) == 6
    table = ok(local.run("list", "p*")).splitlines()
    assert [line.split()[0] for line in table[1:]] == names


def test_versions(env: Env) -> None:
    objs = json.loads(ok(env.run("versions", "raw", "--json")))
    assert [o["version"] for o in objs] == [0, 1]
    assert [line.split()[1] for line in ok(env.run("versions", "raw")).splitlines()[1:]] == [
        "0",
        "1",
    ]
    assert "No artifact named 'rae'" in fails(env.run("versions", "rae"))
    assert "Did you mean 'raw'" in fails(env.run("versions", "rae"))


def test_show(env: Env) -> None:
    out = ok(env.run("show", "features"))
    feat = env.store.get("features")
    for expected in (feat.uri, feat.digest, feat.python_version, "Features_3_abc", "n = 3"):
        assert expected in out
    assert "upstream:" in out and "other:0" in out and "raw:1" in out
    assert "model:0" in out.split("downstream:")[1]
    assert "runs:         (none)" in out
    doc = json.loads(ok(env.run("show", "raw:0", "--json")))
    assert doc["version"] == 0 and doc["downstream"] == [] and doc["runs"] == []
    assert json.loads(ok(env.run("show", "raw:latest", "--json")))["downstream"] == [
        {"name": "features", "version": 0}
    ]


def test_show_lists_recorded_runs_when_history_shares_the_database(
    luigi_cfg: Callable[[str], Path], sqlite_url: str, storage_dir: Path
) -> None:
    luigi_cfg(
        f"[task_history]\ndb_connection = {sqlite_url}\n"
        f"[artifact_store]\nartifact_storage_dir = {storage_dir}\n"
    )
    assert build(RModel())
    doc = json.loads(ok(CliRunner().invoke(main, ["show", "RModel.model", "--json"])))
    assert [r["status"] for r in doc["runs"]] == ["DONE"]
    assert doc["runs"][0]["finished_at"].endswith("Z")
    assert doc["upstream"] == [{"name": "RData", "version": 0}]
    out = ok(CliRunner().invoke(main, ["show", "RModel.model"]))
    assert f"#{doc['runs'][0]['record_id']} DONE on " in out.split("runs:")[1]


def test_get_prints_a_bounded_repr_and_writes_files(env: Env, tmp_path: Path) -> None:
    assert ok(env.run("get", "other")).strip() == "'some text'"
    long = ok(env.run("get", "features"))
    assert long.startswith("{'x': [0, 1, 2") and "..." in long and len(long) < 400
    assert "array(" in ok(env.run("get", "raw"))
    out = tmp_path / "out"
    assert "raw bytes" in ok(env.run("get", "raw:0", "-o", str(out)))
    assert out.read_bytes() == b"raw bytes"
    ok(env.run("get", "other", "-o", str(out)))
    assert out.read_text() == "some text"
    assert "numpy .npy" in ok(env.run("get", "raw:1", "-o", str(out)))
    assert np.array_equal(np.load(out), np.arange(12).reshape(3, 4))
    ok(env.run("get", "features", "--output", str(out)))
    assert pickle.loads(out.read_bytes()) == {"x": list(range(100))}
    line = fails(env.run("get", "other", "-o", str(tmp_path / "no" / "such" / "dir")))
    assert "Could not write" in line


def test_lineage_tree(env: Env) -> None:
    up = ok(env.run("lineage", "model")).splitlines()
    assert up == [
        "model v0",
        "└── features v0  [Features_3_abc]",
        "    ├── other v0",
        "    └── raw v1",
    ]
    assert ok(env.run("lineage", "model:0", "--depth", "1")).splitlines() == up[:2]
    down = ok(env.run("lineage", "raw:1", "--downstream")).splitlines()
    assert down == ["raw v1", "└── features v0  [Features_3_abc]", "    └── model v0"]
    assert ok(env.run("lineage", "raw:0", "--downstream")).splitlines() == ["raw v0"]
    fails(env.run("lineage", "model", "--depth", "-1"), code=2)


def test_delete_asks_first(env: Env) -> None:
    declined = env.run("delete", "raw", "--version", "0", input="n\n")
    assert declined.exit_code == 0 and declined.stdout == "Nothing deleted.\n"
    assert "Error" not in declined.output
    assert [a.version for a in env.store.versions("raw")] == [0, 1]
    assert "deleted 1 version(s) of 'raw'" in ok(
        env.run("delete", "raw", "--version", "0", input="y\n")
    )
    assert [a.version for a in env.store.versions("raw")] == [1]
    ok(env.run("delete", "other", "--version", "latest", "--yes"))
    assert not env.store.exists("other")
    env.store.save(1, "tmp")
    env.store.save(2, "tmp")
    assert (
        "Delete all 2 version(s) of 'tmp'?" in env.run("delete", "tmp", "--version", "all").output
    )
    assert "deleted 2" in ok(env.run("delete", "tmp", "--version", "all", "-y"))
    assert "No artifact named 'tmp'" in fails(env.run("delete", "tmp", "--version", "all", "-y"))
    assert "no version 7" in fails(env.run("delete", "raw", "--version", "7", "-y"))
    assert "Invalid version '1.5'" in fails(env.run("delete", "raw", "--version", "1.5", "-y"))
    fails(env.run("delete", "raw"), code=2)  # --version is required


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["show", "nope"], "No artifact named 'nope'"),
        (["show", "raw:9"], "has no version 9"),
        (["show", "raw:1.9"], "Bad version in 'raw:1.9'"),
        (["get", "raw:-1"], "Bad version in 'raw:-1'"),
        (["get", "raw:"], "Bad version in 'raw:'"),
        (["lineage", ":3"], "has no name before ':'"),
        (["show", "raw@prod"], "prod"),
    ],
)
def test_bad_input_is_one_line_and_status_1(local: Env, argv: list[str], message: str) -> None:
    assert message in fails(local.run(*argv))


def test_usage_errors_exit_2(local: Env) -> None:
    fails(local.run("show"), code=2)
    fails(local.run("frobnicate"), code=2)
    fails(local.run("list", "--bogus"), code=2)


def test_unreachable_database_is_one_line(storage_dir: Path) -> None:
    url = "postgresql://postgres@127.0.0.1:1/x"
    result = CliRunner().invoke(main, ["--db-url", url, "--storage-dir", str(storage_dir), "list"])
    line = fails(result)
    assert line.startswith("Error: ") and "127.0.0.1:1" in line
    bad = CliRunner().invoke(main, ["--db-url", "nonsense://", "list"])
    assert fails(bad).startswith("Error: ")


def test_help_everywhere(local: Env) -> None:
    assert "--db-url" in ok(local.run("--help"))
    for command in ("list", "versions", "show", "get", "lineage", "delete", "migrate"):
        assert "Usage:" in ok(local.run(command, "--help")), command


def test_configured_store_is_used_without_overrides(
    luigi_cfg: Callable[[str], Path], sqlite_url: str, storage_dir: Path
) -> None:
    luigi_cfg(
        f"[artifact_store]\ndb_connection = {sqlite_url}\nartifact_storage_dir = {storage_dir}\n"
    )
    ll.save(41, "answer")
    assert json.loads(ok(CliRunner().invoke(main, ["list", "--json"])))[0]["name"] == "answer"
    assert ok(CliRunner().invoke(main, ["get", "answer:0"])).strip() == "41"


def test_parse_spec_is_strict() -> None:
    assert parse_spec("m") == ("m", "latest")
    assert parse_spec("m:3") == ("m", 3)
    assert parse_spec("m:latest") == ("m", "latest")
    assert parse_spec("m@prod") == ("m@prod", "latest")
    assert parse_spec("ns:m:latest") == ("ns:m", "latest")
    with pytest.raises(ll.InvalidArgumentError, match="'ns:m:latest'"):
        parse_spec("ns:m")
    for bad in ("m:all", "m:v1", "m: 1", "m:+1", "m:\u0661"):
        with pytest.raises(ll.InvalidArgumentError):
            parse_spec(bad)


def _script(*argv: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *argv], capture_output=True, text=True, timeout=120, **kwargs
    )


def test_installed_console_script(local: Env) -> None:
    assert SCRIPT.exists(), "pip install -e . installs the linea-luigi script"
    listed = _script(*local.args, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [o["name"] for o in json.loads(listed.stdout)] == ["features", "model", "other", "raw"]
    missing = _script(*local.args, "show", "nope:1")
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr.count("\n") == 1 and "No artifact named 'nope'" in missing.stderr
    bad = _script(*local.args, "show", "raw:x")
    assert bad.returncode == 1 and "Bad version" in bad.stderr and "Traceback" not in bad.stderr
    usage = _script("lineage")
    assert usage.returncode == 2
    module = subprocess.run(
        [sys.executable, "-m", "linea_luigi", "--help"], capture_output=True, text=True, timeout=120
    )
    assert module.returncode == 0 and "lineage" in module.stdout


def test_installed_console_script_on_postgresql_s3(pg_s3: Env, tmp_path: Path) -> None:
    """The script in a child process reads luigi.cfg (LUIGI_CONFIG_PATH) and the AWS variables."""
    listed = _script("list", "--json")
    assert listed.returncode == 0, listed.stderr
    objs = json.loads(listed.stdout)
    assert [o["name"] for o in objs] == ["features", "model", "other", "raw"]
    assert all(o["uri"].startswith(f"s3://{BUCKET}/cli/") for o in objs)
    out = tmp_path / "raw.npy"
    written = _script("get", "raw:1", "-o", str(out))
    assert written.returncode == 0, written.stderr
    assert np.array_equal(np.load(out), np.arange(12).reshape(3, 4))
    missing = _script("lineage", "model:5")
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1
    assert "has no version 5" in missing.stderr


def test_script_piped_into_head_stops_quietly(local: Env) -> None:
    """A reader that stops early (``| head``) ends the listing without a traceback."""
    for i in range(300):  # about 120 KB of JSON: more than a pipe holds
        local.store.save(i, f"bulk{i:04d}")
    child = subprocess.Popen(
        [str(SCRIPT), *local.args, "list", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None and child.stderr is not None
    assert child.stdout.read(100).startswith(b"[")
    child.stdout.close()
    err = child.stderr.read().decode()
    assert child.wait(timeout=120) == 1
    assert err == "", err
