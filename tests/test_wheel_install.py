"""The built wheel installed into a fresh virtual environment outside the checkout, used as a
new user would: a save and a load, ``linea-luigi --help``, ``linea-luigi migrate`` on an empty
database, and ``linea-luigid`` serving ``/artifacts``.

The environment is made once per session (about 20 s: a venv, then the wheel and its
dependencies from the package index through pip's cache). Every command runs with its
working directory in a temporary folder and no ``PYTHONPATH``, so only the installed
package can be imported: the tests check that it is the one imported.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from dist_support import (
    REPO,
    Distributions,
    built_distributions,  # noqa: F401 (the fixture)
    unavailable,
)
from scheduler_support import get, scheduler_process

#: what pip prints when a requirement cannot be fetched (no index)
UNREACHABLE = "No matching distribution found"


@dataclass(frozen=True)
class WheelEnv:
    """A virtual environment with the wheel installed."""

    root: Path
    seconds: float

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    def env(self) -> dict[str, str]:
        """This process's environment, less anything pointing at the checkout or its venv."""
        dropped = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "LUIGI_CONFIG_PATH")
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in dropped and not k.startswith("LINEA_LUIGI_")
        }
        env["PATH"] = os.pathsep.join([str(self.bin), env.get("PATH", "")])
        return env

    def run(self, *command: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
        """Run ``command`` (a console script or ``python``) of this environment in ``cwd``."""
        return subprocess.run(
            [str(self.bin / command[0]), *command[1:]],
            cwd=cwd,
            env={**self.env(), **env},
            capture_output=True,
            text=True,
            timeout=300,
        )


@pytest.fixture(scope="session")
def wheel_env(distributions: Distributions, tmp_path_factory: pytest.TempPathFactory) -> WheelEnv:
    """A fresh venv outside the checkout with the built wheel (not editable) installed."""
    root = tmp_path_factory.mktemp("wheel-venv")
    assert not root.resolve().is_relative_to(REPO)
    started = time.monotonic()
    # no pip inside the venv: this interpreter's pip installs into it (``--python``), which
    # spares the venv's own pip install (about 9 s); byte-compiling is spared too
    pip = [sys.executable, "-m", "pip", "--python", str(root / "bin" / "python")]
    options = ["--quiet", "--no-input", "--no-compile", "--disable-pip-version-check"]
    steps = [
        [sys.executable, "-m", "venv", "--without-pip", str(root)],
        [*pip, "install", *options, str(distributions.wheel)],
    ]
    for step in steps:
        done = subprocess.run(step, cwd=root, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            output = done.stdout + done.stderr
            tail = "\n".join(output.splitlines()[-20:])
            if UNREACHABLE in output:
                unavailable(f"the wheel's dependencies could not be installed:\n{tail}")
            pytest.fail(f"{' '.join(step)} failed ({done.returncode}):\n{tail}")
    return WheelEnv(root, time.monotonic() - started)


SAVE_AND_LOAD = """
    import json, sys
    from importlib import metadata
    import linea_luigi as ll

    db, folder = sys.argv[1:]
    store = ll.ArtifactStore(db_url=db, storage_dir=folder)
    first = store.save({"weights": [0.1, 0.2]}, "model")
    second = store.save(list(range(5)), "model")
    direct_url = metadata.distribution("linea-luigi").read_text("direct_url.json")
    print(json.dumps({
        "module": ll.__file__,
        "versions": [first.version, second.version],
        "loaded": [store.load("model", version=0), store.load("model")],
        "uri": store.get("model").uri,
        "direct_url": direct_url,
    }))
"""


def save_and_load(wheel_env: WheelEnv, where: Path) -> dict[str, object]:
    script = where / "save_and_load.py"
    script.write_text(textwrap.dedent(SAVE_AND_LOAD))
    db_url = f"sqlite:///{where / 'meta.sqlite'}"
    done = wheel_env.run("python", str(script), db_url, str(where / "artifacts"), cwd=where)
    assert done.returncode == 0, done.stderr
    report: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return report


def test_a_save_and_a_load_run_from_the_installed_wheel(
    wheel_env: WheelEnv, tmp_path: Path
) -> None:
    report = save_and_load(wheel_env, tmp_path)
    module = Path(str(report["module"])).resolve()
    assert module.is_relative_to(wheel_env.root.resolve()), module
    assert "site-packages" in module.parts
    assert not module.is_relative_to(REPO)
    assert "editable" not in str(report["direct_url"])  # installed from the wheel file
    assert report["versions"] == [0, 1]
    assert report["loaded"] == [{"weights": [0.1, 0.2]}, [0, 1, 2, 3, 4]]
    stored = str(report["uri"]).removeprefix("file://")
    assert Path(stored).is_file()
    assert Path(stored).is_relative_to(tmp_path / "artifacts")


def test_the_installed_cli_answers_help(wheel_env: WheelEnv, tmp_path: Path) -> None:
    done = wheel_env.run("linea-luigi", "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Usage: linea-luigi")
    for command in ("list", "show", "get", "migrate", "gc"):
        assert f"  {command} " in done.stdout, command


def test_the_installed_cli_migrates_an_empty_database(wheel_env: WheelEnv, tmp_path: Path) -> None:
    database = tmp_path / "empty.sqlite"
    done = wheel_env.run("linea-luigi", "migrate", "--db", f"sqlite:///{database}", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    with sqlite3.connect(database) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        revisions = conn.execute("SELECT version_num FROM linea_luigi_alembic_version").fetchall()
    assert "linea_luigi_alembic_version" in tables
    assert len(revisions) == 1 and revisions[0][0], revisions
    assert revisions[0][0] in done.stdout  # it prints the revision it reached


def test_the_installed_linea_luigid_serves_the_artifact_browser(
    wheel_env: WheelEnv, tmp_path: Path
) -> None:
    save_and_load(wheel_env, tmp_path)
    cfg = tmp_path / "luigi.cfg"
    cfg.write_text(f"[artifact_store]\ndb_connection = sqlite:///{tmp_path / 'meta.sqlite'}\n")
    env = {**wheel_env.env(), "LUIGI_CONFIG_PATH": str(cfg)}
    with scheduler_process([str(wheel_env.bin / "linea-luigid")], tmp_path, env) as port:
        status, body = get(port, "/artifacts")
    assert status == 200, body[-2000:]
    assert ">model<" in body or "/artifacts/model" in body
