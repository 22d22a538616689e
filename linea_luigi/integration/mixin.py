"""``ArtifactTaskMixin``: make a Luigi task's output a versioned artifact.

::

    class Train(ll.ArtifactTaskMixin, luigi.Task):
        seed = luigi.IntParameter()
        artifact_code_version = "2"          # bump when run() changes meaning

        def requires(self):
            return Features(seed=self.seed)

        def run(self):
            self.save(fit(self.load_input()))

The task is complete iff an artifact with its identity key exists (see
``identity``), so a second run skips it and a change of parameters, code
version or anything upstream makes it run again, saving the next version.

**Several named values** (d6tflow #26): declare ``artifact_outputs``::

    class Fit(ll.ArtifactTaskMixin, luigi.Task):
        artifact_outputs = ("model", "metrics")

        def run(self):
            self.save({"model": m, "metrics": x})   # or self.save(m, "model") ...

**How values are stored**: ``artifact_serializer = "cloudpickle"`` forces one
serializer for the task's outputs (default None: the store's setting, ``auto``
unless configured); a dict such as ``{"frame": "parquet", "model":
"cloudpickle"}`` chooses per output.

``output()`` is then ``{"model": target, "metrics": target}`` for artifacts
named ``"Fit.model"`` and ``"Fit.metrics"``; the task is complete when all of
them exist; ``load_output()`` and a dependant's ``load_input()`` give a dict of
values.

**Store**: ``artifact_store()`` returns the configured default store; override
it (or set a class attribute ``artifact_store = ll.ArtifactStore(...)``) to
send one task's artifacts elsewhere. Lineage is only recorded between
artifacts of the same database.

**Computed once**: ``run()`` runs under a lock on the identity key held in
the metadata database (``task_lock``), so two pipelines sharing a task compute
it once; the second waits, finds the outputs saved and skips ``run()``.
``[artifact_store] task_lock = false`` turns it off.

Dynamic dependencies (tasks yielded from ``run()``) are not part of the
identity key or the lineage: Luigi only knows them while the task runs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, cast

import luigi
from luigi.task import flatten as _luigi_flatten
from luigi.task import getpaths as _luigi_getpaths
from sqlalchemy.engine import URL

from ..errors import InvalidArgumentError
from ..model import Artifact, TaskInfo
from ..names import check_name
from ..settings.settings import check_serializer
from ..store import ArtifactStore
from .identity import REQUIRES_MEMO, identity_key, luigi_params, requirements, task_params
from .target import ArtifactTarget
from .task_lock import HeldLock, hold, is_locked_run, locked_run

log = logging.getLogger(__name__)

#: ``luigi.task.flatten`` (untyped): any structure of targets or tasks -> flat list
flatten: Any = _luigi_flatten
#: ``luigi.task.getpaths`` (untyped): a structure of tasks -> the same of their outputs
getpaths: Any = _luigi_getpaths


class ArtifactTaskMixin:
    """Mix into a ``luigi.Task`` (before it) to store its output as versioned artifacts.

    Class attributes: ``artifact_name`` (default: the task family, with
    namespace), ``artifact_code_version`` (part of the identity key; bump it
    when ``run()`` changes what it computes), ``artifact_outputs`` (names of
    several outputs; empty for one output). The identity key, the task facts
    and the output targets are computed once per instance (parameters are
    immutable) and kept on it; they hold only plain data, so tasks still pickle
    and fork safely. The targets are rebuilt when the configured store changes.
    """

    artifact_name: ClassVar[str | None] = None
    artifact_code_version: ClassVar[str | int | None] = None
    artifact_outputs: ClassVar[tuple[str, ...]] = ()
    artifact_serializer: ClassVar[str | Mapping[str, str] | None] = None
    #: ``identity.requirements`` may keep ``requires()`` on the instance (see ``__getstate__``)
    _ll_memoise_requires: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Refuse ``class T(luigi.Task, ArtifactTaskMixin)``; run ``run()`` under the task lock.

        With that base order ``output()`` is Luigi's empty default and the task
        silently never completes; failing at class definition says why.
        ``run()`` is wrapped once (``task_lock.locked_run``, name and docstring kept).
        """
        super().__init_subclass__(**kwargs)
        run = getattr(cls, "run", None)
        if callable(run) and run is not luigi.Task.run and not is_locked_run(run):
            cls.run = locked_run(run, cls._ll_run_guard)  # type: ignore[attr-defined]
        for attr in ("output", "complete"):
            owner = next(k for k in cls.__mro__ if attr in vars(k))
            if owner is luigi.Task:
                raise InvalidArgumentError(
                    f"{cls.__name__} lists luigi.Task before ll.ArtifactTaskMixin, so Luigi's "
                    f"{attr}() hides the mixin's; declare class {cls.__name__}"
                    "(ll.ArtifactTaskMixin, luigi.Task)."
                )

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without memos that hold objects: upstream tasks, targets, loaded inputs.

        Luigi pickles tasks into worker pools; the upstream graph would travel
        with every task. The key and task facts (plain strings) are kept.
        """
        state = dict(self.__dict__)
        for memo in (REQUIRES_MEMO, _OUTPUT, _LOADED):
            state.pop(memo, None)
        return state

    @classmethod
    def get_params(cls) -> list[tuple[str, Any]]:
        """Luigi's ``get_params()``, remembered per class (see ``identity.luigi_params``).

        Luigi calls it about a dozen times per task and each call walks
        ``dir()`` of the class, which the mixin's own names make longer.
        """
        luigi_get_params: Any = super().get_params  # type: ignore[misc]
        return luigi_params(cls, luigi_get_params)

    # -- identity and store -------------------------------------------------------

    def artifact_store(self) -> ArtifactStore:
        """The store this task's artifacts go to; override to choose one per task."""
        from ..store.default import artifact_store

        return artifact_store()

    def artifact_identity_key(self) -> str:
        """This task's identity key (64 hex digits, stable across processes)."""
        return identity_key(self._ll_task)

    def artifact_task_info(self) -> TaskInfo:
        """The Luigi facts recorded with each artifact this task saves."""
        info: TaskInfo | None = self.__dict__.get(_INFO)
        if info is None:
            task = self._ll_task
            info = self.__dict__[_INFO] = TaskInfo(
                family=task.get_task_family(),
                task_id=task.task_id,
                identity_key=self.artifact_identity_key(),
                params=task_params(task),
            )
        return info

    def _ll_run_guard(self) -> HeldLock | None:
        """The lock ``run()`` runs under, now held (``task_lock``; None when it is off)."""
        store = self._ll_store()
        if not store.settings.task_lock:
            return None
        key = self.artifact_identity_key()
        return hold(store, key, self._ll_task.task_id, self.complete)

    @property
    def _ll_task(self) -> Any:
        if not isinstance(self, luigi.Task):
            raise InvalidArgumentError(
                f"{type(self).__name__} uses ArtifactTaskMixin without luigi.Task: declare it "
                f"as class {type(self).__name__}(ll.ArtifactTaskMixin, luigi.Task)."
            )
        return self

    def _ll_store(self) -> ArtifactStore:
        chosen: Any = self.artifact_store
        store = chosen() if callable(chosen) else chosen
        if not isinstance(store, ArtifactStore):
            raise InvalidArgumentError(
                f"{type(self).__name__}.artifact_store must be an ll.ArtifactStore or a method "
                f"returning one, got {type(store).__name__}."
            )
        return store

    def _ll_base_name(self) -> str:
        name = self.artifact_name or self._ll_task.get_task_family()
        return check_name(name)

    def _ll_output_names(self) -> tuple[str, ...]:
        outputs = self.artifact_outputs
        if isinstance(outputs, str) or not all(isinstance(o, str) and o for o in outputs):
            raise InvalidArgumentError(
                f"{type(self).__name__}.artifact_outputs must be a tuple of non-empty names such "
                f'as ("model", "metrics"), got {outputs!r}.'
            )
        if len(set(outputs)) != len(outputs):
            raise InvalidArgumentError(
                f"{type(self).__name__}.artifact_outputs has duplicate names: {outputs!r}."
            )
        return tuple(outputs)

    # -- luigi protocol -----------------------------------------------------------

    def output(self) -> ArtifactTarget | dict[str, ArtifactTarget]:
        """The target for this identity, or ``{output: target}`` with ``artifact_outputs``."""
        store = self._ll_store()
        cached: tuple[ArtifactStore, Any] | None = self.__dict__.get(_OUTPUT)
        if cached is not None and cached[0] is store:
            return dict(cached[1]) if isinstance(cached[1], dict) else cached[1]
        key = self.artifact_identity_key()
        base = self._ll_base_name()
        outputs = self._ll_output_names()
        targets: ArtifactTarget | dict[str, ArtifactTarget]
        if not outputs:
            targets = ArtifactTarget(base, key=key, store=store)
        else:
            targets = {o: ArtifactTarget(f"{base}.{o}", key=key, store=store) for o in outputs}
        self.__dict__[_OUTPUT] = (store, targets)
        return dict(targets) if isinstance(targets, dict) else targets

    def complete(self) -> bool:
        """True iff every output has an artifact with this task's identity key."""
        targets = self.output()
        if isinstance(targets, ArtifactTarget):
            return targets.exists()
        return all(t.exists() for t in targets.values())

    # -- in run() -----------------------------------------------------------------

    def save(self, value: Any, output: str | None = None) -> Artifact | dict[str, Artifact]:
        """Save this task's result as the next version for its identity.

        One output: ``save(value)`` returns the ``Artifact``. With
        ``artifact_outputs``: ``save(value, "metrics")`` saves one output and
        returns its ``Artifact``; ``save({"model": m, "metrics": x})`` saves each
        given output and returns ``{output: Artifact}``. Each records this task
        and, as lineage, the artifacts its requirements currently resolve to.
        """
        targets = self.output()
        if isinstance(targets, ArtifactTarget):
            if output is not None:
                raise InvalidArgumentError(
                    f"{type(self).__name__} has a single output, so save(value) takes no output "
                    f"name (got {output!r}); declare artifact_outputs for several outputs."
                )
            return self._ll_save_all({None: (targets, value)})[None]
        if output is not None:
            if output not in targets:
                raise InvalidArgumentError(
                    f"{type(self).__name__} has no output {output!r}; its artifact_outputs are "
                    f"{tuple(targets)}."
                )
            return self._ll_save_all({output: (targets[output], value)})[output]
        if not isinstance(value, Mapping):
            raise InvalidArgumentError(
                f"{type(self).__name__} declares outputs {tuple(targets)}: call "
                f"self.save(value, {next(iter(targets))!r}) or self.save({{name: value, ...}})."
            )
        unknown = [k for k in value if k not in targets]
        if unknown or not value:
            raise InvalidArgumentError(
                f"{type(self).__name__}.save() got outputs {list(value)}; expected one or more of "
                f"{tuple(targets)}."
            )
        saved = self._ll_save_all({k: (targets[k], v) for k, v in value.items()})
        return {str(k): a for k, a in saved.items()}

    def _ll_save_all(
        self, items: Mapping[str | None, tuple[ArtifactTarget, Any]]
    ) -> dict[str | None, Artifact]:
        info = self.artifact_task_info()
        own_store = next(iter(items.values()))[0].store  # the targets carry the task's store
        upstream = self._ll_upstream(own_store.settings.database_url)
        return {
            k: t.save(value, task=info, upstream=upstream, serializer=self._ll_serializer(k))
            for k, (t, value) in items.items()
        }

    def _ll_serializer(self, output: str | None) -> str | None:
        """``artifact_serializer`` for ``output`` (None: the store's setting)."""
        chosen = self.artifact_serializer
        what = f"{type(self).__name__}.artifact_serializer"
        if chosen is None or isinstance(chosen, str):
            return None if chosen is None else check_serializer(chosen, what, InvalidArgumentError)
        outputs = self._ll_output_names()
        if not isinstance(chosen, Mapping) or not outputs or not set(chosen) <= set(outputs):
            raise InvalidArgumentError(
                f"{what} must be a serializer name, or a dict from this task's "
                f"artifact_outputs {outputs} to serializer names; got {chosen!r:.100}."
            )
        name = chosen.get(output) if output is not None else None
        return (
            None
            if name is None
            else check_serializer(name, f"{what}[{output!r}]", InvalidArgumentError)
        )

    def _ll_upstream(self, own_db: URL) -> list[Artifact]:
        """The lineage parents: the exact versions ``load_input()`` read.

        A requirement that was not loaded counts with the version it resolves
        to now. Parents in another database are skipped: lineage rows refer to
        ids in one database.
        """
        loaded: dict[_TargetId, Artifact] = self.__dict__.get(_LOADED, {})
        targets: list[ArtifactTarget] = []
        for target in flatten(getpaths(requirements(self._ll_task))):
            if not isinstance(target, ArtifactTarget):
                continue
            if target.store.settings.database_url != own_db:
                log.warning(
                    "%s: not recording lineage to %r, which lives in another database",
                    self._ll_task.task_id,
                    target,
                )
                continue
            targets.append(target)
        unread = [t for t in targets if _target_id(t) not in loaded]
        records = _records_of(unread) if unread else {}
        found: dict[tuple[str, int], Artifact] = {}
        for target in targets:
            target_id = _target_id(target)
            artifact = loaded.get(target_id) or records.get(target_id) or target.get()
            found.setdefault((artifact.name, artifact.version), artifact)
        return [found[k] for k in sorted(found)]

    def load_input(self) -> Any:
        """The values of ``requires()``, in its shape.

        A task gives its value (a dict of values if it has several outputs), a
        list or tuple of tasks a list, a dict of tasks a dict. Outputs that are
        not ``ArtifactTarget`` (e.g. ``luigi.LocalTarget``) are passed through
        unchanged, as ``self.input()`` would give them. The records of all
        inputs are read first, a query per store and name, then each value.
        """
        # remember what was read, so save() records these versions as lineage
        # even if an upstream task saves a newer one meanwhile
        loaded: dict[_TargetId, Artifact] = self.__dict__.setdefault(_LOADED, {})
        outputs = _outputs_of_requires(requirements(self._ll_task))
        return _values_of_targets(outputs, loaded, _records_of(outputs))

    def load_output(self) -> Any:
        """This task's latest value for its identity (a dict with ``artifact_outputs``)."""
        return _values_of_targets(self.output(), {}, {})


