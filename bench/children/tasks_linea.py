# mypy: disallow-untyped-calls=False
"""linea_luigi peer: ``ArtifactTaskMixin`` tasks on the store named by the environment."""

from __future__ import annotations

from typing import Any

import luigi

import linea_luigi as ll

ARRAY: Any = None


def configure(root: str, payload: Any = None) -> None:
    """The store comes from the environment; ``payload`` is what the array task saves.

    The store is opened here, before any timing: its database then exists, as
    it does for every pipeline after the first use of a store (plain Luigi's
    counterpart is an output folder that already exists).
    """
    global ARRAY
    ARRAY = payload
    ll.artifact_store().exists("bench.leaf")


class LineaLeaf(ll.ArtifactTaskMixin, luigi.Task):
    i = luigi.IntParameter()
    artifact_name = "bench.leaf"

    def run(self) -> None:
        self.save({"i": self.i, "squares": [self.i * k for k in range(8)]})


class LineaFinal(ll.ArtifactTaskMixin, luigi.Task):
    n = luigi.IntParameter()
    artifact_name = "bench.final"

    def requires(self) -> list[LineaLeaf]:
        return [LineaLeaf(i=i) for i in range(self.n)]

    def run(self) -> None:
        values = self.load_input()
        self.save({"n": len(values), "total": sum(v["i"] for v in values)})


class LineaArray(ll.ArtifactTaskMixin, luigi.Task):
    mib = luigi.IntParameter()
    artifact_name = "bench.array"

    def run(self) -> None:
        self.save(ARRAY)
