"""The exception hierarchy of linea_luigi.

Every error the package raises on purpose derives from one root, so callers can
catch ``ArtifactStoreError`` and know they have seen everything::

    ArtifactStoreError
     ├── ConfigError                 bad or missing configuration
     ├── InvalidArgumentError        bad name, version or value argument (also ValueError)
     ├── ArtifactNotFoundError       no such name / version / identity (also LookupError)
     ├── ArtifactInUseError          the version is still referenced (an alias points at it)
     ├── ChecksumMismatchError       stored bytes differ from what was saved
     ├── StoreMismatchError          database belongs to another storage root
     │    └── SchemaTooNewError      database was migrated by a newer linea_luigi
     ├── SerializationError          the value could not be pickled or unpickled
     ├── StorageError                the value storage (disk, S3) failed
     ├── TaskLockTimeoutError        another process held a task's lock past task_lock_timeout
     └── DatabaseError               the metadata database failed or is unreachable
          ├── DatabaseLockedError        another process held a lock past lock_timeout
          └── CommitOutcomeUnknownError  the connection died during COMMIT

Messages say what was asked, what was found and what to do; URLs in them are
always shown with the password masked. Where "what to do" is a call, the error
carries it as ``Advice``: the Python call in its message, the ``linea-luigi``
command in ``for_cli()``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Advice:
    """An error's next step in the terms of each surface: a Python call, a shell command.

    The store's errors reach a Python caller and a shell user alike; each is
    told the step they can type (``store.list()`` / ``linea-luigi list``).
    """

    #: the step as Python (``str(error)`` ends with it)
    python: str
    #: the step as a ``linea-luigi`` command (``error.for_cli()`` ends with it)
    cli: str


class ArtifactStoreError(Exception):
    """Root of every error raised by linea_luigi.

    With ``advice``, the one argument is the fact and the message is the fact
    followed by ``advice.python``; ``for_cli()`` puts ``advice.cli`` there instead.
    """

    #: what was found, without the advice (set with ``advice`` only)
    fact: str = ""
    #: the next step per surface; None when the message's advice suits every surface
    advice: Advice | None = None

    def __init__(self, *args: object, advice: Advice | None = None) -> None:
        if advice is None:
            super().__init__(*args)
            return
        (fact,) = args
        self.fact, self.advice = str(fact), advice
        super().__init__(f"{fact} {advice.python}")

    def for_cli(self) -> str:
        """The message as a shell user should read it: the advice as a command."""
        return str(self) if self.advice is None else f"{self.fact} {self.advice.cli}"


class ConfigError(ArtifactStoreError):
    """The configuration (luigi.cfg, environment, options) is invalid."""


class InvalidArgumentError(ArtifactStoreError, ValueError):
    """An argument (name, version, ...) is not of an accepted form."""


class ArtifactNotFoundError(ArtifactStoreError, LookupError):
    """The requested artifact, version or identity does not exist."""


class ArtifactInUseError(ArtifactStoreError):
    """The version cannot be deleted: an alias points at it (move or remove the alias first).

    Refused rather than cascaded, because a deployment that reads
    ``name@alias`` would otherwise break silently.
    """


class ChecksumMismatchError(ArtifactStoreError):
    """The stored bytes of a value do not match the digest recorded at save time."""


class StoreMismatchError(ArtifactStoreError):
    """The database does not belong with this store: another storage root, or a newer schema."""


class SchemaTooNewError(StoreMismatchError):
    """The database's schema revision is unknown here: a newer linea_luigi migrated it.

    Refused rather than used, because this installation would read and write
    tables whose meaning it does not know. The fix is upgrading linea_luigi.
    """


class SerializationError(ArtifactStoreError):
    """A value could not be serialized or deserialized."""


class StorageError(ArtifactStoreError):
    """Reading, writing or deleting a value in the storage location failed."""


class TaskLockTimeoutError(ArtifactStoreError):
    """A task waited ``task_lock_timeout`` for its lock: another process is computing it.

    Nothing ran. The message names the holder (host and process) and the
    task; the fix is letting the holder finish, stopping it, or a longer wait.
    """


class DatabaseError(ArtifactStoreError):
    """The metadata database failed or could not be reached.

    Raised without a chained cause: the message already carries the driver's
    one-line reason, and a chain would print a hundred lines of SQLAlchemy
    frames before it. The driver's exception stays on ``driver_error``.
    """

    def __init__(self, message: str, *, driver_error: BaseException | None = None) -> None:
        super().__init__(message)
        self.driver_error = driver_error


class DatabaseLockedError(DatabaseError):
    """Another process held the database's lock longer than ``lock_timeout``: nothing was done.

    Apart from ``DatabaseError`` because the database is up and the fix differs:
    wait for (or stop) the other process, or allow a longer wait.
    """


class CommitOutcomeUnknownError(DatabaseError):
    """The connection was lost while COMMIT was in flight: the write may have been applied.

    The caller must not undo what a committed row may reference (the store
    keeps the value; at worst it is an orphan).
    """
