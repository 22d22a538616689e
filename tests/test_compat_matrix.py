"""The compatibility matrix: a fast subset of the suite under the other supported versions.

The whole suite runs in the default environment (the newest releases, on the
machine's Python). Here some of its files run again, as a child pytest with
this checkout on ``PYTHONPATH``, in environments ``venv_support`` builds once
and caches:

- ``oldest``: the oldest Python the package declares, with every dependency of
  ``pyproject.toml`` pinned at its ``>=`` bound: the store, the Luigi
  integration (target, mixin, lineage, identity, ``linea-luigid``), migrations;
- ``newest-python``: the newest Python the machine has, with the dependency
  versions of the default environment: the same files;
- ``other-pandas``: the pandas major version the default environment lacks
  (``cross_version_support``): the serializer, format and column tests.

Each child's versions are asked of it, printed, and checked against the
intended ones (pip could quietly pick others); then its pytest must pass.
Children run two at a time (the machine has two cores), from the first test
that asks. A child sees ``CHILD_GUARD`` and skips this module; ``CI`` passes
through, so there too a missing PostgreSQL fails. In CI an environment that
cannot be had (no such Python, no registry) fails the test.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
from ci_support import unavailable
from cross_version_support import OTHER, other_env, suite_pandas_major
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from venv_support import (
    CHILD_GUARD,
    REPO,
    CachedEnv,
    EnvironmentUnavailable,
    EnvSpec,
    cached_env,
    dependencies,
    find_python,
    lower_bounds,
    tools,
)

if os.environ.get(CHILD_GUARD):
    pytest.skip("a child of the matrix does not run the matrix", allow_module_level=True)

OLDEST_PYTHON = "3.10"
NEWEST_PYTHON = "3.13"
#: the store, the Luigi integration and migrations
CORE = (
    "tests/test_store_api.py",
    "tests/test_luigi_target.py",
    "tests/test_luigi_mixin.py",
    "tests/test_luigi_lineage.py",
    "tests/test_luigi_identity.py",
    "tests/test_luigi_luigid.py",
    "tests/test_migrations.py",
)
#: what CORE imports besides the package, and setuptools (the migrations-are-packaged test)
CORE_TOOLS = ("pytest", "moto", "numpy")
FORMATS = (
    "tests/test_serializers.py",
    "tests/test_formats_interop.py",
    "tests/test_formats_tamper.py",
    "tests/test_column_loads.py",
    "tests/test_library_versions.py",
    "tests/test_serializer_config.py",
)
CHILD_TIMEOUT_S = 1200


@dataclass(frozen=True)
class Prepared:
    """An environment and the versions it is meant to have (name -> specifier)."""

    env: CachedEnv
    intended: dict[str, str]


@dataclass(frozen=True)
class Combination:
    name: str
    prepare: Callable[[], Prepared]
    files: tuple[str, ...]


@dataclass(frozen=True)
class Outcome:
    """What a combination's child pytest did, with the versions it ran."""

    prepared: Prepared
    versions: dict[str, str]
    returncode: int
    #: pytest's closing line
    summary: str
    output: str
    seconds: float


def _python(version: str) -> Path:
    found = find_python(version)
    if found is None:
        raise EnvironmentUnavailable(f"no Python {version} on PATH or in pyenv")
    return found


def _names(requirements: list[str]) -> list[str]:
    return [Requirement(r).name for r in requirements]


def oldest() -> Prepared:
    floors = lower_bounds(dependencies())
    pins = [f"{name}=={version}" for name, version in floors.items()]
    # moto needs boto3; s3fs's extra pins the boto3 matching its botocore, which pip
    # would otherwise find by trying boto3 releases one by one (minutes)
    pins.append(f"s3fs[boto3]=={floors['s3fs']}")
    # Luigi before 3.7.3 imports pkg_resources in its server (so luigid and linea-luigid
    # need it), which setuptools 82 removed: the oldest environment has a setuptools of its time
    pins.append("setuptools<82")
    spec = EnvSpec("oldest", _python(OLDEST_PYTHON), (*pins, *tools(*CORE_TOOLS)))
    intended = {name: f"=={version}" for name, version in floors.items()}
    return Prepared(cached_env(spec), {"python": f"=={OLDEST_PYTHON}.*", **intended})


