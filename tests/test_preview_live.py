"""Live reload through the real server: file change -> server-sent event -> new page."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

SLUG = "ketamine-therapy"


def read_events(lines: Iterator[str], count: int) -> list[tuple[str, str]]:
    """The next ``count`` (event, data) pairs from an event stream's line iterator."""
    events: list[tuple[str, str]] = []
    name = data = ""
    for line in lines:
        if line.startswith("event: "):
            name = line[len("event: ") :]
        elif line.startswith("data: "):
            data = line[len("data: ") :]
        elif line == "" and name:
            events.append((name, data))
            name = data = ""
            if len(events) == count:
                break
    return events


@pytest.fixture
def http(preview_server) -> httpx.Client:
    with httpx.Client(base_url=preview_server.url, timeout=httpx.Timeout(10.0)) as client:
        yield client


def test_server_listens_on_loopback_only_and_checks_the_host(preview_server, http) -> None:
    assert preview_server.url == f"http://127.0.0.1:{preview_server.port}/"
    assert preview_server._socket.getsockname()[0] == "127.0.0.1"
    assert http.get("/").status_code == 200
    assert http.get("/", headers={"Host": f"localhost:{preview_server.port}"}).status_code == 200
    rebound = http.get("/", headers={"Host": f"attacker.example:{preview_server.port}"})
    assert rebound.status_code == 403


def test_saving_markdown_pushes_a_reload_event_and_the_page_changes(
    preview_server, http, project: Path
) -> None:
    path = project / "campaigns" / SLUG / "01-rapid-relief.md"
    with http.stream("GET", "/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = response.iter_lines()
        version = preview_server.project.snapshot.version
        assert version.endswith("-1")
        assert read_events(stream, 1) == [("hello", version)]
        path.write_text(
            path.read_text(encoding="utf-8").replace(
                "## Rapid Relief From Symptoms", "## Relief Within Hours"
            ),
            encoding="utf-8",
        )
        assert read_events(stream, 1) == [("reload", version[:-1] + "2")]
    page = http.get(f"/campaigns/{SLUG}/1/email.html").text
    assert ">Relief Within Hours</h2>" in page
    assert f'data-version="{version[:-1]}2"' in http.get(f"/campaigns/{SLUG}/1").text


def test_a_broken_save_shows_the_error_and_the_server_keeps_serving(
    preview_server, http, project: Path
) -> None:
    path = project / "campaigns" / SLUG / "campaign.toml"
    good = path.read_text(encoding="utf-8")
    with http.stream("GET", "/events") as response:
        stream = response.iter_lines()
        read_events(stream, 1)
        path.write_text(good.replace("[schedule]", "[schedule", 1), encoding="utf-8")
        assert read_events(stream, 1)[0][0] == "reload"
        page = http.get(f"/campaigns/{SLUG}/2").text
        line = good.splitlines().index("[schedule]") + 1
        assert f"campaigns/{SLUG}/campaign.toml:{line}" in page
        path.write_text(good, encoding="utf-8")
        assert read_events(stream, 1)[0][0] == "reload"
    page = http.get(f"/campaigns/{SLUG}/2").text
    assert "error-panel" not in page
    assert 'class="email-frame' in page


def test_stopping_ends_open_event_streams_promptly(project: Path) -> None:
    from dripline.preview import PreviewServer

    server = PreviewServer(project, base_url="http://127.0.0.1:8000", port=0)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert server.started.wait(15)
    with (
        httpx.Client(base_url=server.url, timeout=10.0) as client,
        client.stream("GET", "/events") as response,
    ):
        stream = response.iter_lines()
        read_events(stream, 1)
        server.stop()
        # The stream ends with its proper last chunk: had the server waited out uvicorn's
        # 2 s grace period, it would have cut the connection and httpx would raise here.
        assert read_events(stream, 1) == []
        assert server.broadcaster.closed
        thread.join(10)
        assert not thread.is_alive()