#: instance attribute holding {target identity: Artifact} read by load_input()
_LOADED = "_ll_loaded_inputs"
#: instance attributes memoising the task facts and (store, output targets)
_INFO = "_ll_task_info"
_OUTPUT = "_ll_output"
_TargetId = tuple[str, "str | None", "int | None"]


def _target_id(target: ArtifactTarget) -> _TargetId:
    return (target.name, target.key, target.version)


def _outputs_of_requires(struct: Any) -> Any:
    """``requires()`` with each task replaced by its ``output()``: dicts stay, sequences list."""
    if isinstance(struct, luigi.Task):
        task: Any = struct
        return task.output()
    if struct is None:
        return None
    if isinstance(struct, Mapping):
        return {k: _outputs_of_requires(v) for k, v in struct.items()}
    if isinstance(struct, (str, bytes)):
        raise InvalidArgumentError(f"requires() returned {struct!r}; expected tasks.")
    return [_outputs_of_requires(v) for v in cast("Any", struct)]


def _artifact_targets(struct: Any) -> Iterator[ArtifactTarget]:
    if isinstance(struct, ArtifactTarget):
        yield struct
    elif isinstance(struct, Mapping):
        for v in struct.values():
            yield from _artifact_targets(v)
    elif isinstance(struct, (list, tuple)):
        for v in struct:
            yield from _artifact_targets(v)


