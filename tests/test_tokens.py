"""Token wire format held by golden tokens, and each limit of tokens.py tested on both sides.

The literal tokens below were minted on 2026-11-29 with the secret ``GOLDEN_SECRET``.
They are in emails already sent: every later version of dripline must verify them
byte for byte, and mint the very same bytes for the same payload. If one of these
tests fails, the change breaks every unsubscribe and confirmation link in people's
mailboxes (docs/contracts.md). Do not regenerate them: add a new token version instead.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from dripline.errors import ConfigError
from dripline.tokens import (
    CLICK,
    CONFIRM,
    OPEN,
    UNSUBSCRIBE,
    TokenPayload,
    TokenSigner,
    VerifiedToken,
    click_url,
    open_url,
    sign_token,
    tracking_tokens,
    unsubscribe_url,
    verify_token,
)

GOLDEN_SECRET = "golden-secret-2026-11-29"
ISSUED = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)  # 1795953600
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # links that never expire are issued at 0
SLUG = "ketamine-therapy"
SLUG_TAG = "02e2d6514edb"  # HMAC tag of SLUG under GOLDEN_SECRET

# (token, purpose, key, issued, campaign slug, campaign tag as hex)
GOLDEN = [
    (
        "uqKztmOt2OdYsd28aN7d4AEBawwTwALi1lFO21pxMy1yYW5kb20tcHVibGljLWtleQ",
        UNSUBSCRIBE, "Zq3-random-public-key", ISSUED, SLUG, SLUG_TAG,
    ),
    (
        "KnpXlKXV458xj55qPoa_2AECawwTwALi1lFO23NpZ24tdXAtcmVxdWVzdC03ZjNh",
        CONFIRM, "sign-up-request-7f3a", ISSUED, SLUG, SLUG_TAG,
    ),
    (  # the longest key, issued at 0 (a List-Unsubscribe link that never expires)
        "aYikFzRKF3gRRKQfchH2dAEBAAAAAALi1lFO22tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s",
        UNSUBSCRIBE, "k" * 64, EPOCH, SLUG, SLUG_TAG,
    ),
    (  # a key in UTF-8 beyond ASCII, another campaign
        "X0yiD_xLC445RY-Dxfc1SQEBawwTwJTSJKBx9WNsw6ktw7xuw69jb2Rl",
        UNSUBSCRIBE, "clé-ünïcode", ISSUED, "weekly-digest", "94d224a071f5",
    ),
    (  # the shortest key (one byte): the smallest genuine token
        "gvEORNIVusyMM1336nXkigEBawwTwOpVwnQNdng",
        UNSUBSCRIBE, "x", ISSUED, "a", "ea55c2740d76",
    ),
    (  # ends in "X", a letter the "=" padding strip must leave alone
        "rNY6cKvPQgA6gZ5yJnaskgECawwTwALi1lFO23JlcXVlc3QtN2ZX",
        CONFIRM, "request-7fW", ISSUED, SLUG, SLUG_TAG,
    ),
]  # fmt: skip

# Correctly signed under GOLDEN_SECRET, yet not a token dripline ever minted: each must fail.
FORGED = {
    "empty key": "ZVm_FaoD5i8bSJ7XIpkCRgEBawwTwALi1lFO2w",
    "version 2": "J3xEHsZMWh0Nuc5JpMHV8wIBawwTwALi1lFO22szeQ",
    "key not UTF-8": "mMs-wTHWbd8HWPLYluaLLAEBawwTwALi1lFO2__-",
    "purpose byte 3": "RzNidLw75YE67lpp0TquPQEDawwTwALi1lFO22szeQ",
}

# ASCII ids: pytest (and mutmut, which selects tests by id) cannot address escaped ones.
_IDS = [f"{g[1]}-{g[2].encode().hex()[:16]}" for g in GOLDEN]


def _raw(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


@pytest.mark.parametrize(("token", "purpose", "key", "issued", "slug", "tag"), GOLDEN, ids=_IDS)
def test_golden_tokens_still_verify_to_the_same_contents(
    token: str, purpose: str, key: str, issued: datetime, slug: str, tag: str
) -> None:
    signer = TokenSigner(GOLDEN_SECRET)
    verified = signer.verify(token, purpose=purpose)
    assert verified == VerifiedToken(purpose, key, issued, bytes.fromhex(tag))
    assert signer.names_campaign(verified, slug)
    assert signer.campaign_tag(slug).hex() == tag
    other = CONFIRM if purpose == UNSUBSCRIBE else UNSUBSCRIBE
    assert signer.verify(token, purpose=other) is None
    assert verify_token(token, GOLDEN_SECRET, purpose=purpose) == verified


@pytest.mark.parametrize(("token", "purpose", "key", "issued", "slug", "tag"), GOLDEN, ids=_IDS)
def test_signing_today_mints_the_golden_bytes(
    token: str, purpose: str, key: str, issued: datetime, slug: str, tag: str
) -> None:
    payload = TokenPayload(purpose, key, slug, int(issued.timestamp()))
    assert TokenSigner(GOLDEN_SECRET).sign(payload) == token
    assert sign_token(payload, GOLDEN_SECRET) == token


def test_wire_layout_is_signature_then_version_purpose_time_tag_key() -> None:
    """base64url(16-byte HMAC || 0x01 || purpose || uint32 BE issue time || 6-byte tag || key)."""
    raw = _raw(GOLDEN[0][0])
    assert len(raw) == 16 + 1 + 1 + 4 + 6 + len("Zq3-random-public-key")
    assert raw[16] == 1  # version
    assert raw[17] == 1  # purpose: 1 unsubscribe, 2 confirm
    assert int.from_bytes(raw[18:22], "big") == 1795953600
    assert raw[22:28].hex() == SLUG_TAG
    assert raw[28:] == b"Zq3-random-public-key"
    assert _raw(GOLDEN[1][0])[17] == 2
    assert "=" not in GOLDEN[0][0]  # padding is stripped: one spelling per token


@pytest.mark.parametrize("why", sorted(FORGED))
def test_forged_bodies_with_a_good_signature_are_refused(why: str) -> None:
    signer = TokenSigner(GOLDEN_SECRET)
    for purpose in (UNSUBSCRIBE, CONFIRM):
        assert signer.verify(FORGED[why], purpose=purpose) is None


@pytest.mark.parametrize(
    "token",
    [
        "",
        GOLDEN[0][0][:-1],  # one character short: signature no longer matches
        GOLDEN[0][0] + "A",  # length % 4 == 1 cannot be base64
        GOLDEN[0][0] + "==",  # padded: not the canonical spelling
        GOLDEN[4][0][:-1] + "h",  # same bytes, spare low bits set: not canonical
        "A" * 201,  # longer than any token
        GOLDEN[3][0].replace("_", "/"),
    ],
    ids=["empty", "short", "len%4==1", "padded", "spare-bits", "too-long", "not-urlsafe"],
)
def test_malformed_spellings_are_refused(token: str) -> None:
    assert TokenSigner(GOLDEN_SECRET).verify(token, purpose=UNSUBSCRIBE) is None


# --- the 5-minute clock-skew allowance and max_age, on each side of each limit ---

WEEK = timedelta(days=7)
SECOND = timedelta(seconds=1)
TOKEN = GOLDEN[1][0]  # a confirmation issued at ISSUED


@pytest.mark.parametrize(
    ("now", "accepted"),
    [
        (ISSUED - timedelta(minutes=5) - SECOND, False),  # server clock too far behind
        (ISSUED - timedelta(minutes=5), True),  # exactly the skew allowance
        (ISSUED - timedelta(minutes=4), True),
        (ISSUED, True),
        (ISSUED + WEEK, True),  # exactly max_age old
        (ISSUED + WEEK + SECOND, False),
    ],
)
def test_expiry_allows_five_minutes_of_clock_skew_and_max_age(
    now: datetime, accepted: bool
) -> None:
    verified = verify_token(TOKEN, GOLDEN_SECRET, purpose=CONFIRM, max_age=WEEK, now=now)
    assert (verified is not None) is accepted
    if accepted:
        assert verified is not None and verified.key == "sign-up-request-7f3a"


def test_without_max_age_a_token_never_expires() -> None:
    far = ISSUED + timedelta(days=365 * 30)
    assert verify_token(TOKEN, GOLDEN_SECRET, purpose=CONFIRM, now=far) is not None
    assert verify_token(TOKEN, GOLDEN_SECRET, purpose=CONFIRM, now=EPOCH) is not None


def test_without_now_expiry_is_judged_on_the_real_utc_clock() -> None:
    signer = TokenSigner(GOLDEN_SECRET)
    today = int(datetime.now(UTC).timestamp())
    fresh = signer.sign(TokenPayload(CONFIRM, "req", SLUG, today))
    stale = signer.sign(TokenPayload(CONFIRM, "req", SLUG, today - 8 * 86400))
    verified = signer.verify(fresh, purpose=CONFIRM, max_age=WEEK)
    assert verified is not None and verified.purpose == CONFIRM
    assert signer.verify(stale, purpose=CONFIRM, max_age=WEEK) is None
    assert signer.verify(stale, purpose=CONFIRM) is not None  # only max_age expires it


# --- what sign() refuses ---


@pytest.mark.parametrize(
    ("purpose", "key", "ok"),
    [
        (UNSUBSCRIBE, "k" * 64, True),  # exactly 64 bytes
        (UNSUBSCRIBE, "k" * 65, False),
        (UNSUBSCRIBE, "é" * 32, True),  # 64 bytes in UTF-8
        (UNSUBSCRIBE, "é" * 32 + "k", False),  # 33 characters but 65 bytes
        (UNSUBSCRIBE, "", False),  # empty key
        (CONFIRM, "", False),
        ("x", "k3y", False),  # unknown purpose
        ("", "k3y", False),
    ],
    ids=[
        "64-bytes",
        "65-bytes",
        "64-utf8",
        "65-utf8",
        "empty-u",
        "empty-c",
        "purpose-x",
        "no-purpose",
    ],
)
def test_sign_refuses_empty_long_keys_and_unknown_purposes(
    purpose: str, key: str, ok: bool
) -> None:
    signer = TokenSigner(GOLDEN_SECRET)
    payload = TokenPayload(purpose, key, SLUG, int(ISSUED.timestamp()))
    if ok:
        token = signer.sign(payload)
        verified = signer.verify(token, purpose=purpose)
        assert verified is not None and verified.key == key
    else:
        with pytest.raises(ValueError, match=r"^cannot sign a token for TokenPayload\("):
            signer.sign(payload)


def test_an_empty_secret_is_a_config_error_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"^DRIPLINE_SECRET_KEY is not set; links cannot be"):
        TokenSigner("")
    with pytest.raises(ConfigError):
        verify_token(GOLDEN[0][0], "", purpose=UNSUBSCRIBE)


def test_unsubscribe_url_joins_base_and_token() -> None:
    token = GOLDEN[0][0]
    expected = f"https://mail.example.com/u/{token}"
    assert unsubscribe_url("https://mail.example.com", token) == expected
    assert unsubscribe_url("https://mail.example.com/", token) == expected
    assert unsubscribe_url("https://mail.example.com//", token) == expected
    assert unsubscribe_url("/relative/", token) == f"/relative/u/{token}"
    # Only slashes are trimmed, whatever the base ends with.
    assert unsubscribe_url("https://x.example/MAX/", token) == f"https://x.example/MAX/u/{token}"


# Click and open tokens, minted on 2026-11-29 under GOLDEN_SECRET: (token, purpose, delivery,
# link position). They are in emails already sent: they must read back the same forever.
GOLDEN_TRACKING = [
    ("xFVWZKEFKPeTLMLz5K0ZHAEDAAAAAALi1lFO2zEyMzQ1Ni4y", CLICK, 123456, 2),
    ("AKyFycv7w6N_wLv7J-iMPAEEAAAAAALi1lFO2zEyMzQ1Ng", OPEN, 123456, None),
]


@pytest.mark.parametrize(("token", "purpose", "delivery", "position"), GOLDEN_TRACKING)
def test_golden_click_and_open_tokens(
    token: str, purpose: str, delivery: int, position: int | None
) -> None:
    tokens = tracking_tokens(GOLDEN_SECRET)
    link = tokens.read(token, purpose)
    assert link is not None
    assert (link.delivery_id, link.position, link.campaign_tag.hex()) == (
        delivery,
        position,
        SLUG_TAG,
    )
    minted = tokens.click(delivery, position, SLUG) if position is not None else None
    assert (minted or tokens.open(delivery, SLUG)) == token
    # A click token is no open token (and the reverse), nor an unsubscribe token.
    other = OPEN if purpose == CLICK else CLICK
    assert tokens.read(token, other) is None
    assert TokenSigner(GOLDEN_SECRET).verify(token, purpose=UNSUBSCRIBE) is None
    assert tracking_tokens("another-secret-0123456789").read(token, purpose) is None
    assert click_url("https://news.example.com/", token) == f"https://news.example.com/c/{token}"
    assert open_url("https://news.example.com", token) == f"https://news.example.com/o/{token}"


def test_click_and_open_urls_trim_only_slashes_from_the_base() -> None:
    # The same rule as unsubscribe links: one slash between base and path, and only
    # slashes trimmed (a base ending in a capital X keeps it).
    token = GOLDEN_TRACKING[0][0]
    for base in ("https://news.example.com", "https://news.example.com/"):
        assert click_url(base, token) == f"https://news.example.com/c/{token}"
        assert open_url(base, token) == f"https://news.example.com/o/{token}"
    assert click_url("https://x.example/MAX/", token) == f"https://x.example/MAX/c/{token}"
    assert open_url("https://x.example/MAX//", token) == f"https://x.example/MAX/o/{token}"
    assert open_url("/relative/", token) == f"/relative/o/{token}"


def test_a_genuine_signature_over_a_key_that_names_no_link_is_no_link() -> None:
    # Signed with the right secret and purpose, but the key is not `delivery.position`
    # (click) or `delivery` (open): no link, and no error either (serve answers 404).
    signer = TokenSigner(GOLDEN_SECRET)
    tokens = tracking_tokens(GOLDEN_SECRET)
    for purpose, key in (
        (CLICK, "not-a-delivery"),
        (CLICK, "123456"),  # a click names a link position too
        (CLICK, "0123.2"),  # digits as minted: no leading zeros
        (OPEN, "123456.2"),  # an open names no link position
        (OPEN, "x1"),
    ):
        token = signer.sign(TokenPayload(purpose, key, SLUG, 0))
        assert signer.verify(token, purpose=purpose) is not None  # the signature is fine
        assert tokens.read(token, purpose) is None, (purpose, key)
    # The same construction with a well-formed key does name its link.
    good = tokens.read(signer.sign(TokenPayload(CLICK, "7.0", SLUG, 0)), CLICK)
    assert good is not None and (good.delivery_id, good.position) == (7, 0)
