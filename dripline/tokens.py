"""Signed, URL-safe tokens for unsubscribe and confirmation links.

A token names a subscriber and a campaign without showing either: the payload
is the subscriber's key and the campaign slug, signed with HMAC-SHA256 under
``DRIPLINE_SECRET_KEY`` and compared in constant time. No address or sequential
id can be read from it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass

from .errors import ConfigError

__all__ = ["TokenPayload", "sign_token", "unsubscribe_url", "verify_token"]

_SIGNATURE_BYTES = 16


@dataclass(frozen=True)
class TokenPayload:
    purpose: str  # "u" unsubscribe, "c" confirm
    subscriber: str  # an opaque subscriber key (not the address)
    campaign: str
    issued: int  # days since the epoch, for expiry checks


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _key(secret_key: str) -> bytes:
    if not secret_key:
        raise ConfigError("DRIPLINE_SECRET_KEY is not set; links cannot be signed")
    return hashlib.sha256(b"dripline-token:" + secret_key.encode("utf-8")).digest()


def sign_token(payload: TokenPayload, secret_key: str) -> str:
    body = json.dumps(
        [payload.purpose, payload.subscriber, payload.campaign, payload.issued],
        separators=(",", ":"),
    ).encode("utf-8")
    signature = hmac.new(_key(secret_key), body, hashlib.sha256).digest()[:_SIGNATURE_BYTES]
    return _b64(signature + body)


def verify_token(token: str, secret_key: str, *, purpose: str) -> TokenPayload | None:
    """The payload of a genuine token for ``purpose``, else ``None`` (whatever went wrong)."""
    try:
        raw = _unb64(token)
        signature, body = raw[:_SIGNATURE_BYTES], raw[_SIGNATURE_BYTES:]
        expected = hmac.new(_key(secret_key), body, hashlib.sha256).digest()[:_SIGNATURE_BYTES]
        if not hmac.compare_digest(signature, expected):
            return None
        kind, subscriber, campaign, issued = json.loads(body)
    except (ValueError, TypeError):
        return None
    if kind != purpose or not isinstance(subscriber, str) or not isinstance(campaign, str):
        return None
    return TokenPayload(kind, subscriber, campaign, int(issued))


def unsubscribe_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/u/{token}"
