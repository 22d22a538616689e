"""The suite's one rule for a missing prerequisite: a skip on a developer machine, a failure in CI.

In CI (``CI`` set) every test must run: PostgreSQL, Chromium, the other
environments and the storage faults are all there, so their absence is a failure.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def unavailable(reason: str) -> NoReturn:
    """Skip for ``reason`` here; fail with it when ``CI`` is set."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)
