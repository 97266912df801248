"""Reload latency of `dripline preview`: save a Markdown file -> the updated page is shown.

    python bench/preview_reload.py [--edits 10] [--no-browser]

Serves a copy of the project (campaigns/ and templates/ in a temporary folder) with
the real server on 127.0.0.1, opens a step page in headless Chromium (Debian's,
$CHROMIUM_EXECUTABLE or /usr/bin/chromium, driven by Playwright) and edits that
step's heading again and again. For each save it records, from the moment the
file was written:

- event: the server-sent ``reload`` event reaches a client;
- rendered: that client has fetched the re-rendered email document holding the new
  heading (what a page refresh asks for);
- browser: the open Chromium page shows the new heading in its iframe, with no
  manual reload (polled every few milliseconds over the DevTools protocol).

Target: under 1 second from save to updated page.
"""

from __future__ import annotations

import argparse
import os
import queue
import shlex
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dripline.preview import PreviewServer  # noqa: E402

SLUG = "ketamine-therapy"
STEP = 3
HEADING = "## Promotes Neuroplasticity for Long-Term Benefits"
TARGET_MS = 1000.0


def listen(url: str, events: queue.Queue[tuple[str, float, float]], stop: threading.Event) -> None:
    """Follow /events; after each reload, fetch the email document and note both times."""
    document = f"{url}campaigns/{SLUG}/{STEP}/email.html"
    with httpx.Client(timeout=30) as client, client.stream("GET", f"{url}events") as stream:
        name = ""
        for line in stream.iter_lines():
            if stop.is_set():
                return
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: ") and name == "reload":
                seen = time.perf_counter()
                html = client.get(document).text
                rendered = time.perf_counter()
                events.put((line[6:], seen, rendered if "Benchmark edit" in html else -1.0))


def launch_browser(url: str):  # type: ignore[no-untyped-def]
    from playwright.sync_api import sync_playwright

    executable = os.environ.get("CHROMIUM_EXECUTABLE", "/usr/bin/chromium")
    args = shlex.split(
        os.environ.get("CHROMIUM_ARGS", "--no-sandbox --disable-gpu --disable-dev-shm-usage")
    )
    playwright = sync_playwright().start()
    browser = playwright.chromium.launch(executable_path=executable, args=args)
    page = browser.new_page(viewport={"width": 375, "height": 900})
    page.goto(f"{url}campaigns/{SLUG}/{STEP}?width=375")
    page.wait_for_selector("iframe.email-frame")
    return playwright, browser, page


def heading_in_browser(page) -> str:  # type: ignore[no-untyped-def]
    try:
        return (
            page.frame_locator("iframe.email-frame").locator("h2").first.text_content(timeout=200)
            or ""
        )
    except Exception:  # mid-navigation: the frame is being replaced
        return ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=10)
    parser.add_argument("--no-browser", action="store_true", help="measure event and render only")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="dripline-bench-") as tmp:
        project = Path(tmp)
        for name in ("campaigns", "templates"):
            shutil.copytree(ROOT / name, project / name)
        path = project / "campaigns" / SLUG / f"{STEP:02d}-neuroplasticity.md"
        original = path.read_text(encoding="utf-8")
        assert HEADING in original

        server = PreviewServer(project, base_url="http://127.0.0.1:8000", port=0)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        server.started.wait(15)
        events: queue.Queue[tuple[str, float, float]] = queue.Queue()
        stop = threading.Event()
        threading.Thread(target=listen, args=(server.url, events, stop), daemon=True).start()
        browser_parts = None if args.no_browser else launch_browser(server.url)
        time.sleep(0.5)  # let the page open its event stream

        rows: list[tuple[int, float, float, float | None]] = []
        for edit in range(1, args.edits + 1):
            text = f"Benchmark edit {edit}"
            saved = time.perf_counter()
            path.write_text(original.replace(HEADING, f"## {text}"), encoding="utf-8")
            _version, seen, rendered = events.get(timeout=10)
            shown: float | None = None
            if browser_parts is not None:
                page = browser_parts[2]
                deadline = time.perf_counter() + 10
                while time.perf_counter() < deadline:
                    if heading_in_browser(page) == text:
                        shown = time.perf_counter()
                        break
                    time.sleep(0.005)
                if shown is None:
                    raise SystemExit(f"edit {edit}: Chromium never showed {text!r}")
            rows.append(
                (
                    edit,
                    (seen - saved) * 1000,
                    (rendered - saved) * 1000 if rendered > 0 else float("nan"),
                    (shown - saved) * 1000 if shown is not None else None,
                )
            )
            time.sleep(0.3)  # separate saves, as a person typing and saving would

        stop.set()
        if browser_parts is not None:
            browser_parts[1].close()
            browser_parts[0].stop()
        server.stop()
        thread.join(10)

    print(f"Reload latency, {args.edits} saves of {SLUG} step {STEP} (ms from the file write)")
    print(f"{'edit':>4}  {'SSE event':>10}  {'re-rendered':>12}  {'Chromium shows':>15}")
    for edit, event_ms, render_ms, shown_ms in rows:
        shown_text = f"{shown_ms:15.0f}" if shown_ms is not None else f"{'-':>15}"
        print(f"{edit:>4}  {event_ms:10.0f}  {render_ms:12.0f}  {shown_text}")
    columns = {
        "SSE event": [r[1] for r in rows],
        "re-rendered": [r[2] for r in rows],
    }
    if rows and rows[0][3] is not None:
        columns["Chromium shows"] = [r[3] for r in rows if r[3] is not None]
    print()
    print(f"{'':>12}  {'median':>7}  {'max':>7}")
    for label, values in columns.items():
        print(f"{label:>14}  {statistics.median(values):7.0f}  {max(values):7.0f}")
    worst = max(max(v) for v in columns.values())
    verdict = "under" if worst < TARGET_MS else "OVER"
    print(f"\nslowest save-to-page: {worst:.0f} ms ({verdict} the {TARGET_MS:.0f} ms target)")


if __name__ == "__main__":
    main()
