"""The JSON API's shared rules, and ``PATCH /api/subscribers/EMAIL`` (attributes that change).

Every ``/api/`` route takes ``Authorization: Bearer DRIPLINE_API_TOKEN`` (compared in
constant time; without a configured token every request gets 401 and changes nothing),
a body sent as ``Content-Type: application/json`` (else 415; the PATCH route also takes
RFC 7396's ``application/merge-patch+json``) of at most 32 KiB (else 413, without
reading further), and answers JSON whatever happens, 405 and 500 included: an API client never gets
the HTML pages meant for people.

``PATCH /api/subscribers/EMAIL`` takes a JSON object of fields, as ``dripline subscriber
set`` does: ``{"plan": "pro", "seats": 5, "country": null}``. A value is a string, an
integer (stored as its decimal text, as a CSV cell would be) or null (removes the
attribute, like ``plan=``). Keys follow the CSV import's naming rule
(:mod:`dripline.store._attribute_names`); two keys naming one field are a 400. Every
value is checked by the same code as the CSV import and ``subscriber set``
(:func:`dripline.store.set_subscriber_fields`), in one transaction: one bad value is a
400 naming its field, and nothing changes. An unknown subscriber is 404; success is 200
with the subscriber as ``subscriber show --json`` prints it. Conditional steps read
attributes when a step is due, so a change applies to the steps not yet sent, never to
one already sent or skipped.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..goals import strict_json
from ..settings import Settings
from ..store import (
    InvalidFieldError,
    InvalidSubscriberError,
    NotSubscribedError,
    set_subscriber_fields,
)

__all__ = [
    "ALL_METHODS",
    "MAX_API_BYTES",
    "api_answer",
    "bearer_ok",
    "guarded",
    "read_json",
    "subscriber_routes",
]

log = logging.getLogger("dripline.serve")

MAX_API_BYTES = 32 * 1024
# Every method is routed (Starlette's default for a function is GET only), so that a
# wrong one gets a JSON 405 rather than the HTML page.
ALL_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_PATCH_TYPES = ("application/json", "application/merge-patch+json")


def api_answer(status: int, /, **body: Any) -> JSONResponse:
    """A JSON answer that no cache keeps."""
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


def bearer_ok(settings: Settings, request: Request) -> bool:
    """Whether the request carries ``Bearer DRIPLINE_API_TOKEN`` (False when none is set)."""
    expected = settings.api_token
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if not expected or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), expected.encode())


async def guarded(
    request: Request,
    method: str,
    handle: Callable[[Request], Awaitable[Response]],
    route: str,
) -> Response:
    """``handle`` for ``method`` only (405 otherwise), a bug or lost database as a JSON 500."""
    if request.method != method:
        return JSONResponse(
            {"error": f"only {method} is allowed"},
            status_code=405,
            headers={"Allow": method, "Cache-Control": "no-store"},
        )
    try:
        return await handle(request)
    except Exception:  # the log gets the traceback, the client a JSON answer
        log.exception("%s %s failed", method, route)  # the route, never an address
        return api_answer(500, error="internal error; see the server log")


async def read_json(
    request: Request,
    constants_in: str = "",
    media_types: tuple[str, ...] = ("application/json",),
) -> Any | Response:
    """The body as strict JSON, or the 415/413/400 answer that refuses it.

    ``constants_in`` names where NaN or Infinity would be refused (``"data: "``);
    ``media_types`` are the Content-Types accepted. The size limit holds while the body
    is read: a declared Content-Length over it is refused unread, and a chunked body is
    read no further than the limit.
    """
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type not in media_types:
        return api_answer(
            415, error=f"the body must be sent as Content-Type: {' or '.join(media_types)}"
        )
    too_big = api_answer(413, error=f"the body is over {MAX_API_BYTES // 1024} KiB")
    declared = request.headers.get("content-length", "").strip()
    if declared.isdigit() and int(declared) > MAX_API_BYTES:
        return too_big
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_API_BYTES:
            return too_big  # the rest is never read (the server closes the connection)
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        return strict_json(raw)
    except UnicodeDecodeError:
        return api_answer(400, error="the body is not UTF-8 (JSON is sent as UTF-8)")
    except json.JSONDecodeError:
        return api_answer(400, error="the body must be a JSON object")
    except ValueError as err:  # NaN / Infinity: not JSON
        return api_answer(400, error=f"{constants_in}not JSON ({err})")


def _as_text(field: str, value: Any) -> str:
    """A JSON value as the text a CSV cell would hold; raises InvalidFieldError."""
    if value is None:
        return ""  # removes the attribute, as ``subscriber set plan=`` does
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise InvalidFieldError(
        f"a string, an integer or null is expected, not {type(value).__name__}", field=field
    )


class _Subscribers:
    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine

    async def patch(self, request: Request) -> Response:
        return await guarded(request, "PATCH", self._patch, "/api/subscribers/EMAIL")

    async def _patch(self, request: Request) -> Response:
        if not bearer_ok(self.settings, request):
            return api_answer(401, error="a valid Bearer token (DRIPLINE_API_TOKEN) is required")
        # RFC 7396 JSON Merge Patch is what this route does (null removes a member).
        body = await read_json(request, media_types=_PATCH_TYPES)
        if isinstance(body, Response):
            return body
        if not isinstance(body, dict) or not body:
            return api_answer(400, error="the body must be a JSON object of fields to set")
        email = request.path_params["email"]
        try:
            values = {key: _as_text(key, value) for key, value in body.items()}
            profile = await run_in_threadpool(
                partial(set_subscriber_fields, self.engine, email, values)
            )
        except InvalidFieldError as err:
            return api_answer(400, error=f"{err.field}: {err.message}", field=err.field)
        except NotSubscribedError:
            return api_answer(404, error="no subscriber has that email address")
        except InvalidSubscriberError as err:  # the address in the URL is no address
            return api_answer(400, error=f"email: {err.message}", field="email")
        return api_answer(200, **profile.as_json())


def subscriber_routes(settings: Settings, engine: Engine) -> list[Route]:
    """``/api/subscribers/{email}`` (PATCH; every other method a JSON 405). The address
    is the whole rest of the path, ``/`` included (``a%2Fb@example.com``, decoded)."""
    subscribers = _Subscribers(settings, engine)
    return [Route("/api/subscribers/{email:path}", subscribers.patch, methods=list(ALL_METHODS))]
