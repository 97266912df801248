"""Signed, URL-safe tokens for unsubscribe and confirmation links.

A token is ``base64url(signature || body)`` where the body is a version byte, a
purpose byte, the issue time, a keyed tag of the campaign and an opaque key (the
subscriber's random public key, or a sign-up request's random key). Nothing in it
can be read back to an address, a sequential id or even the campaign: the key is
random and the campaign appears only as a 6-byte HMAC of its slug, matched on the
server against the campaigns that key is enrolled in. The signature is
HMAC-SHA256 under ``DRIPLINE_SECRET_KEY`` (truncated to 128 bits) and compared in
constant time.

Decoding is strict: only the canonical base64url spelling of a body is accepted,
since Python's decoder otherwise skips stray characters and ignores the spare
low bits of the last one, which would let an altered token through.

Click and open tokens (``BASE/c/TOKEN``, ``BASE/o/TOKEN``) use the same format with the
key ``DELIVERY.POSITION`` (or ``DELIVERY``): they name a delivery and the position of a
link in its step, never a URL, so ``dripline serve`` redirects only to what it looks up
in its own database (no open redirect), and only when the token's campaign tag is the
delivery's campaign.

Return-path (VERP) tokens name one delivery in an envelope sender's local part,
``bounces+TOKEN@domain``. They are shorter and case-insensitive (lower-case
base32: some relays fold local parts), and the delivery id is encrypted, not
merely signed, with a synthetic-IV construction (RFC 5297's idea, built from
HMAC-SHA256): ``iv = HMAC(k1, id)[:10]``, ``ct = id XOR HMAC(k2, iv)[:8]``, token
``base32(version || iv || ct)``, 31 characters. Decrypting and recomputing ``iv``
authenticates it, so a changed character never names another delivery.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .errors import ConfigError

__all__ = [
    "CLICK",
    "CONFIRM",
    "OPEN",
    "UNSUBSCRIBE",
    "TokenPayload",
    "TokenSigner",
    "TrackedLink",
    "VerifiedToken",
    "click_url",
    "open_url",
    "sign_token",
    "split_verp_address",
    "tracking_tokens",
    "unsubscribe_url",
    "verify_token",
    "verp_address",
]

UNSUBSCRIBE = "u"
CONFIRM = "c"
CLICK = "k"
OPEN = "o"
_PURPOSES = {UNSUBSCRIBE: 1, CONFIRM: 2, CLICK: 3, OPEN: 4}
_VERSION = 1
_SIGNATURE_BYTES = 16
_TAG_BYTES = 6
_HEADER = struct.Struct(">BBI")  # version, purpose, issue time (seconds since the epoch)
_MAX_KEY_BYTES = 64
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,200}")
_VERP_VERSION = 1
_VERP_IV_BYTES = 10
_VERP_ID = struct.Struct(">Q")
_VERP_BYTES = 1 + _VERP_IV_BYTES + _VERP_ID.size
_VERP_SHAPE = re.compile(r"[a-z2-7]{31}")  # base32 of 19 bytes, lower case, no padding


@dataclass(frozen=True)
class TokenPayload:
    """What a token is signed for (the campaign is named by slug here, by tag in the token)."""

    purpose: str  # UNSUBSCRIBE or CONFIRM
    subscriber: str  # an opaque key (never the address)
    campaign: str
    issued: int  # seconds since the epoch (0 for links that never expire)


@dataclass(frozen=True)
class VerifiedToken:
    """A genuine token: its key, when it was issued, and its campaign's tag."""

    purpose: str
    key: str
    issued: datetime  # aware UTC
    campaign_tag: bytes


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _strict_unb64(text: str) -> bytes | None:
    if not _TOKEN_SHAPE.fullmatch(text) or len(text) % 4 == 1:
        return None
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    return raw if _b64(raw) == text else None  # one spelling per token


