"""Provider webhooks in ``dripline serve``: valid, invalid and replayed events per provider.

Signatures are made here with keys the test generates (the providers' real keys cannot
sign test data): an RSA certificate standing in for SNS's (given by
DRIPLINE_SES_CERTIFICATE_FILE; the SigningCertURL must still be Amazon's), a P-256 key
for SendGrid, an HMAC key for Mailgun and a password for Postmark.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from serve_support import SLUG, Served, make_served
from sqlalchemy import Engine, select

from dripline.serve._webhook_checks import sns_string_to_sign
from dripline.store import (
    BounceEvent,
    Delivery,
    Enrollment,
    NewSubscriber,
    Subscriber,
    list_bounces,
    list_suppressions,
    normalize_email,
    read_transaction,
    subscribe,
    write_transaction,
)
from dripline.timetable import Timetable

TOPIC = "arn:aws:sns:us-east-1:123456789012:dripline-bounces"
CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc123.pem"
POSTMARK = ("postmark-hook", "pm-password-1234567")
MAILGUN_KEY = "key-mailgun-signing-0123456789"


@dataclass
class Keys:
    sns: rsa.RSAPrivateKey
    sendgrid: ec.EllipticCurvePrivateKey


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ec.generate_private_key(ec.SECP256R1()),
    )


def certificate_for(key: rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def served(tmp_path: Path, sqlite_url: str, keys: Keys) -> Iterator[Served]:
    served = make_served(tmp_path, sqlite_url, "webhooks")
    cert = tmp_path / "sns.pem"
    cert.write_bytes(certificate_for(keys.sns))
    public = keys.sendgrid.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    served.settings = replace(
        served.settings,
        ses_certificate_file=str(cert),
        ses_topic_arn=TOPIC,
        postmark_webhook_user=POSTMARK[0],
        postmark_webhook_password=POSTMARK[1],
        sendgrid_public_key=base64.b64encode(public).decode(),
        mailgun_signing_key=MAILGUN_KEY,
    )
    yield served
    served.close()


@pytest.fixture
def engine(served: Served) -> Engine:
    client = served.client()  # creates the app and its store
    assert client is not None
    engine: Engine = served.apps[0].state.service.engine
    table = Timetable.of(served.apps[0].state.service.campaigns[SLUG].campaign)
    for address in ("ada@example.org", "bo@example.org"):
        person = NewSubscriber(email=normalize_email(address), subscribed_at=served.clock.now)
        subscribe(engine, table, SLUG, person, now=served.clock.now)
    with write_transaction(engine) as conn:  # step 1 went out to both
        d, e, s = Delivery.__table__, Enrollment.__table__, Subscriber.__table__
        for address in ("ada@example.org", "bo@example.org"):
            delivery_id = conn.scalar(
                select(d.c.id)
                .join(e, e.c.id == d.c.enrollment_id)
                .join(s, s.c.id == e.c.subscriber_id)
                .where(s.c.email == address, d.c.step == 1)
            )
            conn.execute(
                d.update()
                .where(d.c.id == delivery_id)
                .values(
                    status="sent",
                    message_id=f"<step1-{address}>",
                    sent_at=served.clock.now.replace(tzinfo=None),
                )
            )
    return engine


def people(engine: Engine) -> dict[str, tuple[str, set[str]]]:
    d, e, s = Delivery.__table__, Enrollment.__table__, Subscriber.__table__
    with read_transaction(engine) as conn:
        rows = conn.execute(
            select(s.c.email, s.c.status, d.c.step, d.c.status.label("delivery"))
            .join(e, e.c.subscriber_id == s.c.id)
            .join(d, d.c.enrollment_id == e.c.id)
        ).all()
    found: dict[str, tuple[str, set[str]]] = {}
    for r in rows:
        _, later = found.setdefault(r.email, (r.status, set()))
        if r.step > 1:
            later.add(r.delivery)
    return found


def event_count(engine: Engine) -> int:
    with read_transaction(engine) as conn:
        return len(conn.execute(select(BounceEvent.__table__.c.id)).all())


# -- SES (SNS) ----------------------------------------------------------------


def sns_body(keys: Keys, message: dict, *, version: str = "2", **overrides: str) -> bytes:
    envelope = {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": TOPIC,
        "Message": json.dumps(message),
        "Timestamp": "2026-03-02T17:05:00.000Z",
        "SignatureVersion": version,
        "SigningCertURL": CERT_URL,
        **overrides,
    }
    data = sns_string_to_sign(envelope)
    assert data is not None
    algorithm = hashes.SHA256() if version == "2" else hashes.SHA1()
    envelope["Signature"] = base64.b64encode(
        keys.sns.sign(data, padding.PKCS1v15(), algorithm)
    ).decode()
    return json.dumps(envelope).encode()


def ses_bounce(address: str, bounce_type: str = "Permanent") -> dict:
    return {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": bounce_type,
            "bounceSubType": "General",
            "bouncedRecipients": [
                {"emailAddress": address, "status": "5.1.1", "diagnosticCode": "smtp; 550 5.1.1"}
            ],
        },
        "mail": {"commonHeaders": {"messageId": f"<step1-{address}>"}},
    }


@pytest.mark.parametrize("version", ["1", "2"])
def test_ses_bounce_with_a_valid_signature_bounces_and_a_replay_changes_nothing(
    served, engine, keys, version
):
    client = served.client()
    body = sns_body(keys, ses_bounce("ada@example.org"), version=version)
    response = client.post("/webhooks/ses", content=body)
    assert response.status_code == 200 and response.json()["recorded"] == 1
    status, pending = people(engine)["ada@example.org"]
    assert status == "bounced" and pending == {"cancelled"}
    assert people(engine)["bo@example.org"][0] == "active"
    (event,) = list_bounces(engine)
    assert (event.source, event.kind, event.status_code, event.matched_by) == (
        "ses",
        "hard",
        "5.1.1",
        "message-id",
    )
    replay = client.post("/webhooks/ses", content=body)
    assert replay.status_code == 200 and replay.json()["duplicate"] == 1
    assert event_count(engine) == 1


def test_ses_complaint_and_ignored_kinds(served, engine, keys):
    client = served.client()
    complaint = {
        "notificationType": "Complaint",
        "complaint": {
            "complainedRecipients": [{"emailAddress": "bo@example.org"}],
            "complaintFeedbackType": "abuse",
        },
        "mail": {"commonHeaders": {}},
    }
    assert client.post("/webhooks/ses", content=sns_body(keys, complaint)).status_code == 200
    assert people(engine)["bo@example.org"][0] == "unsubscribed"
    assert [s.email for s in list_suppressions(engine)] == ["bo@example.org"]
    delivery = {"notificationType": "Delivery", "mail": {}, "delivery": {}}
    ok = client.post("/webhooks/ses", content=sns_body(keys, delivery))
    assert ok.status_code == 200 and ok.json()["events"] == 0
    assert event_count(engine) == 1


def test_ses_refuses_bad_signatures_foreign_certificate_hosts_and_topics(served, engine, keys):
    client = served.client()
    good = json.loads(sns_body(keys, ses_bounce("ada@example.org")))
    tampered = {**good, "Message": json.dumps(ses_bounce("bo@example.org"))}
    evil_host = json.loads(
        sns_body(keys, ses_bounce("ada@example.org"), SigningCertURL="https://evil.example/c.pem")
    )
    lookalike = json.loads(
        sns_body(
            keys,
            ses_bounce("ada@example.org"),
            SigningCertURL="https://sns.us-east-1.amazonaws.com.evil.example/c.pem",
        )
    )
    other_topic = json.loads(
        sns_body(keys, ses_bounce("ada@example.org"), TopicArn="arn:aws:sns:us-east-1:9:x")
    )
    for body in (tampered, evil_host, lookalike, other_topic, {**good, "Signature": "AAAA"}):
        response = client.post("/webhooks/ses", content=json.dumps(body))
        assert response.status_code == 403, body
    assert client.post("/webhooks/ses", content=b"{not json").status_code == 400
    assert event_count(engine) == 0
    assert people(engine)["ada@example.org"][0] == "active"


# -- Postmark -----------------------------------------------------------------


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_postmark_basic_auth_bounce_complaint_replay(served, engine):
    client = served.client()
    bounce = {"RecordType": "Bounce", "ID": 42, "Type": "HardBounce", "Email": "ada@example.org"}
    assert client.post("/webhooks/postmark", json=bounce).status_code == 401
    wrong = client.post("/webhooks/postmark", json=bounce, headers=basic(POSTMARK[0], "nope"))
    assert wrong.status_code == 401 and "basic" in wrong.headers["www-authenticate"].lower()
    assert event_count(engine) == 0
    ok = client.post("/webhooks/postmark", json=bounce, headers=basic(*POSTMARK))
    assert ok.status_code == 200 and ok.json()["recorded"] == 1
    assert people(engine)["ada@example.org"][0] == "bounced"
    again = client.post("/webhooks/postmark", json=bounce, headers=basic(*POSTMARK))
    assert again.json()["duplicate"] == 1 and event_count(engine) == 1
    spam = {
        "RecordType": "SpamComplaint",
        "ID": 43,
        "Type": "SpamComplaint",
        "Email": "bo@example.org",
    }
    client.post("/webhooks/postmark", json=spam, headers=basic(*POSTMARK))
    assert people(engine)["bo@example.org"][0] == "unsubscribed"
    opened = {"RecordType": "Open", "ID": 44, "Email": "bo@example.org"}
    assert (
        client.post("/webhooks/postmark", json=opened, headers=basic(*POSTMARK)).json()["events"]
        == 0
    )


# -- SendGrid -----------------------------------------------------------------


def sendgrid_post(client, keys: Keys, events: list, *, key=None, timestamp="1772470000"):
    body = json.dumps(events).encode()
    signer = key or keys.sendgrid
    signature = base64.b64encode(
        signer.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    ).decode()
    headers = {
        "X-Twilio-Email-Event-Webhook-Signature": signature,
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        "Content-Type": "application/json",
    }
    return client.post("/webhooks/sendgrid", content=body, headers=headers)


def test_sendgrid_signed_events(served, engine, keys):
    client = served.client()
    events = [
        {"email": "ada@example.org", "event": "delivered", "sg_event_id": "e0"},
        {
            "email": "ada@example.org",
            "event": "bounce",
            "type": "bounce",
            "status": "5.1.1",
            "reason": "550 5.1.1 no such user",
            "sg_event_id": "e1",
            "smtp-id": "<step1-ada@example.org>",
        },
        {"email": "bo@example.org", "event": "spamreport", "sg_event_id": "e2"},
    ]
    stranger = ec.generate_private_key(ec.SECP256R1())
    assert sendgrid_post(client, keys, events, key=stranger).status_code == 403
    assert event_count(engine) == 0
    ok = sendgrid_post(client, keys, events)
    assert ok.status_code == 200 and ok.json() == {
        "events": 2,
        "recorded": 2,
        "duplicate": 0,
        "unmatched": 0,
    }
    assert people(engine)["ada@example.org"][0] == "bounced"
    assert people(engine)["bo@example.org"][0] == "unsubscribed"
    assert sendgrid_post(client, keys, events).json()["duplicate"] == 2
    assert event_count(engine) == 2


# -- Mailgun ------------------------------------------------------------------


def mailgun_body(event: dict, key: str = MAILGUN_KEY) -> dict:
    timestamp, token = "1772470000", uuid.uuid4().hex
    signature = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    return {
        "signature": {"timestamp": timestamp, "token": token, "signature": signature},
        "event-data": event,
    }


def test_mailgun_hmac_signed_events(served, engine):
    client = served.client()
    failed = {
        "id": "mg-1",
        "event": "failed",
        "severity": "temporary",
        "recipient": "ada@example.org",
        "delivery-status": {"code": 452, "enhanced-code": "4.2.2", "description": "full"},
        "message": {"headers": {"message-id": "step1-ada@example.org"}},
    }
    forged = mailgun_body(failed, key="some-other-key")
    assert client.post("/webhooks/mailgun", json=forged).status_code == 403
    assert client.post("/webhooks/mailgun", json={"event-data": failed}).status_code == 403
    assert event_count(engine) == 0
    body = mailgun_body(failed)
    ok = client.post("/webhooks/mailgun", json=body)
    assert ok.status_code == 200 and ok.json()["recorded"] == 1
    (event,) = list_bounces(engine)
    assert (event.kind, event.status_code, event.action, event.matched_by) == (
        "soft",
        "4.2.2",
        "counted",
        "message-id",
    )
    assert people(engine)["ada@example.org"] == ("active", {"scheduled"})
    assert client.post("/webhooks/mailgun", json=body).json()["duplicate"] == 1
    complained = {"id": "mg-2", "event": "complained", "recipient": "bo@example.org"}
    client.post("/webhooks/mailgun", json=mailgun_body(complained))
    assert people(engine)["bo@example.org"][0] == "unsubscribed"
    delivered = {"id": "mg-3", "event": "delivered", "recipient": "bo@example.org"}
    assert client.post("/webhooks/mailgun", json=mailgun_body(delivered)).json()["events"] == 0


def test_unconfigured_providers_are_off(tmp_path, sqlite_url):
    served = make_served(tmp_path, sqlite_url, "webhooks-off")
    try:
        client = served.client()
        for provider in ("ses", "postmark", "sendgrid", "mailgun"):
            assert client.post(f"/webhooks/{provider}", json={}).status_code == 404
    finally:
        served.close()


def test_ses_subscription_confirmation_is_verified_logged_and_changes_nothing(
    served, engine, keys, caplog
):
    client = served.client()
    fields = {
        "Type": "SubscriptionConfirmation",
        "Token": "abc123",
        "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&T=1",
    }
    body = json.loads(sns_body(keys, {"text": "confirm"}, **fields))
    with caplog.at_level("WARNING", logger="dripline.serve.webhooks"):
        ok = client.post("/webhooks/ses", content=json.dumps(body))
    assert ok.status_code == 200 and ok.json()["events"] == 0
    assert "ConfirmSubscription" in caplog.text and TOPIC in caplog.text
    forged = client.post("/webhooks/ses", content=json.dumps({**body, "Token": "other"}))
    assert forged.status_code == 403
    assert event_count(engine) == 0


def test_oversized_webhook_bodies_are_refused(served, engine):
    client = served.client()
    huge = b"[" + b" " * (1024 * 1024) + b"]"
    assert client.post("/webhooks/mailgun", content=huge).status_code == 413
    assert event_count(engine) == 0


def test_mailgun_refuses_stale_timestamps_and_a_signature_reused_for_another_event(served, engine):
    """Mailgun's HMAC covers timestamp + token, not the event: a signature lifted from one
    request must not carry a forged complaint, and an old one must not be replayed."""
    client = served.client()

    def signed(event: dict, timestamp: str, token: str) -> dict:
        digest = hmac.new(
            MAILGUN_KEY.encode(), f"{timestamp}{token}".encode(), hashlib.sha256
        ).hexdigest()
        return {
            "signature": {"timestamp": timestamp, "token": token, "signature": digest},
            "event-data": event,
        }

    now = str(int(served.clock.now.timestamp()))
    delivered = {"id": "mg-10", "event": "delivered", "recipient": "ada@example.org"}
    genuine = signed(delivered, now, "t" * 50)
    assert client.post("/webhooks/mailgun", json=genuine).status_code == 200
    assert client.post("/webhooks/mailgun", json=genuine).status_code == 200  # a retry
    forged = {"id": "mg-11", "event": "complained", "recipient": "ada@example.org"}
    lifted = {**genuine, "event-data": forged}
    assert client.post("/webhooks/mailgun", json=lifted).status_code == 403
    stale = str(int((served.clock.now - timedelta(hours=2)).timestamp()))
    assert client.post("/webhooks/mailgun", json=signed(forged, stale, "s" * 50)).status_code == 403
    future = str(int((served.clock.now + timedelta(hours=2)).timestamp()))
    assert (
        client.post("/webhooks/mailgun", json=signed(forged, future, "f" * 50)).status_code == 403
    )
    odd = signed(forged, now, "o" * 50)
    odd["signature"]["signature"] = "é" * 64  # non-ASCII: refused, not a 500
    assert client.post("/webhooks/mailgun", json=odd).status_code == 403
    assert event_count(engine) == 0
    assert people(engine)["ada@example.org"][0] == "active"
    assert list_suppressions(engine) == []


def test_a_chunked_body_without_a_length_is_cut_off_at_the_limit(tmp_path):
    """On a running ``dripline serve``: a chunked upload has no Content-Length; the server
    must refuse it at the limit (413) instead of holding all of it in memory first. The
    server's peak resident memory (VmHWM, Linux) shows what it held."""
    import os
    import shutil
    import socket
    import subprocess
    import sys
    import time

    import httpx

    for folder in ("campaigns", "templates"):
        shutil.copytree(Path(__file__).resolve().parent.parent / folder, tmp_path / folder)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "DRIPLINE_ROOT": str(tmp_path),
        "DRIPLINE_SECRET_KEY": "chunked-test-secret-0123456789",
        "DRIPLINE_BASE_URL": "https://mail.example.org",
        "DRIPLINE_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
        "DRIPLINE_MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_KEY,
    }
    dripline = Path(sys.executable).parent / "dripline"
    process = subprocess.Popen(
        [str(dripline), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/webhooks/mailgun"
    sent = 0

    def endless() -> Iterator[bytes]:
        nonlocal sent
        chunk = b" " * 65536
        while sent < 256 * 1024 * 1024:  # a bound so a broken server cannot hang the test
            sent += len(chunk)
            yield chunk

    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.post(url, json={}, timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.1)

        def peak_kib() -> int:
            status = Path(f"/proc/{process.pid}/status").read_text()
            return int(next(x for x in status.splitlines() if x.startswith("VmHWM:")).split()[1])

        before = peak_kib()
        try:
            answer = httpx.post(url, content=endless(), timeout=60)
            assert answer.status_code == 413
        except httpx.TransportError:
            pass  # the server answered 413 and closed while the client was still writing
        assert httpx.post(url, json={}, timeout=5).status_code == 403  # still serving
        grown = peak_kib() - before
        assert grown < 64 * 1024, f"the server's peak memory grew by {grown} KiB"
    finally:
        process.terminate()
        process.wait(timeout=10)
