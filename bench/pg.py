"""Fresh PostgreSQL databases for one measurement, dropped afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

ADMIN_URL = os.environ.get(
    "LINEA_LUIGI_BENCH_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)


@contextmanager
def pg_database() -> Iterator[str]:
    """Create ``ll_bench_<random>`` and yield its URL; drop it (``WITH (FORCE)``) after."""
    name = f"ll_bench_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            yield sa.make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()