def newest_python() -> Prepared:
    here = {name: metadata.version(name) for name in _names(dependencies())}
    pins = [f"{name}=={version}" for name, version in here.items()]
    requirements = (*pins, *tools(*CORE_TOOLS, "setuptools"))
    spec = EnvSpec("newest-python", _python(NEWEST_PYTHON), requirements)
    intended = {name: f"=={version}" for name, version in here.items()}
    return Prepared(cached_env(spec), {"python": f"=={NEWEST_PYTHON}.*", **intended})


def other_pandas() -> Prepared:
    pandas_pin = next(r for r in OTHER[suite_pandas_major()] if Requirement(r).name == "pandas")
    env = other_env().env
    return Prepared(env, {"pandas": str(Requirement(pandas_pin).specifier)})


COMBINATIONS = {
    c.name: c
    for c in (
        Combination("oldest", oldest, CORE),
        Combination("newest-python", newest_python, CORE),
        Combination("other-pandas", other_pandas, FORMATS),
    )
}
#: recorded for every combination, besides what it pins
RECORDED = ("luigi", "sqlalchemy", "alembic", "pandas", "numpy", "pyarrow")


def _run(combination: Combination, basetemp: Path) -> Outcome:
    started = time.monotonic()
    prepared = combination.prepare()
    env = prepared.env
    versions = env.versions(sorted({*RECORDED, *prepared.intended} - {"python"}))
    command = ["-m", "pytest", "-q", "-p", "no:cacheprovider", f"--basetemp={basetemp}"]
    child = env.run([*command, *combination.files], cwd=REPO, timeout=CHILD_TIMEOUT_S)
    summary = (child.stdout.strip().splitlines() or [""])[-1]
    output = child.stdout + child.stderr
    seconds = time.monotonic() - started
    return Outcome(prepared, versions, child.returncode, summary, output, seconds)


@pytest.fixture(scope="module")
def matrix(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Future[Outcome]]]:
    """Every selected combination, started now, two at a time, the slowest first."""
    selected = [
        str(item.callspec.params["name"])
        for item in request.session.items
        if isinstance(item, pytest.Function)
        and item.module is request.module
        and hasattr(item, "callspec")
    ]
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="compat") as pool:
        futures = {
            name: pool.submit(_run, COMBINATIONS[name], tmp_path_factory.mktemp(name))
            for name in dict.fromkeys(selected)
        }
        yield futures
        for future in futures.values():
            future.cancel()


@pytest.mark.parametrize("name", list(COMBINATIONS))
def test_the_subset_passes_there(
    name: str, matrix: dict[str, Future[Outcome]], capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        outcome = matrix[name].result(timeout=2 * CHILD_TIMEOUT_S)
    except EnvironmentUnavailable as exc:
        unavailable(f"the {name} environment could not be had: {exc}")
    versions = outcome.versions
    env = outcome.prepared.env
    how = "cached" if env.built_in_s is None else f"built in {env.built_in_s:.0f} s"
    shown = ", ".join(f"{n} {v}" for n, v in versions.items() if n != "linea_luigi")
    with capsys.disabled():
        print(f"\n[compat {name}] {shown} (env {how}): {outcome.summary} [{outcome.seconds:.0f} s]")

    assert Path(versions["linea_luigi"]).is_relative_to(REPO), versions["linea_luigi"]
    wrong = {
        n: (versions.get(n), wanted)
        for n, wanted in outcome.prepared.intended.items()
        if n not in versions or Version(versions[n]) not in SpecifierSet(wanted)
    }
    assert not wrong, f"{name}: installed versions are not the intended ones: {wrong}"
    tail = "\n".join(outcome.output.splitlines()[-60:])
    assert outcome.returncode == 0, f"{name}: the child pytest failed:\n{tail}"
    assert re.search(r"\b\d+ passed\b", outcome.summary), f"{name}: none passed:\n{tail}"
