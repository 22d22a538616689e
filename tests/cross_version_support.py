"""A second virtual environment with the other pandas major version, for cross-version tests.

The suite runs one pandas; a worker elsewhere may run the other major version
(2.2 beside 3.x, or 3.x beside 2). ``other_env()`` makes a virtual environment
(``venv_support``: cached, this checkout on its ``PYTHONPATH``) with that pandas,
a pyarrow and numpy of its time, this package's own dependencies, and what the
suite's serializer and format tests import, so ``tests/test_compat_matrix.py``
can run those tests there too.

The module is also the child's program (``python -m cross_version_support``):
it loads or saves a frame with ``linea_luigi`` and prints JSON, with
``canonical`` making a frame comparable across pandas versions. pandas is
imported only inside functions, so the child gets its own.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from venv_support import (
    CachedEnv,
    EnvironmentUnavailable,
    EnvSpec,
    cached_env,
    dependencies,
    tools,
)

__all__ = [
    "EnvironmentUnavailable",
    "OtherEnv",
    "canonical",
    "other_env",
    "requirements",
    "sample_frame",
    "suite_pandas_major",
]

#: the other major version of pandas, with a pyarrow and numpy released beside it
OTHER = {
    3: ["pandas==2.2.3", "numpy~=2.1.0", "pyarrow~=18.1"],
    2: ["pandas>=3.0,<4", "numpy>=2.3", "pyarrow>=21"],
}
#: what the serializer and format tests import besides the pandas stack, at the declared bounds
FORMAT_TOOLS = ("pytest", "moto", "polars", "duckdb")


@dataclass(frozen=True)
class OtherEnv:
    """A ready environment with the other pandas, and that pandas' version."""

    env: CachedEnv
    pandas_version: str

    @property
    def python(self) -> Path:
        return self.env.python

    @property
    def built_in_s(self) -> float | None:
        return self.env.built_in_s

    def run(self, *args: str, cwd: Path, timeout: float = 300) -> Any:
        """Run this module in the environment with ``args``; its printed JSON document."""
        child = self.env.run(["-m", "cross_version_support", *args], cwd=cwd, timeout=timeout)
        if child.returncode != 0:
            raise AssertionError(f"the child failed ({child.returncode}):\n{child.stderr}")
        return json.loads(child.stdout.splitlines()[-1])


def suite_pandas_major() -> int:
    return int(metadata.version("pandas").split(".")[0])


def requirements() -> list[str]:
    """This package's dependencies, the format tests' tools and the other pandas' pins."""
    return sorted(dependencies()) + tools(*FORMAT_TOOLS) + OTHER[suite_pandas_major()]


def other_env() -> OtherEnv:
    """The environment for the other pandas, made now unless the cache has it."""
    spec = EnvSpec(
        f"pandas-not-{suite_pandas_major()}", Path(sys.executable), tuple(requirements())
    )
    env = cached_env(spec)
    return OtherEnv(env, env.versions(["pandas"])["pandas"])


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
