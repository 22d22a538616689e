"""Database URL parsing, and the one masking function for every URL we print.

Kept apart from configuration so that every module that prints a URL (errors,
reprs, logs, pages, ``doctor``) uses the same masking: ``mask_secrets``.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from ..errors import ConfigError


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


MASK = "***"

#: a query key holding one of these (any case) is a credential: password, sslpassword,
#: aws_secret_access_key, session_token, account_key, sas_token, X-Amz-Signature, ...
_SECRET_KEY_PARTS = ("passw", "pwd", "secret", "token", "key", "credential", "signature", "sas")
#: whole keys that are credentials although no part says so (Azure SAS signature)
_SECRET_KEYS = ("sig",)

#: a query parameter's key, right after ``?`` or ``&`` (keys never overlap: linear time)
_PARAM = re.compile(r"(?<=[?&])([\w.\-]+)=")
_VALUE_END = re.compile(r"[&#\s'\"<>]")
#: a user name right after ``scheme://`` (or ``scheme:///``, as fsspec's memory:// shows
#: it), up to the ``:`` that starts a password
_USER = re.compile(r"/?[^:/?#@]*:")
_WORD = re.compile(r"\S+")


def is_secret_key(key: str) -> bool:
    """Whether a query parameter or option named ``key`` holds a credential."""
    lowered = key.lower()
    return lowered in _SECRET_KEYS or any(part in lowered for part in _SECRET_KEY_PARTS)


def mask_secrets(value: str | URL) -> str:
    """``value`` for humans: every credential in it replaced by ``***``.

    Masks the password of every ``scheme://user:password@`` and the value of
    every query parameter whose key looks secret (``is_secret_key``), in a
    database or fsspec URL or anywhere in a free text such as a driver's error
    message. Runs in linear time, since messages may carry a user's text.
    """
    text = value.render_as_string(hide_password=True) if isinstance(value, URL) else str(value)
    parts: list[str] = []
    done = 0
    for start, end in _secret_spans(text):
        parts += [text[done:start], MASK]
        done = end
    return "".join(parts) + text[done:]


def secrets_in(value: str) -> set[str]:
    """The credentials ``mask_secrets`` would hide in ``value``, as written and unquoted.

    For scrubbing them from texts that show them another way (a library's
    message with the URL re-encoded, or only the password).
    """
    found = {value[start:end] for start, end in _secret_spans(value)}
    return found | {unquote(s) for s in found}


#: the names earlier call sites use; both are ``mask_secrets``
mask_url = mask_secrets
mask_text = mask_secrets


def _secret_spans(text: str) -> list[tuple[int, int]]:
    """Where the credentials are in ``text``: sorted, disjoint, non-empty ``(start, end)``."""
    spans = sorted([*_userinfo_spans(text), *_param_spans(text)])
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        elif end > start:
            merged.append((start, end))
    return merged


def _userinfo_spans(text: str) -> list[tuple[int, int]]:
    """Passwords of ``scheme://user:password@host``, in each whitespace-free word.

    A password runs to the word's last ``@``: SQLAlchemy accepts ``/`` and
    ``:`` in one, so when in doubt more is hidden rather than less.
    """
    spans = []
    for word in _WORD.finditer(text):
        token = word.group()
        last_at = token.rfind("@")
        scheme = token.find("://")
        while 0 <= scheme < last_at:
            user = _USER.match(token, scheme + 3)
            if user is not None and user.end() <= last_at:
                spans.append((word.start() + user.end(), word.start() + last_at))
                break  # everything up to the last "@" is hidden
            scheme = token.find("://", scheme + 3)
    return spans


def _param_spans(text: str) -> list[tuple[int, int]]:
    """Values of secret-looking query parameters (``?password=…``, ``&token=…``)."""
    spans: list[tuple[int, int]] = []
    covered = 0  # a parameter inside a value already hidden needs no second look
    for param in _PARAM.finditer(text):
        if param.start() < covered or not is_secret_key(param.group(1)):
            continue
        end = _VALUE_END.search(text, param.end())
        covered = end.start() if end is not None else len(text)
        spans.append((param.end(), covered))
    return spans
