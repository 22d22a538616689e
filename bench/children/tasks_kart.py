# mypy: disallow-untyped-calls=False
"""gokart peer: ``TaskOnKart`` tasks writing into a workspace set in Luigi's config."""

from __future__ import annotations

from typing import Any

import gokart
import luigi

ARRAY: Any = None


def configure(root: str, payload: Any = None) -> None:
    """Point every ``TaskOnKart`` at ``root/kart`` (as a luigi.cfg ``[TaskOnKart]`` would)."""
    global ARRAY
    ARRAY = payload
    path = f"{root}/kart"
    config = luigi.configuration.get_config()
    if not config.has_section("TaskOnKart"):
        config.add_section("TaskOnKart")
    config.set("TaskOnKart", "workspace_directory", path)
    config.set("TaskOnKart", "local_temporary_directory", f"{path}/tmp")


class KartLeaf(gokart.TaskOnKart):  # type: ignore[type-arg]
    i = luigi.IntParameter()

    def run(self) -> None:
        self.dump({"i": self.i, "squares": [self.i * k for k in range(8)]})


class KartFinal(gokart.TaskOnKart):  # type: ignore[type-arg]
    n = luigi.IntParameter()

    def requires(self) -> Any:
        return [KartLeaf(i=i) for i in range(self.n)]  # type: ignore[call-arg]

    def run(self) -> None:
        values = self.load()
        self.dump({"n": len(values), "total": sum(v["i"] for v in values)})


class KartArray(gokart.TaskOnKart):  # type: ignore[type-arg]
    mib = luigi.IntParameter()

    def run(self) -> None:
        self.dump(ARRAY)
