"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real recordings: $SONOTYPE_DATA, default ``<repo>/../shared/data``.

    Missing -> the test is skipped, or fails when SONOTYPE_REQUIRE_DATA=1 (CI).
    """
    root = Path(os.environ.get("SONOTYPE_DATA") or REPO.parent / "shared" / "data")
    if not root.is_dir():
        msg = f"real data folder {root} not found; set SONOTYPE_DATA to the folder of real recordings"
        if os.environ.get("SONOTYPE_REQUIRE_DATA") == "1":
            pytest.fail(msg + " (SONOTYPE_REQUIRE_DATA=1 makes this an error)")
        pytest.skip(msg)
    return root
