"""A second virtual environment with the other pandas major version, for cross-version tests.

The suite runs one pandas; a worker elsewhere may run the other major version
(2.2 beside 3.x, or 3.x beside 2). ``other_env()`` makes a virtual environment
with that pandas, a pyarrow and numpy of its time, and this package's own
dependencies, once per set of requirements: it is kept in a cache folder keyed
by them (``LINEA_LUIGI_TEST_CACHE``, else ``~/.cache/linea-luigi-tests``), so
only the first run pays for the install (pip's cache makes even that short).
This checkout's ``linea_luigi`` is put on the child's ``PYTHONPATH`` (as an
editable install would) rather than installed, so one cached environment
serves every checkout, CI's fresh clone included.

The module is also the child's program (``python -m cross_version_support``):
it loads or saves a frame with ``linea_luigi`` and prints JSON, with
``canonical`` making a frame comparable across pandas versions. pandas is
imported only inside functions, so the child gets its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
CACHE = Path(
    os.environ.get("LINEA_LUIGI_TEST_CACHE") or Path.home() / ".cache" / "linea-luigi-tests"
)
#: the other major version of pandas, with a pyarrow and numpy released beside it
OTHER = {
    3: ["pandas==2.2.3", "numpy~=2.1.0", "pyarrow~=18.1"],
    2: ["pandas>=3.0,<4", "numpy>=2.3", "pyarrow>=21"],
}
MARKER = "ready.json"


class EnvironmentUnavailable(Exception):
    """The second environment could not be made (no registry, a failed install)."""


@dataclass(frozen=True)
class OtherEnv:
    """A ready environment: its interpreter and what it runs."""

    python: Path
    pandas_version: str
    #: seconds spent creating it in this process; None when it was found in the cache
    built_in_s: float | None

    def run(self, *args: str, cwd: Path, timeout: float = 300) -> Any:
        """Run this module in the environment with ``args``; its printed JSON document."""
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "VIRTUAL_ENV")}
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(TESTS)])
        child = subprocess.run(
            [str(self.python), "-m", "cross_version_support", *args],
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if child.returncode != 0:
            raise AssertionError(f"the child failed ({child.returncode}):\n{child.stderr}")
        return json.loads(child.stdout.splitlines()[-1])


def suite_pandas_major() -> int:
    return int(metadata.version("pandas").split(".")[0])


def requirements() -> list[str]:
    """This package's dependencies (its installed metadata) plus the other pandas' pins."""
    own = [
        r
        for r in metadata.requires("linea-luigi") or []
        if "extra ==" not in r.replace('"', "").replace("'", "")
    ]
    return sorted(own) + OTHER[suite_pandas_major()]


def other_env() -> OtherEnv:
    """The environment for the other pandas, made now unless the cache has it."""
    reqs = requirements()
    key = hashlib.sha256(json.dumps([sys.version, reqs]).encode()).hexdigest()[:16]
    folder = CACHE / f"pandas-not-{suite_pandas_major()}-{key}"
    python = folder / "bin" / "python"
    CACHE.mkdir(parents=True, exist_ok=True)
    with _locked(CACHE / f"{folder.name}.lock"):  # one builder at a time, others wait
        marker = folder / MARKER
        if marker.exists():
            ready = json.loads(marker.read_text())
            return OtherEnv(python, ready["pandas"], None)
        started = time.monotonic()
        shutil.rmtree(folder, ignore_errors=True)  # a half-made one from a killed run
        _step([sys.executable, "-m", "venv", str(folder)], "create the environment")
        _step(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *reqs],
            f"install {' '.join(reqs)}",
        )
        version = _step(
            [str(python), "-c", "import pandas; print(pandas.__version__)"], "import pandas"
        ).strip()
        marker.write_text(json.dumps({"pandas": version, "requirements": reqs}))
        return OtherEnv(python, version, time.monotonic() - started)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _step(command: list[str], what: str) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EnvironmentUnavailable(f"could not {what}: {exc}") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).splitlines()[-15:])
        raise EnvironmentUnavailable(f"could not {what} (exit {done.returncode}):\n{tail}")
    return done.stdout


# -- the frame, and a form of it both pandas versions print alike ------------------------------


def sample_frame() -> Any:
    """Strings, categoricals, tz-aware timestamps, nullable ints, floats, a named index."""
    import numpy as np
    import pandas as pd

    rows = 6
    return pd.DataFrame(
        {
            "text": ["alpha", "beta", None, "δέλτα", "", "zeta"],
            "kind": pd.Categorical(
                ["b", "a", "b", None, "c", "a"], categories=["c", "b", "a"], ordered=True
            ),
            "when": pd.date_range(
                "2024-03-30 22:00", periods=rows, freq="90min", tz="Europe/Paris"
            ),
            "count": pd.array([1, None, 3, 4, None, -6], dtype="Int64"),
            "ratio": np.array([0.5, np.nan, 2.25, -1.0, 1e-9, 3.0]),
            "flag": [True, False, True, True, False, False],
        },
        index=pd.Index([f"r{i}" for i in range(rows)], name="row"),
    )


def _cell(value: Any) -> Any:
    import pandas as pd

    if value is None or (not isinstance(value, (str, bytes)) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "item"):  # a numpy scalar
        value = value.item()
    if isinstance(value, float) and math.isinf(value):
        return str(value)
    return value


def canonical(frame: Any) -> dict[str, Any]:
    """Values, dtype names, categories and the index of ``frame``, as plain JSON."""
    import pandas as pd

    columns = {}
    for name in frame.columns:
        series = frame[name]
        entry: dict[str, Any] = {
            "dtype": str(series.dtype),
            "values": [_cell(v) for v in series.tolist()],
        }
        if isinstance(series.dtype, pd.CategoricalDtype):
            entry["categories"] = [_cell(c) for c in series.cat.categories]
            entry["ordered"] = bool(series.cat.ordered)
        columns[str(name)] = entry
    return {
        "type": "pandas.DataFrame"
        if type(frame) is pd.DataFrame
        else f"{type(frame).__module__}.{type(frame).__qualname__}",
        "order": [str(c) for c in frame.columns],
        "columns": columns,
        "index": {
            "name": frame.index.name,
            "dtype": str(frame.index.dtype),
            "values": [_cell(v) for v in frame.index.tolist()],
        },
    }


# -- the child's side --------------------------------------------------------------------------


def _child(argv: list[str]) -> dict[str, Any]:
    """``load DB ROOT NAME`` or ``save DB ROOT NAME SERIALIZER``: what happened, as JSON."""
    import pandas as pd

    import linea_luigi as ll

    action, db_url, root, name, *rest = argv
    report: dict[str, Any] = {"pandas": pd.__version__, "linea_luigi": ll.__file__}
    store = ll.ArtifactStore(db_url, root)
    try:
        if action == "save":
            artifact = store.save(sample_frame(), name, serializer=rest[0])
            report["serializer"] = artifact.serializer
            report["frame"] = canonical(sample_frame())
        else:
            report["frame"] = canonical(store.load(name))
            report["columns"] = canonical(store.load(name, columns=["when", "count"]))
    except ll.ArtifactStoreError as exc:
        report["error"] = type(exc).__name__
        report["message"] = str(exc)
    return report


if __name__ == "__main__":
    print(json.dumps(_child(sys.argv[1:])))
