"""Storage failures as one-line ``StorageError``s that never show a credential.

Every failure of the storage itself while opening, writing, committing,
reading or deleting (a full disk, a missing bucket, refused credentials, an
unreachable endpoint), and every failure to connect to it at all, leaves
``ValueStorage`` as one ``StorageError`` that names the location and says what
to check (``StorageErrors.raise_if_failure``, ``StorageErrors.unreachable``); a
bad URL or option is a ``ConfigError`` (``StorageErrors.misconfigured``).

Errors that are not the storage's (a value that cannot be pickled,
``KeyboardInterrupt``, our own errors) are not translated: ``raise_if_failure``
returns and its caller re-raises them unchanged.

No message shows a credential: locations are shown through
``urls.mask_secrets``, and the credentials of the root's URL, of
secret-looking ``storage_options`` and of the providers' environment variables
are scrubbed wherever they appear (``StorageErrors.scrub``). The library's
original error stays chained as ``__cause__`` for debugging, unless its text
holds a credential (``StorageErrors.cause``).
"""

from __future__ import annotations

import errno
import os
import socket
import sys
from collections.abc import Iterator
from typing import Any

from ..errors import ArtifactStoreError, ConfigError, StorageError
from ..settings.urls import is_secret_key, mask_secrets, secrets_in


class StorageErrors:
    """The wording of one storage root's failures, its credentials scrubbed.

    Built once per ``ValueStorage`` (and again when one is unpickled: the
    environment's credentials may differ there); nothing here runs unless
    something failed.
    """

    def __init__(self, root: str, options: dict[str, Any]) -> None:
        self._root = root
        self._options = options
        self._hidden = _hidden_values(root, options)

    def raise_if_failure(
        self, doing: str, uri: str, exc: BaseException, *, writing: bool = False
    ) -> None:
        """Raise ``StorageError`` from ``exc`` if it is a storage failure; else return.

        The caller re-raises anything else unchanged (``raise``), so values
        that fail to pickle, interrupts and our own errors keep their identity.
        """
        if not _is_storage_failure(exc):
            return
        target = f"{doing} {uri}" + (" for writing" if doing == "open" else "")
        message = f"Cannot {target}: {first_line(exc)}. {_hint(exc, writing)}"
        raise StorageError(self.scrub(message)) from self.cause(exc)

    def misconfigured(self, exc: BaseException) -> ConfigError:
        """The error for a root URL or ``storage_options`` that fsspec rejects."""
        message = (
            f"Cannot open artifact storage {self._root!r} with storage_options keys "
            f"{sorted(self._options)}: {exc}. Check the URL's scheme and the options."
        )
        return ConfigError(self.scrub(message))

    def unreachable(self, exc: BaseException) -> StorageError:
        """The error for a server that cannot be reached (refused, unknown host, timeout, login)."""
        message = (
            f"Cannot connect to the artifact storage {self._root}: {first_line(exc)}. "
            f"{_hint(exc, writing=False)}"
        )
        return StorageError(self.scrub(message))

    def scrub(self, text: str) -> str:
        """``text`` with every credential we know of replaced by ``***``."""
        for secret in self._hidden:
            text = text.replace(secret, "***")
        return mask_secrets(text)

    def cause(self, exc: BaseException) -> BaseException | None:
        """``exc`` to chain to our error, or None when its chain shows a credential."""
        for e in _chain(exc):
            if self.scrub(str(e)) != str(e):
                return None
        return exc


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message, without a final period (we add our own)."""
    text = str(exc).strip()
    return text.splitlines()[0].rstrip(".") if text else type(exc).__name__


def is_missing_bucket(exc: BaseException) -> bool:
    """Whether a "not found" is the bucket's, not the value's (s3fs says both the same way)."""
    return any(
        _error_code(e) == "NoSuchBucket" or "bucket does not exist" in str(e).lower()
        for e in _chain(exc)
    )


# -- which errors are the storage's -------------------------------------------------

#: exception classes of storage client libraries, looked up only if already imported
_CLIENT_ERRORS = (
    ("ftplib", ("Error",)),
    ("paramiko", ("SSHException",)),
    ("botocore.exceptions", ("BotoCoreError", "ClientError")),
    ("aiohttp", ("ClientError",)),
    ("google.api_core.exceptions", ("GoogleAPIError",)),
    ("azure.core.exceptions", ("AzureError",)),
)


def _is_storage_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is the storage failing (OS or client library), not the value or us."""
    if isinstance(exc, ArtifactStoreError) or not isinstance(exc, Exception):
        return False
    if isinstance(exc, OSError):
        return True
    for module_name, names in _CLIENT_ERRORS:
        module = sys.modules.get(module_name)  # never imported: cannot have raised
        if module is not None:
            classes = tuple(getattr(module, n) for n in names if hasattr(module, n))
            if classes and isinstance(exc, classes):
                return True
    return False


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and its causes (s3fs puts botocore's error with its code in ``__cause__``)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


# -- what to check ------------------------------------------------------------------

_CREDENTIAL_CODES = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "AllAccessDisabled",
}
_CREDENTIAL_CLASSES = {"NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"}
_CONNECTION_CLASSES = {
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ConnectionClosedError",
    "HTTPClientError",
    "ClientConnectionError",
    "ServerDisconnectedError",
    "ServerTimeoutError",
}