def _records_of(outputs: Any) -> dict[_TargetId, Artifact]:
    """The records the targets in ``outputs`` select, read together where they can be.

    Targets of mixin tasks (a name, an identity key, the latest version) are
    looked up in one query per store and name; any other target, or one
    without a record, is left to its own ``get()``.
    """
    groups: dict[tuple[int, str], tuple[ArtifactStore, set[str]]] = {}
    for target in _artifact_targets(outputs):
        if target.key is not None and target.version is None:
            store = target.store
            group = groups.setdefault((id(store), target.name), (store, set()))
            group[1].add(target.key)
    found: dict[_TargetId, Artifact] = {}
    for (_, name), (store, keys) in groups.items():
        if len(keys) > 1:  # a single input reads as fast on its own
            for key, artifact in store.latest_by_keys(name, keys).items():
                found[(name, key, None)] = artifact
    return found


def _values_of_targets(
    struct: Any, loaded: dict[_TargetId, Artifact], records: dict[_TargetId, Artifact]
) -> Any:
    if isinstance(struct, ArtifactTarget):
        target_id = _target_id(struct)
        artifact = records.get(target_id) or struct.get()
        loaded[target_id] = artifact
        return artifact.load()
    if isinstance(struct, Mapping):
        return {k: _values_of_targets(v, loaded, records) for k, v in struct.items()}
    if isinstance(struct, (list, tuple)):
        return [_values_of_targets(v, loaded, records) for v in struct]
    return struct
