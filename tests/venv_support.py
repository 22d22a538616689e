"""Cached virtual environments that run this checkout under other versions, for tests.

The suite runs in one environment; a test that must prove something under
another Python, Luigi, SQLAlchemy or pandas asks ``cached_env(spec)`` for a
virtual environment with ``spec.requirements`` installed by pip. Each is made
once per interpreter and set of requirements and kept in a cache folder keyed
by them (``LINEA_LUIGI_TEST_CACHE``, else ``~/.cache/linea-luigi-tests``), so
only the first run pays for the install (and pip's own cache shortens that);
a file lock makes concurrent builders of one environment wait for the first.

This checkout's ``linea_luigi`` and ``tests/`` are put on the child's
``PYTHONPATH`` (as an editable install would) rather than installed, so one
cached environment serves every checkout, CI's fresh clone included. Children
get ``CHILD_GUARD`` in their environment: a pytest run inside one does not
build environments of its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
#: read at import, before a test points ``HOME`` at its own folder: pip's cache is the user's
HOME = Path.home()
CACHE = Path(os.environ.get("LINEA_LUIGI_TEST_CACHE") or HOME / ".cache" / "linea-luigi-tests")
MARKER = "ready.json"
#: set in every child's environment; its value names the environment
CHILD_GUARD = "LINEA_LUIGI_TEST_CHILD"
#: what a child must not inherit: another interpreter's home or environment
_NOT_INHERITED = ("PYTHONHOME", "VIRTUAL_ENV", "PYTHONPATH")
#: run in a child: what it runs and imports, as JSON
_PROBE = """
import json, platform, sys
from importlib import metadata
import linea_luigi
found = {"python": platform.python_version(), "linea_luigi": linea_luigi.__file__}
for name in sys.argv[1:]:
    try:
        found[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
        pass
print(json.dumps(found))
"""


class EnvironmentUnavailable(Exception):
    """An environment could not be made (no interpreter, no registry, a failed install)."""


@dataclass(frozen=True)
class EnvSpec:
    """What to build: a name for its folder, the interpreter, the pip requirements."""

    name: str
    python: Path
    requirements: tuple[str, ...]


@dataclass(frozen=True)
class CachedEnv:
    """A ready environment: its interpreter, and how it was had."""

    name: str
    python: Path
    #: seconds spent creating it in this process; None when it was found in the cache
    built_in_s: float | None

    def environ(self) -> dict[str, str]:
        """This process's environment (``CI`` included) with the checkout on ``PYTHONPATH``."""
        env = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(TESTS)])
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # no other Python's bytecode in the checkout
        env[CHILD_GUARD] = self.name
        return env

    def run(
        self, args: Sequence[str], *, cwd: Path, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """``python ARGS`` in this environment; its exit status and output, not checked."""
        return subprocess.run(
            [str(self.python), *args],
            env=self.environ(),
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def versions(self, distributions: Iterable[str]) -> dict[str, str]:
        """The interpreter's version and each of ``distributions`` installed, asked now.

        ``linea_luigi`` is where the child imports it from, to show it is this checkout.
        """
        done = self.run(["-c", _PROBE, *distributions], cwd=REPO, timeout=60)
        if done.returncode != 0:
            raise AssertionError(f"{self.name}: the version probe failed:\n{done.stderr}")
        found: dict[str, str] = json.loads(done.stdout)
        return found


def cached_env(spec: EnvSpec) -> CachedEnv:
    """The environment ``spec`` describes, made now unless the cache has it."""
    if os.environ.get(CHILD_GUARD):
        raise EnvironmentUnavailable(
            f"this process runs in the test environment {os.environ[CHILD_GUARD]!r}, "
            "which does not make environments of its own"
        )
    interpreter = _step([str(spec.python), "-c", "import sys; print(sys.version)"], "run it")
    key = hashlib.sha256(json.dumps([interpreter, sorted(spec.requirements)]).encode())
    folder = CACHE / f"{spec.name}-{key.hexdigest()[:16]}"
    python = folder / "bin" / "python"
    CACHE.mkdir(parents=True, exist_ok=True)
    with _locked(CACHE / f"{folder.name}.lock"):  # one builder at a time, others wait
        if (folder / MARKER).exists():
            return CachedEnv(spec.name, python, None)
        started = time.monotonic()
        shutil.rmtree(folder, ignore_errors=True)  # a half-made one from a killed run
        _step([str(spec.python), "-m", "venv", str(folder)], "create the environment")
        install = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        _step([*install, *spec.requirements], f"install {' '.join(spec.requirements)}")
        record = {"python": interpreter, "requirements": list(spec.requirements)}
        (folder / MARKER).write_text(json.dumps(record))
        return CachedEnv(spec.name, python, time.monotonic() - started)


def find_python(version: str) -> Path | None:
    """An interpreter of ``version`` ("3.10"): on ``PATH``, else one of pyenv's; None if none.

    Each candidate is run, since pyenv's shims are on ``PATH`` for every version it
    knows, whether or not that version is the one selected.
    """
    root = Path(os.environ.get("PYENV_ROOT") or HOME / ".pyenv")
    installed = sorted(
        root.glob(f"versions/{version}.*/bin/python{version}"),
        key=lambda p: [int(part) for part in p.parents[1].name.split(".") if part.isdigit()],
        reverse=True,
    )
    on_path = shutil.which(f"python{version}")
    for candidate in ([Path(on_path)] if on_path else []) + installed:
        try:
            said = subprocess.run(
                [str(candidate), "-c", "import sys, venv; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=30,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if said.returncode == 0 and said.stdout.strip() == version:
            return candidate
    return None


# -- the requirements, from pyproject.toml ----------------------------------------------------


def project() -> dict[str, Any]:
    """This checkout's ``pyproject.toml``: what is tested is the checkout, not an install."""
    import tomllib  # the suite's own Python only (3.11+); a child never reads it

    with (REPO / "pyproject.toml").open("rb") as handle:
        return tomllib.load(handle)


def dependencies() -> list[str]:
    """The package's own requirements, extras left out."""
    return list(project()["project"]["dependencies"])


def tools(*names: str) -> list[str]:
    """The requirements named ``names`` as ``pyproject.toml`` writes them in an extra.

    A test environment installs what a subset of the suite imports, at the
    bounds the project declares, not a copy of them.
    """
    from packaging.requirements import Requirement

    table = project()
    declared = [
        *table["build-system"]["requires"],
        *(r for extra in table["project"]["optional-dependencies"].values() for r in extra),
    ]
    by_name = {Requirement(r).name.lower(): r for r in declared}
    return [by_name[name.lower()] for name in names]


def lower_bounds(requirements: Iterable[str]) -> dict[str, str]:
    """Each requirement's distribution and the version of its ``>=`` bound."""
    from packaging.requirements import Requirement

    bounds = {}
    for text in requirements:
        requirement = Requirement(text)
        floors = [s.version for s in requirement.specifier if s.operator == ">="]
        if len(floors) != 1:
            raise ValueError(f"{text!r} has no single '>=' bound to pin")
        bounds[requirement.name] = floors[0]
    return bounds


# -- building -----------------------------------------------------------------------------------


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _step(command: list[str], what: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
    env["HOME"] = str(HOME)
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=1200, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EnvironmentUnavailable(f"could not {what}: {exc}") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).splitlines()[-15:])
        raise EnvironmentUnavailable(f"could not {what} (exit {done.returncode}):\n{tail}")
    return done.stdout.strip()
