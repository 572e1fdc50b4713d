"""Fixtures for the report's browser tests: the Chromium executable (skip without it, fail under CI=true)."""

from __future__ import annotations

import os

import pytest

from tests.e2e.report.chromium import find_chromium

INSTALL = "apt-get update && apt-get install -y chromium"


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of the Chromium executable; the test is skipped without one, except under CI=true where it fails."""
    found = find_chromium()
    if found is None:
        reason = f"Chromium is not installed (Debian: `{INSTALL}`; or set CHROMIUM=/path/to/chrome)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI=true: the report's browser test must run, not skip")
        pytest.skip(reason)
    return found
