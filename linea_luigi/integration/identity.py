"""Task identity keys: when are two Luigi tasks the same computation?

Luigi's ``task_id`` hashes each parameter's serialized string, so a
``DictParameter`` given as ``{"a": 1, "b": 2}`` and as ``{"b": 2, "a": 1}``
makes two task ids (luigi #2324), and it knows nothing of code versions or of
changes upstream. The identity key is the sha256 of canonical JSON (sorted
keys, no whitespace) of::

    {"v": 1,                                  # recipe version
     "family": "<namespace>.<Class>",
     "params": {name: value, ...},
     "code_version": "<artifact_code_version>" | null,
     "requires": <requires() with every task replaced by its identity key>}

* ``params`` are the parameters that make Luigi's own ``task_id``: significant
  and ``ParameterVisibility.PUBLIC`` (hidden and private parameters do not
  identify a task to Luigi either, and a hash of a secret must not be stored).
  Each value is its ``Parameter.serialize()`` string, except that dict and list
  parameters become the JSON structure itself, so key order stops mattering.
* ``requires`` keeps the shape of ``requires()``: dict keys are sorted by the
  canonical JSON, lists keep their order (it is the order ``load_input``
  returns), sets are sorted. Upstream keys are computed with the same recipe,
  recursively, so a change anywhere upstream re-keys everything downstream.
  Plain Luigi tasks get a key by the same recipe (without a code version unless
  they define ``artifact_code_version``).

Nothing here depends on the process: no ``id()``, no ``hash()`` of strings
(``PYTHONHASHSEED`` differs between processes), no memory addresses.

A key is computed once per task instance and kept on it: Luigi parameters are
immutable and Luigi hands out one instance per task id, so every later
``complete()``, ``output()`` and ``save()`` of a task, and every downstream
key that walks through it, reuses the key instead of walking ``requires()``
again.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import luigi
from luigi.parameter import DictParameter, ListParameter, ParameterVisibility

from ..errors import InvalidArgumentError

#: bump when the recipe changes: every key changes with it
RECIPE_VERSION = 1

#: a ``luigi.Task``; Luigi's methods are untyped, so it is handled as Any
Task = Any

#: instance attributes memoising a task's identity key, parameters and requirements
_MEMO = "_ll_identity_key"
_PARAMS_MEMO = "_ll_params"
REQUIRES_MEMO = "_ll_requires"


def requirements(task: Task) -> Any:
    """``task.requires()``, memoised on tasks that take care to pickle without it.

    Each call of ``requires()`` re-instantiates every upstream task through
    Luigi's registry (tens of µs apiece); the key, ``load_input()`` and the
    lineage all need the same structure once per task. The memo holds upstream
    task objects, so it is only kept on tasks whose pickled state leaves it
    out (``ArtifactTaskMixin``): Luigi pickles tasks into worker pools.
    """
    if not getattr(task, "_ll_memoise_requires", False):
        return task.requires()
    memo = task.__dict__.get(REQUIRES_MEMO, REQUIRES_MEMO)
    if memo is REQUIRES_MEMO:
        memo = task.__dict__[REQUIRES_MEMO] = task.requires()
    return memo


def canonical_json(value: Any) -> str:
    """Deterministic JSON text: sorted keys, no whitespace, ASCII only."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def task_params(task: Task) -> dict[str, Any]:
    """The significant, public parameters of ``task`` as canonical JSON values.

    These both identify the task and are recorded with its artifacts; hidden,
    private and ``significant=False`` parameters are left out. Memoised on the
    task like its key (Luigi's ``get_params`` walks ``dir()`` of the class).
    """
    memo: dict[str, Any] | None = task.__dict__.get(_PARAMS_MEMO)
    if memo is not None:
        return dict(memo)
    result: dict[str, Any] = {}
    values = task.param_kwargs
    for name, param in _identifying_params(type(task)):
        text = param.serialize(values[name])
        if isinstance(param, (DictParameter, ListParameter)):
            try:
                result[name] = json.loads(text)
            except (TypeError, ValueError) as exc:
                raise InvalidArgumentError(
                    f"Parameter {name!r} of {task.get_task_family()} serialized to {text!r}, which "
                    f"is not JSON ({exc}); dict and list parameters must hold JSON values."
                ) from None
        else:
            result[name] = text
    task.__dict__[_PARAMS_MEMO] = result
    return dict(result)