def _hint(exc: BaseException, writing: bool) -> str:
    """What to check, from the first cause in ``exc``'s chain that says what went wrong."""
    for e in _chain(exc):
        code = _error_code(e)
        names = {cls.__name__ for cls in type(e).__mro__}
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return "The disk is full (or over quota): free space there, then save again."
        if isinstance(e, OSError) and e.errno == errno.EFBIG:
            return (
                "The value is larger than a file may be here (the process's file size "
                "limit, `ulimit -f`, or the filesystem's): raise the limit or store elsewhere."
            )
        if isinstance(e, OSError) and e.errno == errno.EROFS:
            return "The filesystem is mounted read-only: point artifact_storage_dir elsewhere."
        if code == "NoSuchBucket" or "bucket does not exist" in str(e).lower():
            return "Check that the bucket exists (create it, or fix artifact_storage_dir)."
        if (
            code in _CREDENTIAL_CODES
            or names & _CREDENTIAL_CLASSES
            or isinstance(e, PermissionError)
        ):
            return (
                "Check the credentials (storage_options key/secret/token, or the provider's "
                "environment variables or profile) and that they may "
                f"{'write' if writing else 'read'} this location."
            )
        if names & _CONNECTION_CLASSES or isinstance(
            e, (ConnectionError, TimeoutError, socket.gaierror)
        ):
            return (
                "Check that the storage endpoint is reachable (the network, the host and port "
                "in artifact_storage_dir, storage_options client_kwargs endpoint_url), "
                "then try again."
            )
    action = "writable" if writing else "readable"
    return f"Check that the storage location exists and is reachable and {action}."


# -- which texts are credentials ----------------------------------------------------

#: shorter values are not credentials, and masking them would garble locations
_SECRET_MIN = 8
_SECRET_VARIABLES = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AZURE_STORAGE_KEY")


def _hidden_values(root: str, options: dict[str, Any]) -> tuple[str, ...]:
    """Credentials to scrub from messages: in the root's URL, the options and variables.

    A library may show them other than as ``mask_secrets`` finds them (s3fs
    puts a URL's user-info into the bucket name, botocore re-encodes it), so
    they are replaced wherever they appear. Longest first: none is left half shown.
    """
    found = {s for s in secrets_in(root) if len(s) >= _SECRET_MIN}
    found.update(_secrets(options))
    return tuple(sorted(found, key=len, reverse=True))


def _secrets(options: Any, key: str = "") -> Iterator[str]:
    """Values of credential-like options (and variables): never shown in a message."""
    if isinstance(options, dict):
        for k, v in options.items():
            yield from _secrets(v, str(k))
    elif isinstance(options, (list, tuple)):
        for v in options:
            yield from _secrets(v, key)
    elif isinstance(options, str) and len(options) >= _SECRET_MIN and is_secret_key(key):
        yield options
    if not key:
        for name in _SECRET_VARIABLES:
            value = os.environ.get(name, "")
            if len(value) >= _SECRET_MIN:
                yield value
