"""Provider webhooks: ``POST /webhooks/ses|postmark|sendgrid|mailgun``.

Each route proves the request genuine first (:mod:`._webhook_checks`): a bad or
missing signature gets 403 (401 with a challenge for Postmark's basic auth) and
changes nothing. A genuine request's bounces and complaints become
:class:`~dripline.store.BounceReport` s and take the same actions as a bounce mailbox
(:func:`~dripline.store.record_bounce`); other event kinds (deliveries, opens,
deferrals) are accepted and ignored. Each event's provider id is its external id, so
a replayed or retried request records nothing twice. A provider whose secret is not
configured gets 404: the route is off.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..runtime import bounce_policy_for
from ..settings import Settings
from ..store import COMPLAINT, HARD, SOFT, BounceReport, record_bounce
from ._webhook_checks import (
    MailgunReplayGuard,
    SnsCertificates,
    basic_auth_ok,
    mailgun_signature_ok,
    sendgrid_signature_ok,
)

__all__ = ["webhook_routes"]

log = logging.getLogger("dripline.serve.webhooks")

_MAX_BODY = 1024 * 1024  # providers batch events, but a megabyte is plenty
_POSTMARK_KINDS = {
    "HardBounce": HARD,
    "BadEmailAddress": HARD,
    "SoftBounce": SOFT,
    "Transient": SOFT,
    "DnsError": SOFT,
    "SpamComplaint": COMPLAINT,
}


class _Refused(Exception):
    def __init__(self, status: int, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.headers = dict(headers or {})


def _text(value: Any) -> str:
    return str(value) if value is not None else ""


def _ses_reports(envelope: Mapping[str, Any], raw: str) -> Iterator[BounceReport]:
    try:
        message = json.loads(envelope.get("Message") or "")
    except (TypeError, ValueError):
        return
    if not isinstance(message, dict):
        return
    kind = message.get("notificationType") or message.get("eventType")
    mail = message.get("mail") if isinstance(message.get("mail"), dict) else {}
    headers = mail.get("commonHeaders") if isinstance(mail.get("commonHeaders"), dict) else {}
    message_id = _text(headers.get("messageId")) or None
    base = _text(envelope.get("MessageId"))
    if kind == "Bounce" and isinstance(message.get("bounce"), dict):
        bounce = message["bounce"]
        bounce_kind = HARD if bounce.get("bounceType") == "Permanent" else SOFT
        for i, person in enumerate(bounce.get("bouncedRecipients") or []):
            if isinstance(person, dict) and person.get("emailAddress"):
                yield BounceReport(
                    kind=bounce_kind,
                    source="ses",
                    email=_text(person["emailAddress"]),
                    status_code=_text(person.get("status")) or None,
                    diagnostic=_text(person.get("diagnosticCode"))
                    or _text(bounce.get("bounceSubType")),
                    external_id=f"{base}:{i}",
                    message_id=message_id,
                    raw=raw,
                )
    elif kind == "Complaint" and isinstance(message.get("complaint"), dict):
        complaint = message["complaint"]
        for i, person in enumerate(complaint.get("complainedRecipients") or []):
            if isinstance(person, dict) and person.get("emailAddress"):
                feedback = _text(complaint.get("complaintFeedbackType")) or "abuse"
                yield BounceReport(
                    kind=COMPLAINT,
                    source="ses",
                    email=_text(person["emailAddress"]),
                    diagnostic=f"feedback-type: {feedback}",
                    external_id=f"{base}:{i}",
                    message_id=message_id,
                    raw=raw,
                )


def _postmark_reports(event: Mapping[str, Any], raw: str) -> Iterator[BounceReport]:
    kind = _POSTMARK_KINDS.get(_text(event.get("Type")))
    if event.get("RecordType") == "SpamComplaint":
        kind = COMPLAINT
    if kind is None or not event.get("Email"):
        return
    yield BounceReport(
        kind=kind,
        source="postmark",
        email=_text(event["Email"]),
        diagnostic=_text(event.get("Details")) or _text(event.get("Description")),
        external_id=_text(event.get("ID")) or None,
        raw=raw,
    )


def _sendgrid_reports(events: Any, raw: str) -> Iterator[BounceReport]:
    for event in events if isinstance(events, list) else []:
        if not isinstance(event, dict) or not event.get("email"):
            continue
        name = event.get("event")
        if name == "bounce":
            kind = SOFT if event.get("type") == "blocked" else HARD
        elif name == "spamreport":
            kind = COMPLAINT
        else:
            continue  # delivered, deferred, open, click, dropped, ...
        yield BounceReport(
            kind=kind,
            source="sendgrid",
            email=_text(event["email"]),
            status_code=_text(event.get("status")) or None,
            diagnostic=_text(event.get("reason")),
            external_id=_text(event.get("sg_event_id")) or None,
            message_id=_text(event.get("smtp-id")) or None,
            raw=json.dumps(event, sort_keys=True),
        )


def _mailgun_reports(event: Mapping[str, Any], raw: str) -> Iterator[BounceReport]:
    name = event.get("event")
    if name == "failed":
        kind = HARD if event.get("severity") == "permanent" else SOFT
    elif name == "complained":
        kind = COMPLAINT
    else:
        return
    status = event.get("delivery-status") if isinstance(event.get("delivery-status"), dict) else {}
    message = event.get("message") if isinstance(event.get("message"), dict) else {}
    headers = message.get("headers") if isinstance(message.get("headers"), dict) else {}
    if not event.get("recipient"):
        return
    yield BounceReport(
        kind=kind,
        source="mailgun",
        email=_text(event["recipient"]),
        status_code=_text(status.get("enhanced-code")) or None,
        diagnostic=_text(status.get("description")) or _text(status.get("message")),
        external_id=_text(event.get("id")) or None,
        message_id=_text(headers.get("message-id")) or None,
        raw=raw,
    )


class _Webhooks:
    def __init__(self, settings: Settings, engine: Engine, clock: Callable[[], datetime]):
        self.settings = settings
        self.engine = engine
        self.clock = clock
        self.policy = bounce_policy_for(settings)
        self.certificates = SnsCertificates(settings.ses_certificate_file)
        self.topics = {t.strip() for t in settings.ses_topic_arn.split(",") if t.strip()}
        self.mailgun_replays = MailgunReplayGuard()

    async def _body(self, request: Request) -> bytes:
        size = request.headers.get("content-length", "")
        if size.isdigit() and int(size) > _MAX_BODY:
            raise _Refused(413)
        # Read in chunks and stop at the limit: a chunked upload has no Content-Length,
        # and request.body() would hold all of it in memory before it could be measured.
        chunks: list[bytes] = []
        total = 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > _MAX_BODY:
                raise _Refused(413)
            chunks.append(chunk)
        return b"".join(chunks)

    @staticmethod
    def _json(body: bytes) -> Any:
        try:
            return json.loads(body)
        except (UnicodeDecodeError, ValueError):
            raise _Refused(400) from None

    def _record(self, reports: list[BounceReport]) -> dict[str, int]:
        counts = {"events": len(reports), "recorded": 0, "duplicate": 0, "unmatched": 0}
        now = self.clock()
        for report in reports:
            action = record_bounce(self.engine, report, now=now, policy=self.policy).action
            key = action if action in ("duplicate", "unmatched") else "recorded"
            counts[key] += 1
        return counts

    async def _handle(self, request: Request, provider: str) -> Response:
        try:
            reports = await getattr(self, f"_{provider}")(request)
        except _Refused as refused:
            if refused.status in (401, 403):
                log.warning("%s webhook refused: bad or missing signature", provider)
            return JSONResponse({"error": refused.status}, refused.status, refused.headers)
        counts = await run_in_threadpool(self._record, reports)
        if counts["recorded"]:
            log.info("%s webhook: %s", provider, counts)
        return JSONResponse(counts)

    async def _ses(self, request: Request) -> list[BounceReport]:
        body = await self._body(request)
        envelope = self._json(body)
        if not isinstance(envelope, dict):
            raise _Refused(400)
        if envelope.get("TopicArn") not in self.topics:
            raise _Refused(403)  # signed by SNS perhaps, but for someone else's topic
        valid = await run_in_threadpool(self.certificates.verify, envelope)
        if not valid:
            raise _Refused(403)
        if envelope.get("Type") == "SubscriptionConfirmation":
            # Not visited from here: confirming is the operator's choice (see docs/bounces.md).
            log.warning(
                "SNS subscription for %s awaits confirmation: visit its SubscribeURL %s",
                envelope.get("TopicArn"),
                envelope.get("SubscribeURL"),
            )
            return []
        if envelope.get("Type") != "Notification":
            return []
        return list(_ses_reports(envelope, body.decode("utf-8", "replace")))

    async def _postmark(self, request: Request) -> list[BounceReport]:
        settings = self.settings
        if not basic_auth_ok(
            request.headers.get("authorization"),
            settings.postmark_webhook_user,
            settings.postmark_webhook_password,
        ):
            raise _Refused(401, {"WWW-Authenticate": 'Basic realm="dripline webhooks"'})
        body = await self._body(request)
        event = self._json(body)
        if not isinstance(event, dict):
            raise _Refused(400)
        return list(_postmark_reports(event, body.decode("utf-8", "replace")))

    async def _sendgrid(self, request: Request) -> list[BounceReport]:
        body = await self._body(request)
        signed = sendgrid_signature_ok(
            self.settings.sendgrid_public_key,
            request.headers.get("x-twilio-email-event-webhook-signature"),
            request.headers.get("x-twilio-email-event-webhook-timestamp"),
            body,
        )
        if not signed:
            raise _Refused(403)
        return list(_sendgrid_reports(self._json(body), body.decode("utf-8", "replace")))

    async def _mailgun(self, request: Request) -> list[BounceReport]:
        body = await self._body(request)
        payload = self._json(body)
        if not isinstance(payload, dict):
            raise _Refused(400)
        signature = payload.get("signature")
        if not mailgun_signature_ok(self.settings.mailgun_signing_key, signature):
            raise _Refused(403)
        event = payload.get("event-data")
        signed_event = json.dumps(event, sort_keys=True).encode()
        if not self.mailgun_replays.accept(signature, signed_event, self.clock().timestamp()):
            log.warning("mailgun webhook refused: stale timestamp or a reused token")
            raise _Refused(403)
        if not isinstance(event, dict):
            return []
        return list(_mailgun_reports(event, body.decode("utf-8", "replace")))


def webhook_routes(
    settings: Settings, engine: Engine, clock: Callable[[], datetime]
) -> list[Route]:
    """A route for each provider whose key or password is configured (the others are 404)."""
    hooks = _Webhooks(settings, engine, clock)
    configured = {
        "ses": bool(settings.ses_topic_arn),
        "postmark": bool(settings.postmark_webhook_user and settings.postmark_webhook_password),
        "sendgrid": bool(settings.sendgrid_public_key),
        "mailgun": bool(settings.mailgun_signing_key),
    }

    def endpoint(provider: str) -> Callable[[Request], Any]:
        async def handle(request: Request) -> Response:
            return await hooks._handle(request, provider)

        return handle

    return [
        Route(f"/webhooks/{name}", endpoint(name), methods=["POST"])
        for name, on in configured.items()
        if on
    ]
