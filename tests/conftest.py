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


@pytest.fixture
def preview_server(project: Path):
    """The real preview server (uvicorn on 127.0.0.1, a free port) over a copy of the project."""
    import threading

    from dripline.preview import PreviewServer

    server = PreviewServer(project, base_url="http://127.0.0.1:8000", port=0)
    thread = threading.Thread(target=server.run, name="preview-server", daemon=True)
    thread.start()
    assert server.started.wait(15), "the preview server did not start"
    yield server
    server.stop()
    thread.join(15)
    assert not thread.is_alive(), "the preview server did not stop"
