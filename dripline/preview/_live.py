"""Live reload: watch campaigns/ and templates/, reload the project, tell open pages.

Pages subscribe to ``/events`` (server-sent events). On connect they get the
current version (``hello``), so a change that landed between rendering a page
and opening the stream (or a server restart) is not missed; after every change
they get ``reload`` with the new version and refresh themselves.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import anyio.to_thread
from watchfiles import DefaultFilter, awatch

from ._project import Project

__all__ = ["ReloadBroadcaster", "event_stream", "watch_project"]

log = logging.getLogger("dripline.preview")

# watchfiles yields a batch once no new change arrived for STEP_MS; editors that save
# in several writes (temp file, rename, chmod) land in one batch. DEBOUNCE_MS caps a
# batch that keeps growing. Both are far under the one-second budget for a refresh.
STEP_MS = 30
DEBOUNCE_MS = 300
KEEPALIVE_SECONDS = 15.0


class ReloadBroadcaster:
    """Fans a new snapshot version out to every open event stream (event-loop side only)."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[str | None]] = set()
        self.closed = False

    def subscribe(self) -> asyncio.Queue[str | None]:
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        if self.closed:
            queue.put_nowait(None)
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[str | None]) -> None:
        self._queues.discard(queue)

    def publish(self, version: str) -> None:
        for queue in self._queues:
            queue.put_nowait(version)

    def close(self) -> None:
        """End every stream, so a shutting-down server is not held open by idle pages."""
        self.closed = True
        for queue in self._queues:
            queue.put_nowait(None)


async def event_stream(project: Project, broadcaster: ReloadBroadcaster) -> AsyncIterator[str]:
    """The text of one ``/events`` response."""
    queue = broadcaster.subscribe()
    try:
        # retry: reconnect quickly when the server restarts, so pages come back by themselves.
        yield f"retry: 500\nevent: hello\ndata: {project.snapshot.version}\n\n"
        while True:
            try:
                version = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            if version is None:
                return
            yield f"event: reload\ndata: {version}\n\n"
    finally:
        broadcaster.unsubscribe(queue)


def _watched(project: Project) -> list[Path]:
    return [p for p in (project.campaigns_dir, project.templates_dir) if p.is_dir()]


async def watch_project(
    project: Project, broadcaster: ReloadBroadcaster, stop: asyncio.Event
) -> None:
    """Reload ``project`` after each batch of file changes and announce the new version."""
    paths = _watched(project)
    if not paths:
        log.warning("nothing to watch: no campaigns/ or templates/ under %s", project.root)
        return
    async for changes in awatch(
        *paths,
        watch_filter=DefaultFilter(),
        debounce=DEBOUNCE_MS,
        step=STEP_MS,
        stop_event=stop,
    ):
        log.debug("changed: %s", sorted(path for _, path in changes))
        try:
            # Loading reads files and parses TOML: keep it off the event loop.
            snapshot = await anyio.to_thread.run_sync(project.reload)
        except Exception:  # a bug must not stop live reload for every later edit
            log.exception("reloading the project failed")
            continue
        broadcaster.publish(snapshot.version)
