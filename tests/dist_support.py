"""The sdist and wheel of this checkout, built once per test session with ``python -m build``.

Both distribution tests share the one build: ``test_distributions.py`` reads the
archives, ``test_wheel_install.py`` installs the wheel. The build is isolated, as a
release build is, so it also proves that ``build-system.requires`` is enough; pip
fetches those requirements from the package index (its cache makes that quick).
When they cannot be installed (no index), the tests skip on a developer machine and
fail when ``CI`` is set; any other build failure fails them everywhere.

Test modules use the fixture by importing ``built_distributions``; pytest finds it
under the name ``distributions``.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tarfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from ci_support import unavailable

REPO = Path(__file__).resolve().parents[1]
#: what ``build`` prints when the isolated environment's requirements did not install
REQUIREMENTS_FAILED = "build-requirements"


@dataclass(frozen=True)
class Distributions:
    """The two archives, the build's output and how long it took."""

    sdist: Path
    wheel: Path
    log: str
    seconds: float

    def wheel_names(self) -> list[str]:
        with zipfile.ZipFile(self.wheel) as archive:
            return archive.namelist()

    def wheel_file(self, name: str) -> bytes:
        with zipfile.ZipFile(self.wheel) as archive:
            return archive.read(name)

    def wheel_metadata(self) -> str:
        """The wheel's ``METADATA`` file: headers, a blank line, the long description."""
        (name,) = [n for n in self.wheel_names() if n.endswith(".dist-info/METADATA")]
        return self.wheel_file(name).decode()

    def sdist_names(self) -> list[str]:
        """Paths inside the sdist, without its top folder (``linea_luigi-0.1.0/``)."""
        with tarfile.open(self.sdist) as archive:
            return [n.split("/", 1)[1] for n in archive.getnames() if "/" in n]

    def sdist_file(self, name: str) -> bytes:
        """A file of the sdist, by its path below the top folder."""
        with tarfile.open(self.sdist) as archive:
            top = archive.getnames()[0].split("/")[0]
            handle = archive.extractfile(f"{top}/{name}")
            if handle is None:
                raise FileNotFoundError(name)
            return handle.read()


@pytest.fixture(scope="session", name="distributions")
def built_distributions(tmp_path_factory: pytest.TempPathFactory) -> Distributions:
    """Build this checkout's sdist and wheel into a temporary folder, once per session."""
    if importlib.util.find_spec("build") is None:
        unavailable("the `build` package is missing: pip install -e '.[test]'")
    out = tmp_path_factory.mktemp("dist")
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(REPO)],
        cwd=out,
        capture_output=True,
        text=True,
        timeout=600,
    )
    seconds = time.monotonic() - started
    log = done.stdout + done.stderr
    if done.returncode != 0:
        tail = "\n".join(log.splitlines()[-30:])
        if REQUIREMENTS_FAILED in log:
            unavailable(f"the build requirements could not be installed:\n{tail}")
        pytest.fail(f"python -m build failed ({done.returncode}):\n{tail}")
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return Distributions(sdist, wheel, log, seconds)
