# mypy: disallow-untyped-calls=False
"""Plain Luigi peer: ``LocalTarget`` + ``pickle`` protocol 5, as users write by hand."""

from __future__ import annotations

import os
import pickle
from typing import Any

import luigi
import luigi.format

#: output folder and large payload, set by the child before building
ROOT = "."
ARRAY: Any = None


def configure(root: str, payload: Any = None) -> None:
    """Write under ``root``; ``payload`` is what the array task saves."""
    global ROOT, ARRAY
    ROOT, ARRAY = root, payload


def _target(name: str) -> luigi.LocalTarget:
    return luigi.LocalTarget(os.path.join(ROOT, name), format=luigi.format.Nop)


def dump(value: Any, target: luigi.LocalTarget) -> None:
    with target.open("w") as f:
        pickle.dump(value, f, protocol=5)


def load(target: luigi.LocalTarget) -> Any:
    with target.open("r") as f:
        return pickle.load(f)


class PlainLeaf(luigi.Task):
    i = luigi.IntParameter()

    def output(self) -> luigi.LocalTarget:
        return _target(f"leaf/{self.i}.pkl")

    def run(self) -> None:
        dump({"i": self.i, "squares": [self.i * k for k in range(8)]}, self.output())


class PlainFinal(luigi.Task):
    n = luigi.IntParameter()

    def requires(self) -> list[PlainLeaf]:
        return [PlainLeaf(i=i) for i in range(self.n)]

    def output(self) -> luigi.LocalTarget:
        return _target(f"final-{self.n}.pkl")

    def run(self) -> None:
        values = [load(t) for t in self.input()]
        dump({"n": len(values), "total": sum(v["i"] for v in values)}, self.output())


class PlainArray(luigi.Task):
    mib = luigi.IntParameter()

    def output(self) -> luigi.LocalTarget:
        return _target(f"array-{self.mib}.pkl")

    def run(self) -> None:
        dump(ARRAY, self.output())
