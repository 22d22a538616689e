"""What a value is and which library versions wrote it: recorded with every artifact.

A pickle is only as portable as the libraries whose classes it names: a frame
pickled under pandas 3 does not load under pandas 2. Each row therefore
records the value's type (``value_type``) and the versions involved
(``libraries``), so that a failed load can say "written with pandas 3.0.6;
this process has pandas 2.2.3" instead of a bare traceback, and a load under
another major version is logged before it surprises anyone.

Versions are looked up once per process and package: ``__version__`` of an
imported module first (free), the installed distribution's metadata otherwise.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import platform
import sys
import threading
from collections.abc import Iterable, Mapping

log = logging.getLogger(__name__)

PYTHON = "python"
#: most libraries recorded per value (a pickle may touch many packages)
MAX_LIBRARIES = 16
#: packages that are never worth recording: the interpreter's own
_NOT_LIBRARIES = frozenset(sys.stdlib_module_names) | {"builtins", "__main__", "copyreg"}

_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


def value_type(value: object) -> str:
    """The qualified type of ``value``, by its public name where its package exports it.

    ``pandas.core.frame.DataFrame`` is recorded as ``"pandas.DataFrame"``, since
    that is how people name it; a type its package does not export at the top
    (``sklearn.linear_model._ridge.Ridge``) keeps its full path.
    """
    kind = type(value)
    module, qualname = kind.__module__, kind.__qualname__
    top = module.partition(".")[0]
    if module != top and getattr(sys.modules.get(top), qualname, None) is kind:
        module = top
    return f"{module}.{qualname}"[:255]


def top_package(module: str) -> str | None:
    """The top-level package of ``module`` if it is a third-party library, else None."""
    top = module.partition(".")[0]
    return None if not top or top in _NOT_LIBRARIES or top.startswith("_") else top


@functools.lru_cache(maxsize=512)
def version_of(package: str) -> str | None:
    """The installed version of ``package`` (``"python"`` included), None when unknown.

    Cached per process: callers only ask about packages already imported (for
    recording) or recorded by another process (for comparing), and neither
    changes while this process runs.
    """
    if package == PYTHON:
        return platform.python_version()
    version = getattr(sys.modules.get(package), "__version__", None)
    if isinstance(version, str):
        return version
    try:
        return importlib.metadata.version(package)
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return None


def versions(packages: Iterable[str]) -> dict[str, str]:
    """``{"python": …, package: version, …}`` for the packages that have a version."""
    found = {PYTHON: platform.python_version()}
    for package in sorted(set(packages)):
        if len(found) > MAX_LIBRARIES:
            break
        version = version_of(package)
        if version is not None:
            found[package] = version
    return found


def _major(version: str) -> str:
    return version.partition(".")[0]


def differences(recorded: Mapping[str, str] | None) -> list[tuple[str, str, str | None]]:
    """``(package, recorded version, installed version or None)`` where the two differ."""
    found = []
    for package, version in sorted((recorded or {}).items()):
        installed = version_of(package)
        if installed != version:
            found.append((package, version, installed))
    return found


def explain_failure(recorded: Mapping[str, str] | None) -> str:
    """The sentence a failed load adds: which versions wrote the value and which are here."""
    if not recorded:
        return ""
    changed = differences(recorded)
    if not changed:
        listed = ", ".join(f"{p} {v}" for p, v in sorted(recorded.items()))
        return f" It was written with {listed}, the same versions as this process has."
    parts = [
        f"written with {package} {version}; this process has "
        + (f"{package} {installed}" if installed else f"no {package}")
        for package, version, installed in changed
    ]
    return " Versions differ: " + "; ".join(parts) + "."


def warn_major_changes(recorded: Mapping[str, str] | None, what: str) -> None:
    """Log once per process and (package, version) a load under another major version."""
    if not recorded:
        return
    for package, version in recorded.items():
        if (package, version) in _warned:
            continue
        installed = version_of(package)
        if installed is None or _major(installed) == _major(version):
            continue
        with _warned_lock:
            if (package, version) in _warned:
                continue
            _warned.add((package, version))
        log.warning(
            "%s was written with %s %s and is loaded with %s %s (another major version); "
            "check the value, or save it again from this environment",
            what,
            package,
            version,
            package,
            installed,
        )