class TokenSigner:
    """Signs and checks tokens with keys derived from the secret (one secret, separate uses)."""

    def __init__(self, secret_key: str) -> None:
        if not secret_key:
            raise ConfigError("DRIPLINE_SECRET_KEY is not set; links cannot be signed")
        root = hashlib.sha256(b"dripline-token:" + secret_key.encode("utf-8")).digest()
        self._mac_key = hmac.new(root, b"signature", hashlib.sha256).digest()
        self._tag_key = hmac.new(root, b"campaign-tag", hashlib.sha256).digest()
        self._verp_iv_key = hmac.new(root, b"return-path-iv", hashlib.sha256).digest()
        self._verp_pad_key = hmac.new(root, b"return-path-pad", hashlib.sha256).digest()
        self._tags: dict[str, bytes] = {}

    def campaign_tag(self, slug: str) -> bytes:
        tag = self._tags.get(slug)
        if tag is None:  # one per campaign, asked for every email sent
            tag = hmac.digest(self._tag_key, slug.encode("utf-8"), "sha256")[:_TAG_BYTES]
            if len(self._tags) < 1024:
                self._tags[slug] = tag
        return tag

    def names_campaign(self, token: VerifiedToken, slug: str) -> bool:
        return hmac.compare_digest(token.campaign_tag, self.campaign_tag(slug))

    def _signature(self, body: bytes) -> bytes:
        # hmac.digest: the same HMAC-SHA256 in one C call (no HMAC object per token).
        return hmac.digest(self._mac_key, body, "sha256")[:_SIGNATURE_BYTES]

    def sign(self, payload: TokenPayload) -> str:
        key = payload.subscriber.encode("utf-8")
        if payload.purpose not in _PURPOSES or not key or len(key) > _MAX_KEY_BYTES:
            raise ValueError(f"cannot sign a token for {payload!r}")
        header = _HEADER.pack(_VERSION, _PURPOSES[payload.purpose], payload.issued)
        body = header + self.campaign_tag(payload.campaign) + key
        return _b64(self._signature(body) + body)

    def verify(
        self,
        token: str,
        *,
        purpose: str,
        max_age: timedelta | None = None,
        now: datetime | None = None,
    ) -> VerifiedToken | None:
        """The token's contents if it is genuine, for ``purpose`` and young enough; else None.

        Every failure looks the same to the caller, so a page can answer them alike.
        """
        raw = _strict_unb64(token)
        minimum = _SIGNATURE_BYTES + _HEADER.size + _TAG_BYTES + 1
        if raw is None or len(raw) < minimum:
            return None
        signature, body = raw[:_SIGNATURE_BYTES], raw[_SIGNATURE_BYTES:]
        if not hmac.compare_digest(signature, self._signature(body)):
            return None
        version, kind, issued_at = _HEADER.unpack_from(body)
        if version != _VERSION or kind != _PURPOSES.get(purpose):
            return None
        issued = datetime.fromtimestamp(issued_at, UTC)
        if max_age is not None:
            current = now or datetime.now(UTC)
            if not issued - timedelta(minutes=5) <= current <= issued + max_age:
                return None
        tag = body[_HEADER.size : _HEADER.size + _TAG_BYTES]
        try:
            key = body[_HEADER.size + _TAG_BYTES :].decode("utf-8")
        except UnicodeDecodeError:
            return None
        return VerifiedToken(purpose, key, issued, tag)

    def _verp_pad(self, iv: bytes) -> int:
        pad = hmac.new(self._verp_pad_key, iv, hashlib.sha256).digest()[: _VERP_ID.size]
        return int.from_bytes(pad, "big")

    def return_path_token(self, delivery_id: int) -> str:
        """The VERP token for ``delivery_id``: 31 lower-case base32 characters.

        Deterministic (a retried delivery keeps its token); reveals nothing of the id.
        Raises ValueError for an id outside 0..2**64-1.
        """
        plain = _VERP_ID.pack(delivery_id)
        iv = hmac.new(self._verp_iv_key, plain, hashlib.sha256).digest()[:_VERP_IV_BYTES]
        cipher = _VERP_ID.pack(delivery_id ^ self._verp_pad(iv))
        raw = bytes([_VERP_VERSION]) + iv + cipher
        return base64.b32encode(raw).decode("ascii").rstrip("=").lower()

    def read_return_path_token(self, token: str) -> int | None:
        """The delivery id a genuine VERP token names, else None (any case accepted)."""
        text = token.strip().lower()
        if not _VERP_SHAPE.fullmatch(text):
            return None
        try:
            raw = base64.b32decode(text.upper() + "=" * (-len(text) % 8))
        except binascii.Error:
            return None
        if len(raw) != _VERP_BYTES or raw[0] != _VERP_VERSION:
            return None
        if base64.b32encode(raw).decode("ascii").rstrip("=").lower() != text:
            return None  # spare low bits set: one spelling per token
        iv, cipher = raw[1 : 1 + _VERP_IV_BYTES], raw[1 + _VERP_IV_BYTES :]
        (masked,) = _VERP_ID.unpack(cipher)
        delivery_id = masked ^ self._verp_pad(iv)
        expected = hmac.new(self._verp_iv_key, _VERP_ID.pack(delivery_id), hashlib.sha256)
        if not hmac.compare_digest(iv, expected.digest()[:_VERP_IV_BYTES]):
            return None
        return delivery_id


