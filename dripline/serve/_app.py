"""The Starlette application: sign-up form, confirmation, one-click unsubscribe, the
provider webhooks (:mod:`._webhooks`), results (:mod:`._results`: tracked clicks and
opens, goal events) and subscriber attributes (:mod:`._api`: ``PATCH /api/subscribers``).

Routes are thin: they read the request, call :class:`SignupService` in a worker
thread (it blocks on the database and the sender) and pick a page. A GET never
changes a subscription, since mail scanners follow links; every change is a POST. The only
GETs that write are ``/c/`` and ``/o/``, whose purpose is to count a click or an open
(classed, so scanners are counted apart).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from sender.base import SenderConfigError, SendError

from ..errors import ConfigError
from ..runtime import check_ready_to_send, sender_for
from ..settings import Settings
from ..store import InvalidSubscriberError, forget_unconfirmed, open_store
from ._api import subscriber_routes
from ._form import (
    EMAIL_MAX,
    FIRST_NAME_MAX,
    HONEYPOT_FIELD,
    SignupFields,
    SlidingWindowLimiter,
    read_signup_fields,
)
from ._results import result_routes
from ._service import OfferedCampaign, SignupService, load_offered_campaigns
from ._views import invalid_link_page, message_page, page
from ._webhooks import webhook_routes

__all__ = ["MIN_SECRET_KEY_LENGTH", "check_serve_settings", "create_app"]

log = logging.getLogger("dripline.serve")

MIN_SECRET_KEY_LENGTH = 16
# Addresses that never confirmed are deleted at start-up once their links are long dead.
UNCONFIRMED_KEPT_FOR = timedelta(days=30)
_MAX_FORM_BYTES = 16 * 1024  # the sign-up form is a few hundred bytes; refuse bulk posts
_ONE_CLICK = ("List-Unsubscribe", "One-Click")  # RFC 8058's POST body


def _invalid_confirmation() -> HTMLResponse:
    return message_page(
        "This confirmation link does not work",
        "It may have expired (links work for 7 days) or been cut short. "
        "Sign up again to get a new one.",
        status=404,
    )


def _client(request: Request) -> tuple[str, str]:
    ip = request.client.host if request.client else "unknown"
    return ip, request.headers.get("user-agent", "")


async def _read_form(request: Request) -> dict[str, Any]:
    size = request.headers.get("content-length", "")
    if size.isdigit() and int(size) > _MAX_FORM_BYTES:
        raise HTTPException(413)
    async with request.form(max_files=0, max_fields=20) as form:
        return {k: v for k, v in form.items() if isinstance(v, str)}


class _Routes:
    def __init__(self, service: SignupService, ip_limiter: SlidingWindowLimiter) -> None:
        self.service = service
        self.ip_limiter = ip_limiter

    def _offered(self, request: Request) -> OfferedCampaign:
        offered = self.service.campaigns.get(request.path_params["slug"])
        if offered is None:
            raise HTTPException(404)
        return offered

    def _form_page(
        self, offered: OfferedCampaign, fields: SignupFields, status: int = 200
    ) -> HTMLResponse:
        return page(
            "subscribe.html",
            status,
            # "Error:" first in the title: the first thing a screen reader says on reload.
            title=f"{'Error: ' if fields.errors else ''}Subscribe: {offered.campaign.name}",
            lang=offered.campaign.lang,
            campaign=offered.campaign,
            steps=len(offered.campaign.steps),
            fields=fields,
            consent_text=offered.consent_text,
            honeypot=HONEYPOT_FIELD,
            email_max=EMAIL_MAX,
            first_name_max=FIRST_NAME_MAX,
            ask_country=offered.campaign.schedule.holidays == "subscriber",
        )

    async def subscribe_form(self, request: Request) -> Response:
        return self._form_page(self._offered(request), SignupFields())

    async def subscribe(self, request: Request) -> Response:
        offered = self._offered(request)
        ip, user_agent = _client(request)
        if not self.ip_limiter.allow(ip):
            return message_page(
                "Too many sign-ups",
                "Too many sign-ups came from your network in the last minute. "
                "Please wait a minute and try again.",
                status=429,
                extra_headers={"Retry-After": "60"},
            )
        fields = read_signup_fields(await _read_form(request))
        sent_page = message_page(
            "Check your inbox",
            f"If the address you gave can receive our emails, a message is on its way with "
            f"a link to confirm your subscription to \u201c{offered.campaign.name}\u201d.",
            "Nothing is sent until you confirm. The link works for 7 days.",
            lang=offered.campaign.lang,
        )
        if fields.honeypot_filled:
            log.info("sign-up for %s dropped: honeypot filled", offered.slug)
            return sent_page  # a bot learns nothing
        if not fields.ok:
            return self._form_page(offered, fields, status=400)
        try:
            await run_in_threadpool(
                self.service.sign_up, offered, fields, ip=ip, user_agent=user_agent
            )
        except (SendError, SenderConfigError) as err:
            log.error("confirmation email for %s not sent: %s", offered.slug, err)
            return message_page(
                "We could not send the confirmation email",
                "Something went wrong on our side. Please try again in a few minutes.",
                status=503,
            )
        return sent_page

    async def confirm_page(self, request: Request) -> Response:
        verified = self.service.verify_confirm(request.path_params["token"])
        resolved = verified and await run_in_threadpool(self.service.resolve_confirm, verified)
        if resolved is None:
            return _invalid_confirmation()
        campaign = self.service.campaigns[resolved.campaign_slug].campaign
        return page(
            "action.html",
            title="Confirm your subscription",
            lang=campaign.lang,
            paragraphs=[f"Press the button to start receiving \u201c{campaign.name}\u201d."],
            hidden={},
            button="Confirm my subscription",
        )

    async def confirm(self, request: Request) -> Response:
        verified = self.service.verify_confirm(request.path_params["token"])
        if verified is None:
            return _invalid_confirmation()
        ip, user_agent = _client(request)
        try:
            done = await run_in_threadpool(
                self.service.confirm, verified, ip=ip, user_agent=user_agent
            )
        except InvalidSubscriberError:
            return message_page(
                "This address cannot receive our emails",
                "Emails to it have bounced before. Please sign up with another address.",
                status=409,
            )
        if done is None:
            return _invalid_confirmation()
        offered = self.service.campaigns[done.campaign]
        zone = offered.timetable.zone_for(done.timezone)
        if done.next_due is None:
            when = "You have already received every email of this campaign."
        elif done.next_due <= self.service.clock():
            when = "The next email is on its way."
        else:
            local = done.next_due.astimezone(zone)
            when = f"The next email arrives on {local:%A %d %B at %H:%M} ({zone.key})."
        return message_page(
            "You are subscribed",
            f"Thank you for confirming. You will receive \u201c{offered.campaign.name}\u201d.",
            when,
            "Every email has a link to unsubscribe with one click.",
            lang=offered.campaign.lang,
        )

    async def unsubscribe_page(self, request: Request) -> Response:
        verified = self.service.verify_unsubscribe(request.path_params["token"])
        resolved = verified and await run_in_threadpool(self.service.resolve_unsubscribe, verified)
        if resolved is None:
            return invalid_link_page()
        campaign = self.service.campaigns.get(resolved.campaign_slug)
        name = campaign.campaign.name if campaign else resolved.campaign_slug
        return page(
            "action.html",
            title="Unsubscribe?",
            paragraphs=[f"Press the button to stop receiving \u201c{name}\u201d."],
            hidden=dict([_ONE_CLICK]),
            button="Unsubscribe",
        )

    async def unsubscribe(self, request: Request) -> Response:
        form = await _read_form(request)
        if form.get(_ONE_CLICK[0]) != _ONE_CLICK[1]:
            return message_page(
                "Nothing was changed",
                "Use the Unsubscribe button on the page this link opens.",
                status=400,
            )
        verified = self.service.verify_unsubscribe(request.path_params["token"])
        resolved = verified and await run_in_threadpool(self.service.unsubscribe, verified)
        if resolved is None:
            return invalid_link_page()
        campaign = self.service.campaigns.get(resolved.campaign_slug)
        name = campaign.campaign.name if campaign else resolved.campaign_slug
        return message_page(
            "You are unsubscribed",
            f"You will receive no more emails of \u201c{name}\u201d.",
        )


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 404:
        return message_page("Page not found", "There is nothing at this address.", status=404)
    if status == 413:
        return message_page("Too much data", "The form was larger than expected.", status=413)
    if status == 405:
        return message_page("Not allowed", "This page does not take that request.", status=405)
    return message_page("Something went wrong", "Please try again later.", status=status)


async def _server_error(request: Request, exc: Exception) -> Response:
    # A bug or an unreachable database: the visitor gets a page, the log gets the traceback.
    log.error("%s %s failed", request.method, request.url.path.split("/")[1], exc_info=exc)
    return message_page("Something went wrong", "Please try again later.", status=500)


def check_serve_settings(settings: Settings) -> None:
    """Refuse to serve without what links need: a secret key and a public base URL.

    Raises :class:`ConfigError`; the base URL rule is ``check_ready_to_send``'s (https, not
    this machine, unless the sender reaches no one or ``allow_local_links``).
    """
    if not settings.secret_key:
        raise ConfigError(
            "DRIPLINE_SECRET_KEY is not set: dripline serve signs unsubscribe and confirmation "
            "links with it. Set it to a long random value, e.g. the output of "
            "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    if len(settings.secret_key) < MIN_SECRET_KEY_LENGTH:
        raise ConfigError(
            f"DRIPLINE_SECRET_KEY is too short: use at least {MIN_SECRET_KEY_LENGTH} random "
            "characters"
        )
    # The events API ends sequences and answers per address: a guessable token is no lock.
    if settings.api_token and len(settings.api_token) < MIN_SECRET_KEY_LENGTH:
        raise ConfigError(
            f"DRIPLINE_API_TOKEN is too short: use at least {MIN_SECRET_KEY_LENGTH} random "
            "characters (or unset it to turn POST /api/events off)"
        )
    # Confirmation emails carry links too: the same rule as `dripline run`.
    check_ready_to_send(settings, campaigns=False)


def create_app(
    settings: Settings,
    *,
    clock: Callable[[], datetime] | None = None,
    signups_per_ip_per_minute: int = 5,
    emails_per_address_per_hour: int = 3,
) -> Starlette:
    """The web app for ``settings``; raises :class:`ConfigError` when it cannot serve safely."""
    check_serve_settings(settings)
    sender_for(settings)  # a bad sender URL stops us here, not per visitor
    engine = open_store(settings.effective_database_url, campaigns_dir=settings.campaigns_dir)
    now = (clock or (lambda: datetime.now(UTC)))()
    forgotten = forget_unconfirmed(engine, now=now, after=UNCONFIRMED_KEPT_FOR)
    if forgotten:
        log.info("forgot %d address(es) that never confirmed a sign-up", forgotten)
    service = SignupService(
        settings,
        engine,
        load_offered_campaigns(settings.campaigns_dir),
        clock=clock or (lambda: datetime.now(UTC)),
        emails_per_hour=emails_per_address_per_hour,
    )
    routes = _Routes(service, SlidingWindowLimiter(signups_per_ip_per_minute, 60.0))

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        engine.dispose()

    app = Starlette(
        routes=[
            Route("/subscribe/{slug}", routes.subscribe_form, methods=["GET"]),
            Route("/subscribe/{slug}", routes.subscribe, methods=["POST"]),
            Route("/confirm/{token}", routes.confirm_page, methods=["GET"]),
            Route("/confirm/{token}", routes.confirm, methods=["POST"]),
            Route("/u/{token}", routes.unsubscribe_page, methods=["GET"]),
            Route("/u/{token}", routes.unsubscribe, methods=["POST"]),
            *webhook_routes(settings, engine, clock or (lambda: datetime.now(UTC))),
            *result_routes(settings, engine, clock or (lambda: datetime.now(UTC))),
            *subscriber_routes(settings, engine),
        ],
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
        lifespan=lifespan,
    )
    # "/u/" is no link of ours: answer 404 like any bad token, never redirect to "/u".
    app.router.redirect_slashes = False
    app.state.service = service
    return app
