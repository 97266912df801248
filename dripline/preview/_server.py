"""Serving the preview with uvicorn on 127.0.0.1, from the CLI or from a test's thread."""

from __future__ import annotations

import socket
import threading
import webbrowser
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import uvicorn

from .._budget import DEFAULT_RENDER_BUDGET
from .._listen import listen_socket
from ._app import create_app
from ._live import ReloadBroadcaster
from ._project import Project

__all__ = ["PreviewServer"]

LOOPBACK = "127.0.0.1"


def _listen_socket(port: int) -> socket.socket:
    """A socket bound to loopback: the preview is never reachable from another machine."""
    return listen_socket(
        LOOPBACK, port, busy_hint="is another preview running? choose another --port"
    )


class _Uvicorn(uvicorn.Server):
    """uvicorn that ends open event streams first, so stopping does not wait on idle pages."""

    def __init__(
        self, config: uvicorn.Config, broadcaster: ReloadBroadcaster, on_started: Callable[[], None]
    ) -> None:
        super().__init__(config)
        self.broadcaster = broadcaster
        self.on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.on_started()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.broadcaster.close()
        await super().shutdown(sockets)


class PreviewServer:
    """The preview of the project at ``root``; ``run()`` blocks, ``stop()`` works from any thread.

    The port is bound in the constructor, so a busy port is a clear error before
    anything starts, and ``port=0`` picks a free one (``.port`` tells which).
    """

    def __init__(
        self,
        root: Path,
        *,
        base_url: str,
        port: int = 8025,
        open_browser: bool = False,
        clock: Callable[[], datetime] | None = None,
        database_url: str | None = None,
        render_budget: float | None = DEFAULT_RENDER_BUDGET,
    ) -> None:
        self._socket = _listen_socket(port)
        self.port: int = self._socket.getsockname()[1]
        self.url = f"http://{LOOPBACK}:{self.port}/"
        # With a database, campaign pages show what an edit would change for live subscribers.
        self.project = Project(
            root,
            base_url=base_url,
            clock=clock,
            database_url=database_url,
            render_budget=render_budget,
        )
        self.broadcaster = ReloadBroadcaster()
        self.app = create_app(self.project, port=self.port, broadcaster=self.broadcaster)
        self.started = threading.Event()
        self._open_browser = open_browser
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=2,
        )
        self._server = _Uvicorn(config, self.broadcaster, self._on_started)

    def _on_started(self) -> None:
        self.started.set()
        if self._open_browser:
            # webbrowser may block while it launches a browser: not on the event loop.
            threading.Thread(target=webbrowser.open, args=(self.url,), daemon=True).start()

    def run(self) -> None:
        """Serve until Ctrl+C (or ``stop()``)."""
        try:
            self._server.run(sockets=[self._socket])
        except KeyboardInterrupt:
            # uvicorn re-raises Ctrl+C after its clean shutdown; stopping is the normal end.
            pass
        finally:
            self._socket.close()

    def stop(self) -> None:
        self._server.should_exit = True
