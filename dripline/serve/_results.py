"""Results routes: ``GET /c/TOKEN`` (a tracked click), ``GET /o/TOKEN`` (an open) and
``POST /api/events`` (a goal event).

A click token names a delivery and a link position, never a URL: the redirect goes to
the URL the store holds for that position of that delivery's step, so nothing in the
request can send a visitor elsewhere (no open redirect). A bad, altered or unknown
token, or one whose campaign is not the delivery's, gets the same 404 page as a bad
unsubscribe link. These GETs record a click, which is their purpose (a ``HEAD`` gets
the same answer and records nothing); scanners follow them too, so clicks are classed
(see :mod:`dripline.useragents`) and only the class is kept, never the address or the
user-agent string.

``POST /api/events`` takes JSON ``{"email", "event", "at", "id", "data"}`` with
``Authorization: Bearer DRIPLINE_API_TOKEN`` (compared in constant time; without a
configured token every request gets 401), and ``Content-Type: application/json`` (else
415). Every answer is JSON, 405 and 500 included.
"""

from __future__ import annotations

import base64
import hmac
import logging
from collections.abc import Callable
from datetime import datetime
from functools import partial

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ..goals import EventInputError, parse_event_time, record_goal_event
from ..settings import Settings
from ..store import (
    CampaignUnavailableError,
    EventIdConflictError,
    InvalidSubscriberError,
    NotSubscribedError,
    record_click,
    record_open,
)
from ..tokens import CLICK, OPEN, tracking_tokens
from ..useragents import classify_user_agent
from ._api import ALL_METHODS, api_answer, bearer_ok, guarded, read_json
from ._views import invalid_link_page

__all__ = ["result_routes"]

log = logging.getLogger("dripline.serve")

_PIXEL = base64.b64decode("R0lGODlhAQABAAAAACH5BAEKAAEALAAAAAABAAEAAAICTAEAOw==")
_NO_TRACE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


_json = api_answer


class _Results:
    def __init__(self, settings: Settings, engine: Engine, clock: Callable[[], datetime]) -> None:
        self.settings = settings
        self.engine = engine
        self.clock = clock
        self.tokens = tracking_tokens(settings.secret_key)

    def _names(self, tag: bytes) -> Callable[[str], bool]:
        return lambda slug: hmac.compare_digest(tag, self.tokens.signer.campaign_tag(slug))

    async def click(self, request: Request) -> Response:
        link = self.tokens.read(request.path_params["token"], CLICK)
        if link is None or link.position is None:
            return invalid_link_page()
        hit = await run_in_threadpool(
            partial(
                record_click,
                self.engine,
                link.delivery_id,
                link.position,
                names_campaign=self._names(link.campaign_tag),
                user_agent_class=classify_user_agent(request.headers.get("user-agent")),
                now=self.clock(),
                # Link checkers and mail gateways ask with HEAD: answered, not counted.
                record=request.method != "HEAD",
            )
        )
        if hit is None or not hit.url.lower().startswith(("https://", "http://")):
            return invalid_link_page()
        return RedirectResponse(hit.url, status_code=302, headers=_NO_TRACE)

    async def open(self, request: Request) -> Response:
        link = self.tokens.read(request.path_params["token"], OPEN)
        if link is None:
            return invalid_link_page()
        hit = await run_in_threadpool(
            partial(
                record_open,
                self.engine,
                link.delivery_id,
                names_campaign=self._names(link.campaign_tag),
                user_agent_class=classify_user_agent(request.headers.get("user-agent")),
                now=self.clock(),
                record=request.method != "HEAD",  # as for /c/: answered, not counted
            )
        )
        if hit is None:
            return invalid_link_page()
        return Response(_PIXEL, media_type="image/gif", headers=_NO_TRACE)

    async def event(self, request: Request) -> Response:
        return await guarded(request, "POST", self._event, "/api/events")

    async def _event(self, request: Request) -> Response:
        if not bearer_ok(self.settings, request):
            return _json(401, error="a valid Bearer token (DRIPLINE_API_TOKEN) is required")
        body = await read_json(request, "data: ")  # PostgreSQL refuses NaN in event data
        if isinstance(body, Response):
            return body
        if not isinstance(body, dict):
            return _json(400, error="the body must be a JSON object")
        email, data = body.get("email"), body.get("data", {})
        try:
            if not isinstance(email, str) or not email.strip():
                raise EventInputError("email: an email address is expected")
            if not isinstance(data, dict):
                raise EventInputError("data: a JSON object is expected")
            at = parse_event_time(body.get("at"))
            recorded = await run_in_threadpool(
                partial(
                    record_goal_event,
                    self.engine,
                    self.settings.campaigns_dir,
                    email,
                    body.get("event"),
                    at=at,
                    now=self.clock(),
                    data=data,
                    external_id=body.get("id"),
                    source="api",
                )
            )
        except EventInputError as err:
            return _json(400, error=str(err))
        except NotSubscribedError:
            return _json(404, error="no subscriber has that email address")
        except EventIdConflictError as err:  # the id names another event of this person
            return _json(409, error=f"id: {err}")
        except CampaignUnavailableError as err:  # a broken campaign.toml: retry later
            log.warning("POST /api/events refused: %s", err)
            return _json(503, error=str(err))
        except InvalidSubscriberError as err:  # no address at all
            return _json(400, error=f"email: {err}")
        return _json(200 if recorded.duplicate else 201, **recorded.as_json())


def result_routes(settings: Settings, engine: Engine, clock: Callable[[], datetime]) -> list[Route]:
    """The click, open and event routes (``check_serve_settings`` has checked the secret)."""
    results = _Results(settings, engine, clock)
    return [
        Route("/c/{token}", results.click, methods=["GET"]),
        Route("/o/{token}", results.open, methods=["GET"]),
        Route("/api/events", results.event, methods=list(ALL_METHODS)),
    ]
