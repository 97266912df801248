from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the repository's campaigns/ and templates/ that a test may edit."""
    for name in ("campaigns", "templates"):
        shutil.copytree(REPO / name, tmp_path / name)
    return tmp_path
