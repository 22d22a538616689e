"""The metadata schema: one ``MetaData`` for the whole project.

Tables carry the ``ll_`` prefix so they can share a database with Luigi's task
history (``tasks``, ``task_events``, ``task_parameters``) and other applications.
These models are what the code uses; the revisions in ``db.migrations`` make
databases match them (a test checks that autogenerate finds no difference), so
a change here needs a new revision.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class ArtifactRow(Base):
    """One version of one named artifact; its value lives at ``location``."""

    __tablename__ = "ll_artifacts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255))
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    location: Mapped[str] = mapped_column(String(1024))
    serializer: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    #: ``"<algorithm>:<hex>"``, e.g. ``"blake3:…"``; verified before every unpickle
    digest: Mapped[str] = mapped_column(String(80))
    python_version: Mapped[str] = mapped_column(String(32))
    task_family: Mapped[str | None] = mapped_column(String(255), nullable=True)
    task_id: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    identity_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    #: the saved value's qualified type (``"pandas.DataFrame"``); NULL on rows before 0004
    value_type: Mapped[str | None] = mapped_column(String(255), nullable=True)
    #: ``{package: version}`` of the libraries that wrote the value; NULL on rows before 0004
    libraries: Mapped[dict[str, str] | None] = mapped_column(JSON, nullable=True)

    __table_args__ = (
        # serves "version N of name" and "latest version of name" as one index seek
        UniqueConstraint("name", "version"),
        # serves "does an artifact with this identity exist" (ArtifactTarget.exists)
        Index("ix_ll_artifacts_identity", "identity_key", "name", "version"),
        Index("ix_ll_artifacts_location", "location"),
        # serves "is this value stored already" (a save reuses an identical object)
        Index("ix_ll_artifacts_digest", "digest"),
    )


class LineageRow(Base):
    """Edge: artifact ``child_id`` was made from artifact ``parent_id``."""

    __tablename__ = "ll_lineage"

    child_id: Mapped[int] = mapped_column(
        ForeignKey("ll_artifacts.id", ondelete="CASCADE"), primary_key=True
    )
    parent_id: Mapped[int] = mapped_column(
        ForeignKey("ll_artifacts.id", ondelete="CASCADE"), primary_key=True
    )

    __table_args__ = (Index("ix_ll_lineage_parent", "parent_id", "child_id"),)


class VersionCounterRow(Base):
    """Next version per name; versions are never reused, even after deletion."""

    __tablename__ = "ll_version_counters"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    next_version: Mapped[int] = mapped_column(Integer)


class StoreInfoRow(Base):
    """Facts about the store this database belongs to (storage root; see ``db.setup``)."""

    __tablename__ = "ll_store_info"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(2048))


class AliasRow(Base):
    """A movable label on one version (``"model@production"``), e.g. for deployment.

    No foreign key: a version is checked to exist when an alias is set, and
    deleting an aliased version is refused (``ArtifactStore.delete``), so the
    alias never dangles while the artifact rows keep their simple cascade.
    """

    __tablename__ = "ll_aliases"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    alias: Mapped[str] = mapped_column(String(255), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)

    #: serves "is this version aliased" (delete, gc) as one index seek
    __table_args__ = (Index("ix_ll_aliases_version", "name", "version"),)


class TaskLockRow(Base):
    """Who runs the task with identity ``key`` now (``integration.task_lock``).

    On SQLite the row *is* the lock: a lease until ``expires_at``, renewed by
    its holder, taken over by another process once it has expired. On
    PostgreSQL the lock is an advisory lock, and the row only says who holds it.
    """

    __tablename__ = "ll_task_locks"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: ``"<host> pid <pid>"`` plus a token unique to the holding lock object
    holder: Mapped[str] = mapped_column(String(255))
    task_id: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    acquired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    #: SQLite: the key's own b-tree holds the row, so taking and releasing a lease
    #: writes one page, not a table page and an index page (a quarter less per task)
    __table_args__ = ({"sqlite_with_rowid": False},)


metadata = Base.metadata

#: Core tables, for the hot paths that need no ORM unit of work
ARTIFACTS = cast(Table, ArtifactRow.__table__)
LINEAGE = cast(Table, LineageRow.__table__)
VERSION_COUNTERS = cast(Table, VersionCounterRow.__table__)
ALIASES = cast(Table, AliasRow.__table__)
TASK_LOCKS = cast(Table, TaskLockRow.__table__)
