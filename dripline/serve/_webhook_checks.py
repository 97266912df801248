"""Proving a provider webhook genuine: SNS signatures (SES), HTTP basic auth (Postmark),
ECDSA signed event webhooks (SendGrid) and HMAC signatures (Mailgun).

Every check returns True or False and never raises on hostile input; comparisons of
secrets are constant-time. Sources followed: AWS "Verifying the signatures of Amazon
SNS messages"; Postmark "Webhooks: basic HTTP auth"; Twilio SendGrid "Event Webhook
security features"; Mailgun "Securing webhooks".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import re
import threading
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

__all__ = [
    "SNS_CERTIFICATE_URL",
    "MailgunReplayGuard",
    "SnsCertificates",
    "basic_auth_ok",
    "mailgun_signature_ok",
    "sendgrid_signature_ok",
    "sns_string_to_sign",
]

log = logging.getLogger("dripline.serve.webhooks")

# Only Amazon's own SNS hosts may name the signing certificate (AWS's documented pattern).
SNS_CERTIFICATE_URL = re.compile(
    r"https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[A-Za-z0-9._/-]+\.pem"
)
_NOTIFICATION_KEYS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_SUBSCRIPTION_KEYS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn")
_SUBSCRIPTION_KEYS += ("Type",)
_MAX_CERTIFICATE_BYTES = 64 * 1024


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect could lead off Amazon's hosts after the URL was checked: refuse it."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_FETCH = urllib.request.build_opener(_NoRedirects)


def sns_string_to_sign(message: Mapping[str, Any]) -> bytes | None:
    """The canonical ``Key\\nvalue\\n`` string SNS signs, or None when a field is missing."""
    kind = message.get("Type")
    keys = _NOTIFICATION_KEYS if kind == "Notification" else _SUBSCRIPTION_KEYS
    lines: list[str] = []
    for key in keys:
        value = message.get(key)
        if value is None:
            if key == "Subject":
                continue  # optional, and then left out of the string
            return None
        if not isinstance(value, str):
            return None
        lines += [key, value]
    return ("\n".join(lines) + "\n").encode("utf-8")


class SnsCertificates:
    """SNS signing certificates by URL: fetched once each, or one local file (tests).

    With ``local_file`` set nothing is fetched, but the URL must still match
    :data:`SNS_CERTIFICATE_URL`.
    """

    def __init__(self, local_file: str = "", timeout: float = 10.0) -> None:
        self.local_file = local_file
        self.timeout = timeout
        self._cache: dict[str, x509.Certificate] = {}
        self._lock = threading.Lock()

    def _load(self, url: str) -> x509.Certificate | None:
        if self.local_file:
            data = Path(self.local_file).read_bytes()
        else:
            with _FETCH.open(url, timeout=self.timeout) as response:
                data = response.read(_MAX_CERTIFICATE_BYTES + 1)
            if len(data) > _MAX_CERTIFICATE_BYTES:
                return None
        return x509.load_pem_x509_certificate(data)

    def get(self, url: str) -> x509.Certificate | None:
        if not SNS_CERTIFICATE_URL.fullmatch(url):
            return None
        with self._lock:
            if url not in self._cache:
                try:
                    certificate = self._load(url)
                except (OSError, ValueError) as err:
                    log.warning("SNS signing certificate not loaded: %s", err)
                    return None
                if certificate is None:
                    return None
                self._cache[url] = certificate
            return self._cache[url]

    def verify(self, message: Mapping[str, Any]) -> bool:
        """True when ``message`` (a parsed SNS POST body) carries a valid SNS signature."""
        data = sns_string_to_sign(message)
        url, signature, version = (
            message.get("SigningCertURL"),
            message.get("Signature"),
            message.get("SignatureVersion"),
        )
        if data is None or not isinstance(url, str) or not isinstance(signature, str):
            return False
        algorithm: hashes.HashAlgorithm
        if version == "1":
            algorithm = hashes.SHA1()  # SNS SignatureVersion 1 is SHA1withRSA
        elif version == "2":
            algorithm = hashes.SHA256()
        else:
            return False
        certificate = self.get(url)
        if certificate is None:
            return False
        key = certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            return False
        try:
            key.verify(
                base64.b64decode(signature, validate=True), data, padding.PKCS1v15(), algorithm
            )
        except (InvalidSignature, binascii.Error, ValueError):
            return False
        return True


def basic_auth_ok(header: str | None, user: str, password: str) -> bool:
    """RFC 7617 ``Authorization: Basic ...`` against the configured user and password."""
    if not header or not user or not password:
        return False
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        given = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    expected = f"{user}:{password}".encode()
    return hmac.compare_digest(given, expected)


def _sendgrid_key(configured: str) -> ec.EllipticCurvePublicKey | None:
    text = configured.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode(text, validate=True))
    except (ValueError, binascii.Error, TypeError):
        return None
    return key if isinstance(key, ec.EllipticCurvePublicKey) else None


def sendgrid_signature_ok(
    public_key: str, signature: str | None, timestamp: str | None, body: bytes
) -> bool:
    """ECDSA (P-256, SHA-256) over ``timestamp + body``, as SendGrid's Event Webhook signs."""
    key = _sendgrid_key(public_key)
    if key is None or not signature or not timestamp:
        return False
    try:
        key.verify(
            base64.b64decode(signature, validate=True),
            timestamp.encode() + body,
            ec.ECDSA(hashes.SHA256()),
        )
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def mailgun_signature_ok(signing_key: str, signature: Mapping[str, Any] | None) -> bool:
    """HMAC-SHA256(signing key, timestamp + token), hex, as Mailgun signs every webhook."""
    if not signing_key or not isinstance(signature, Mapping):
        return False
    timestamp, token, given = (signature.get(k) for k in ("timestamp", "token", "signature"))
    if not all(isinstance(v, str) and v for v in (timestamp, token, given)):
        return False
    expected = hmac.new(
        signing_key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256
    ).hexdigest()
    # Bytes, not str: compare_digest raises TypeError for a str holding non-ASCII.
    return hmac.compare_digest(expected.encode(), str(given).encode("utf-8", "replace"))


class MailgunReplayGuard:
    """Mailgun signs ``timestamp + token`` but not the event itself, so a signature seen
    once (in a proxy log, say) could carry any event. Mailgun's "Securing webhooks" asks
    receivers to refuse stale timestamps and to cache tokens: here a timestamp more than
    ``window`` seconds from the clock is refused, and a token is bound to the SHA-256 of
    the first event it signed within the window; the same token with another event is
    refused, while an identical retry passes (recording it again changes nothing).
    """

    def __init__(self, window: float = 15 * 60) -> None:
        self.window = window
        self._seen: dict[str, tuple[str, float]] = {}  # token -> (event digest, timestamp)
        self._lock = threading.Lock()

    def accept(self, signature: Mapping[str, Any], event: bytes, now: float) -> bool:
        """True when the (already verified) ``signature`` is fresh and not reused;
        ``now`` is POSIX seconds."""
        try:
            stamp = float(str(signature.get("timestamp")))
        except ValueError:
            return False
        if not abs(now - stamp) <= self.window:  # also refuses NaN
            return False
        token = str(signature.get("token"))
        digest = hashlib.sha256(event).hexdigest()
        with self._lock:
            for old in [t for t, (_, at) in self._seen.items() if now - at > self.window]:
                del self._seen[old]
            first = self._seen.setdefault(token, (digest, stamp))
        return hmac.compare_digest(first[0], digest)
