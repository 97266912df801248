"""The HTML pages: Jinja templates (autoescaped) and the headers every page carries.

Pages reached through a token never leak it: ``Referrer-Policy: no-referrer`` keeps
it out of other sites' logs, ``Cache-Control: no-store`` out of shared caches. The
only script is the time-zone line, allowed by its hash in the Content-Security-Policy.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse

__all__ = ["TIMEZONE_SCRIPT", "message_page", "page"]

# The browser knows the visitor's zone; the form sends it so emails arrive at local 9:00.
TIMEZONE_SCRIPT = (
    "try{document.getElementById('timezone').value="
    "Intl.DateTimeFormat().resolvedOptions().timeZone||'';}catch(e){}"
)
_SCRIPT_HASH = base64.b64encode(hashlib.sha256(TIMEZONE_SCRIPT.encode()).digest()).decode()

_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; "
        f"script-src 'sha256-{_SCRIPT_HASH}'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}

_ENV = Environment(
    loader=FileSystemLoader(Path(__file__).resolve().parent / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def page(
    template: str,
    status: int = 200,
    *,
    extra_headers: Mapping[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    body = _ENV.get_template(template).render(timezone_script=TIMEZONE_SCRIPT, **context)
    return HTMLResponse(body, status_code=status, headers={**_HEADERS, **(extra_headers or {})})


def message_page(
    title: str,
    *paragraphs: str,
    status: int = 200,
    lang: str = "en",
    extra_headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """A page that only says something (sent, done, not found, too many requests)."""
    return page(
        "message.html",
        status,
        extra_headers=extra_headers,
        title=title,
        paragraphs=paragraphs,
        lang=lang,
    )
