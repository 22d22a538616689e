"""Pick a peer's task module and check its outputs, importing only that peer."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from ..harness import GOKART, LINEA, PLAIN

_MODULES = {PLAIN: "tasks_plain", LINEA: "tasks_linea", GOKART: "tasks_kart"}
_PREFIX = {PLAIN: "Plain", LINEA: "Linea", GOKART: "Kart"}


def tasks_for(peer: str, root: str, payload: Any = None) -> ModuleType:
    """Import the peer's task module and point it at ``root`` (linea: via the environment)."""
    module = importlib.import_module(f"bench.children.{_MODULES[peer]}")
    module.configure(root, payload)
    return module


def task(module: ModuleType, peer: str, kind: str, **params: Any) -> Any:
    """A new instance of the peer's ``Leaf``/``Final``/``Array`` task."""
    return getattr(module, _PREFIX[peer] + kind)(**params)


def read_output(module: ModuleType, peer: str, instance: Any) -> Any:
    """The value a finished task saved, read through the peer's own API."""
    if peer == PLAIN:
        return module.load(instance.output())
    return instance.output().load()
