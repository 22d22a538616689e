# mypy: disallow-untyped-calls=False
"""linea_luigi peer: ``ArtifactTaskMixin`` tasks on the store named by the environment."""

from __future__ import annotations

from typing import Any

import luigi

import linea_luigi as ll

ARRAY: Any = None


def configure(root: str, payload: Any = None) -> None:
    """The store comes from the environment; ``payload`` is what the array task saves."""
    global ARRAY
    ARRAY = payload


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