_class_params: weakref.WeakKeyDictionary[type, list[tuple[str, Any]]] = weakref.WeakKeyDictionary()
#: per class: the size of each class dict along its MRO, and Luigi's parameter list
_luigi_params: weakref.WeakKeyDictionary[type, tuple[list[int], list[tuple[str, Any]]]] = (
    weakref.WeakKeyDictionary()
)


def luigi_params(cls: type, compute: Callable[[], list[tuple[str, Any]]]) -> list[tuple[str, Any]]:
    """What Luigi's ``get_params()`` returns for ``cls``, computed by ``compute`` when stale.

    Luigi walks ``dir()`` of the class on every call, about a dozen calls per
    task, so that classes can be extended after they are defined. The list is
    computed again whenever a class along the MRO gained or lost an attribute
    (``luigi.util.inherits`` adds parameters) or a remembered parameter is no
    longer the class's (a replaced default); checking that costs a fraction
    of the walk. Callers get their own copy of the list.
    """
    shape = [len(k.__dict__) for k in cls.__mro__]
    memo = _luigi_params.get(cls)
    if (
        memo is not None
        and memo[0] == shape
        and all(getattr(cls, name, None) is param for name, param in memo[1])
    ):
        return list(memo[1])
    params = list(compute())
    _luigi_params[cls] = (shape, params)
    return list(params)


def _identifying_params(cls: type) -> list[tuple[str, Any]]:
    """The parameters Luigi's ``task_id`` uses (significant, public), once per class.

    The same selection as ``to_str_params(only_significant=True, only_public=True)``,
    without its ``dir()`` walk of the class on every call.
    """
    found = _class_params.get(cls)
    if found is None:
        found = _class_params[cls] = [
            (name, param)
            for name, param in cls.get_params()  # type: ignore[attr-defined]
            if param.significant and param.visibility == ParameterVisibility.PUBLIC
        ]
    return found


def code_version(task: Task) -> str | None:
    """``artifact_code_version`` as text (ints allowed), or None when unset."""
    value = getattr(task, "artifact_code_version", None)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidArgumentError(
            f"{task.get_task_family()}.artifact_code_version must be a str or int, got "
            f"{type(value).__name__} {value!r}."
        )
    return str(value)


def identity_key(task: Task) -> str:
    """The identity key (64 hex digits) of ``task``; see the module docstring."""
    memo: str | None = task.__dict__.get(_MEMO)
    return memo if memo is not None else _Keyer().key(task)


class _Keyer:
    """One computation; the memo on each task makes diamonds hash once."""

    def __init__(self) -> None:
        self._active: list[Task] = []

    def key(self, task: Task) -> str:
        memo: str | None = task.__dict__.get(_MEMO)
        if memo is not None:
            return memo
        if any(t is task for t in self._active):
            chain = " -> ".join(t.get_task_family() for t in [*self._active, task])
            raise InvalidArgumentError(f"requires() forms a cycle: {chain}. Break the cycle.")
        self._active.append(task)
        try:
            payload = {
                "v": RECIPE_VERSION,
                "family": task.get_task_family(),
                "params": task_params(task),
                "code_version": code_version(task),
                "requires": self._deps(task, requirements(task)),
            }
        finally:
            self._active.pop()
        digest = hashlib.sha256(canonical_json(payload).encode("ascii")).hexdigest()
        task.__dict__[_MEMO] = digest
        return digest

    def _deps(self, owner: Task, struct: Any) -> Any:
        if isinstance(struct, luigi.Task):
            return self.key(struct)
        if struct is None:
            return None
        if isinstance(struct, Mapping):
            return {str(k): self._deps(owner, v) for k, v in struct.items()}
        if isinstance(struct, (set, frozenset)):
            return sorted((self._deps(owner, v) for v in struct), key=canonical_json)
        if isinstance(struct, (str, bytes)):
            raise _bad_requires(owner, struct)
        try:
            items = iter(struct)
        except TypeError:
            raise _bad_requires(owner, struct) from None
        return [self._deps(owner, v) for v in items]


def _bad_requires(owner: Task, struct: Any) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"requires() of {owner.get_task_family()} returned {struct!r}; expected a task, or "
        "tasks in a list, tuple, set or dict."
    )
