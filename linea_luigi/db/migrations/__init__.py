"""Alembic migrations: the one source of truth for the database schema.

The ORM models (``db.schema``, ``db.history_schema``) describe the schema the
code uses; the revisions in ``versions/`` are how a database gets there, and
``tests/test_migrations.py`` proves the two agree (autogenerate finds no
difference). Revisions are applied by ``db.setup``, under a lock, on first use
or by ``python -m linea_luigi migrate``; ``runner`` drives Alembic. An empty
database skips them: ``fresh`` creates the head schema from the models and
stamps it as Alembic would, and the tests prove that equals running them.

Alembic records the revision in ``linea_luigi_alembic_version``, not the
default ``alembic_version``, so the database can be shared with applications
that keep their own Alembic history.

This module stays free of Alembic imports (Alembic costs ~200 ms to import):
the per-process check that a database is current needs only ``HEAD``.

Adding a revision, after changing the models::

    from alembic import command
    from linea_luigi.db.migrations import runner

    cfg = runner.alembic_config(url="sqlite:////tmp/scratch.sqlite")
    command.upgrade(cfg, "head")
    command.revision(cfg, "what changed", autogenerate=True, rev_id="0003_what_changed")

then review the generated file, set ``HEAD`` below to its id, and add a test
that upgrades a database holding data from the previous revision. Revisions are
forward only: an older linea_luigi refuses a newer database instead of
downgrading it. A revision that changes the ``ll_`` tables in a way the
pre-Alembic releases would misread also sets ``ll_store_info.schema_version``
to ``'3'``, which those releases refuse.
"""

from __future__ import annotations

import logging
from pathlib import Path

#: Alembic's version table, named for this project
VERSION_TABLE = "linea_luigi_alembic_version"
#: the first revision: the schema as ``metadata.create_all`` made it before migrations
BASELINE = "0001_baseline"
#: the newest revision this package knows (a test checks it against ``versions/``)
HEAD = "0005_shared_values"
#: the folder Alembic reads ``env.py`` and ``versions/`` from
LOCATION = Path(__file__).resolve().parent

#: Alembic 1.18+ logs "setup plugin ..." at INFO for each built-in plugin when it is
#: imported: seven lines of noise in every process that migrates, linea-luigid's start-up
#: included. Quietened unless an application set that logger's level itself.
_PLUGINS_LOG = logging.getLogger("alembic.runtime.plugins")
if _PLUGINS_LOG.level == logging.NOTSET:
    _PLUGINS_LOG.setLevel(logging.WARNING)