def verp_address(return_path: str, token: str) -> str:
    """``local+TOKEN@domain`` for ``return_path`` ``local@domain``, within RFC 5321's limits
    (section 4.5.3.1: local part <= 64 octets, a path <= 256 octets with its angle
    brackets, so the address <= 254).

    Raises ValueError when ``return_path`` is no address or the result would be too long.
    """
    local, at, domain = return_path.rpartition("@")
    if not at or not local or not domain or "+" in local:
        raise ValueError(f"return path {return_path!r} must be local@domain without '+'")
    if any(c.isspace() or not c.isprintable() or c in '<>()[]\\,;:"@' for c in local + domain):
        raise ValueError(f"return path {return_path!r} is not a plain local@domain address")
    address = f"{local}+{token}"
    if len(address.encode()) > 64:
        raise ValueError(f"return path {return_path!r}: local part {address!r} is over 64 octets")
    full = f"{address}@{domain}"
    if len(full.encode()) > 254:
        raise ValueError(
            f"return path {return_path!r}: the VERP address is {len(full.encode())} octets, "
            "over RFC 5321's 254; use a shorter domain"
        )
    return full


def split_verp_address(address: str, return_path: str) -> str | None:
    """The TOKEN of ``local+TOKEN@domain`` when it is ``return_path``'s VERP form, else None."""
    local, _, domain = return_path.rpartition("@")
    got_local, at, got_domain = address.strip().strip("<>").rpartition("@")
    if not at or got_domain.lower() != domain.lower():
        return None
    prefix = f"{local}+".lower()
    if not got_local.lower().startswith(prefix):
        return None
    return got_local[len(prefix) :]


@dataclass(frozen=True)
class TrackedLink:
    """What a genuine click (or open) token names: a delivery and a link position."""

    delivery_id: int
    position: int | None  # None for an open token
    campaign_tag: bytes


_TRACKING_KEY = re.compile(r"(0|[1-9][0-9]{0,18})(?:\.(0|[1-9][0-9]{0,5}))?")


class _TrackingTokens:
    """Click and open tokens under one signer (never expiring: old emails keep working)."""

    def __init__(self, signer: TokenSigner) -> None:
        self.signer = signer

    def click(self, delivery_id: int, position: int, campaign: str) -> str:
        key = f"{delivery_id}.{position}"
        return self.signer.sign(TokenPayload(CLICK, key, campaign, 0))

    def open(self, delivery_id: int, campaign: str) -> str:
        return self.signer.sign(TokenPayload(OPEN, str(delivery_id), campaign, 0))

    def read(self, token: str, purpose: str) -> TrackedLink | None:
        """The delivery (and link position) a genuine token of ``purpose`` names, else None."""
        verified = self.signer.verify(token, purpose=purpose)
        if verified is None:
            return None
        match = _TRACKING_KEY.fullmatch(verified.key)
        if match is None or (match.group(2) is None) != (purpose == OPEN):
            return None
        position = None if match.group(2) is None else int(match.group(2))
        return TrackedLink(int(match.group(1)), position, verified.campaign_tag)


def tracking_tokens(secret_key: str) -> _TrackingTokens:
    """Signs and reads click/open tokens; raises ConfigError without a secret key."""
    return _TrackingTokens(TokenSigner(secret_key))


def click_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/c/{token}"


def open_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/o/{token}"


def sign_token(payload: TokenPayload, secret_key: str) -> str:
    return TokenSigner(secret_key).sign(payload)


def verify_token(
    token: str,
    secret_key: str,
    *,
    purpose: str,
    max_age: timedelta | None = None,
    now: datetime | None = None,
) -> VerifiedToken | None:
    return TokenSigner(secret_key).verify(token, purpose=purpose, max_age=max_age, now=now)


def unsubscribe_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/u/{token}"
