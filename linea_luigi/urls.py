"""Database URL parsing: normalisation and password masking.

Kept apart from configuration so that every module that prints a URL (errors,
reprs, logs) uses the same masking.
"""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from .errors import ConfigError


def parse_db_url(raw: str | URL) -> URL:
    """Parse a SQLAlchemy URL, accepting the legacy ``postgres://`` scheme.

    SQLAlchemy dropped the ``postgres`` dialect name; Heroku-style URLs still
    use it, so it is rewritten to ``postgresql`` instead of failing with
    ``NoSuchModuleError``. A PostgreSQL URL without a driver gets ``psycopg2``,
    the driver we depend on (SQLAlchemy 2.1 would otherwise pick psycopg 3).
    """
    if isinstance(raw, URL):
        url = raw
    elif not isinstance(raw, str):
        raise ConfigError(
            f"The database URL must be a string or sqlalchemy URL, got {type(raw).__name__}; "
            "use ArtifactStore.from_config() to take it from the configuration."
        )
    else:
        text = str(raw).strip()
        if not text:
            raise ConfigError(
                "The database URL is empty: set it to a SQLAlchemy URL such as "
                "sqlite:////path/db.sqlite or postgresql://user@host/db."
            )
        try:
            url = make_url(text)
        except (ArgumentError, ValueError) as exc:  # ValueError: e.g. a non-numeric port
            raise ConfigError(
                f"Cannot parse database URL {mask_text(text)!r}: expected a SQLAlchemy URL such as "
                "sqlite:////path/db.sqlite or postgresql://user:password@host:5432/db."
            ) from exc
    backend, _, driver = url.drivername.partition("+")
    if backend in ("postgres", "postgresql"):
        url = url.set(drivername=f"postgresql+{driver or 'psycopg2'}")
    return url


def mask_url(url: URL) -> str:
    """Render a URL for humans, password replaced by ``***``."""
    return url.render_as_string(hide_password=True)


def mask_text(text: str) -> str:
    """Best-effort masking of something that failed to parse as a URL."""
    scheme, sep, rest = text.partition("://")
    if not sep or "@" not in rest:
        return text
    creds, at, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***{at}{host}" if ":" in creds else text
