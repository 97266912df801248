"""VERP return-path tokens: short, case-insensitive, unforgeable, revealing no id."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dripline.tokens import TokenSigner, split_verp_address, verp_address

SECRET = "golden-secret-for-return-paths"


def test_golden_token_format_is_stable() -> None:
    # Mail in flight carries these tokens for days: a change of format would leave every
    # bounce of the old messages unmatched, so the exact spelling is pinned here.
    signer = TokenSigner(SECRET)
    assert signer.return_path_token(1) == "ae4df2u34mgfeyt6gatyrhyzkhrbixa"
    assert signer.return_path_token(123456789) == "aets6evyvii3ry3quhjfdqt644vjd4y"
    assert verp_address("bounces@example.com", signer.return_path_token(1)) == (
        "bounces+ae4df2u34mgfeyt6gatyrhyzkhrbixa@example.com"
    )


def by_the_docstring(secret: str, delivery_id: int) -> str:
    """The construction as dripline.tokens documents it, written out independently."""
    root = hashlib.sha256(b"dripline-token:" + secret.encode()).digest()
    k1 = hmac.new(root, b"return-path-iv", hashlib.sha256).digest()
    k2 = hmac.new(root, b"return-path-pad", hashlib.sha256).digest()
    plain = delivery_id.to_bytes(8, "big")
    iv = hmac.new(k1, plain, hashlib.sha256).digest()[:10]
    pad = hmac.new(k2, iv, hashlib.sha256).digest()[:8]
    cipher = bytes(a ^ b for a, b in zip(plain, pad, strict=True))
    return base64.b32encode(b"\x01" + iv + cipher).decode().rstrip("=").lower()


@pytest.mark.parametrize("delivery_id", [0, 1, 123456789, 2**64 - 1])
def test_token_follows_the_documented_construction(delivery_id: int) -> None:
    token = TokenSigner(SECRET).return_path_token(delivery_id)
    assert token == by_the_docstring(SECRET, delivery_id)


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_round_trip_in_any_case(delivery_id: int) -> None:
    signer = TokenSigner(SECRET)
    token = signer.return_path_token(delivery_id)
    assert len(token) == 31 and token == token.lower()
    assert str(delivery_id) not in token or delivery_id < 10  # no readable id
    assert signer.read_return_path_token(token) == delivery_id
    assert signer.read_return_path_token(token.upper()) == delivery_id


def test_altered_truncated_or_foreign_tokens_name_nothing() -> None:
    signer = TokenSigner(SECRET)
    token = signer.return_path_token(42)
    for i in range(len(token)):
        for char in "a7q":
            changed = token[:i] + char + token[i + 1 :]
            if changed != token:
                assert signer.read_return_path_token(changed) is None, changed
    assert signer.read_return_path_token(token[:-1]) is None
    assert signer.read_return_path_token(token + "a") is None
    assert signer.read_return_path_token("") is None
    assert TokenSigner("another-secret-entirely").read_return_path_token(token) is None
    # Consecutive ids give unrelated tokens.
    assert sum(a == b for a, b in zip(token, signer.return_path_token(43), strict=True)) < 10


def test_verp_address_local_part_limits() -> None:
    token = TokenSigner(SECRET).return_path_token(7)
    address = verp_address("bounces@example.com", token)
    assert len(address.split("@")[0]) <= 64
    assert split_verp_address(address.upper(), "bounces@example.com") == token.upper()
    assert split_verp_address(f"other+{token}@example.com", "bounces@example.com") is None
    assert split_verp_address(f"bounces+{token}@elsewhere.com", "bounces@example.com") is None
    with pytest.raises(ValueError, match="64"):
        verp_address("a-very-long-return-path-local-part-indeed@example.com", token)
    with pytest.raises(ValueError):
        verp_address("not-an-address", token)


# --- each limit of verp_address and split_verp_address, on both sides ---

TOKEN = "ae4df2u34mgfeyt6gatyrhyzkhrbixa"  # 31 characters


def test_the_local_part_may_be_exactly_64_octets_not_65() -> None:
    local = "b" * (64 - 1 - len(TOKEN))  # local + "+" + token == 64
    assert verp_address(f"{local}@example.com", TOKEN) == f"{local}+{TOKEN}@example.com"
    with pytest.raises(ValueError, match=r"local part .* is over 64 octets$"):
        verp_address(f"{local}b@example.com", TOKEN)


@pytest.mark.parametrize(
    "return_path", ["bounces", "@example.com", "bounces@", "bounces+x@example.com", ""]
)
def test_a_return_path_that_is_no_plain_address_is_refused(return_path: str) -> None:
    with pytest.raises(ValueError, match=r"must be local@domain without '\+'$"):
        verp_address(return_path, TOKEN)


def test_split_reads_the_token_back_from_the_forms_bounces_arrive_in() -> None:
    path = "bounces@example.com"
    assert split_verp_address(f"bounces+{TOKEN}@example.com", path) == TOKEN
    assert split_verp_address(f"<bounces+{TOKEN}@Example.COM>", path) == TOKEN
    assert split_verp_address(f" BOUNCES+{TOKEN}@example.com ", path) == TOKEN
    assert split_verp_address(f"bounces+{TOKEN}@example.org", path) is None
    assert split_verp_address(f"other+{TOKEN}@example.com", path) is None
    assert split_verp_address("bounces@example.com", path) is None


def test_verp_address_total_length_and_plain_syntax() -> None:
    token = TokenSigner(SECRET).return_path_token(7)
    long_domain = ".".join(["a" * 63] * 3 + ["c" * 40]) + ".example.net"  # 244 octets, valid
    with pytest.raises(ValueError, match="254"):
        verp_address(f"bounces@{long_domain}", token)
    fits = ".".join(["a" * 63] * 3) + ".example.net"
    assert len(verp_address(f"bounces@{fits}", token)) <= 254
    for bad in (
        "bounces@exa mple.com",
        "bounces@example.com>",
        "<bounces@example.com",
        "b\x00@x.com",
    ):
        with pytest.raises(ValueError, match="plain"):
            verp_address(bad, token)


def _domain_of_length(octets: int) -> str:
    """A valid domain name (labels of at most 63) of exactly ``octets`` octets."""
    labels = ["a" * 63] * 3
    rest = octets - len(".".join(labels)) - len(".test") - 1
    return ".".join([*labels, "d" * rest]) + ".test"


def test_the_verp_address_may_be_exactly_254_octets_not_255() -> None:
    local = "bounces"
    fits = _domain_of_length(254 - len(f"{local}+{TOKEN}@"))
    address = verp_address(f"{local}@{fits}", TOKEN)
    assert len(address.encode()) == 254 and address == f"{local}+{TOKEN}@{fits}"
    over = _domain_of_length(255 - len(f"{local}+{TOKEN}@"))
    message = r"the VERP address is 255 octets, over RFC 5321's 254; use a shorter domain$"
    with pytest.raises(ValueError, match=message):
        verp_address(f"{local}@{over}", TOKEN)


def test_capitals_and_dots_in_a_return_path_are_plain() -> None:
    # Only spaces, controls and the specials <>()[]\,;:"@ are refused: a capital X is not.
    assert verp_address("Bounces.X@Mail.Example.BOX", TOKEN) == (
        f"Bounces.X+{TOKEN}@Mail.Example.BOX"
    )


def test_split_keeps_a_domain_that_ends_in_x_when_the_bounce_comes_back_in_capitals() -> None:
    # Some relays hand back the recipient upper-cased; only the angle brackets and the
    # spaces around it are removed, never letters.
    path = "bounces@mail.example.box"
    assert split_verp_address(f"<BOUNCES+{TOKEN.upper()}@MAIL.EXAMPLE.BOX>", path) == (
        TOKEN.upper()
    )
    assert (
        split_verp_address(f"Xbounces+{TOKEN}@mail.example.box", "Xbounces@mail.example.box")
        == TOKEN
    )


@pytest.mark.parametrize("return_path", ["@bounces@example.com", "bounces@@example.com"])
def test_a_return_path_with_a_second_at_sign_is_said_to_be_no_plain_address(
    return_path: str,
) -> None:
    with pytest.raises(ValueError, match=r"is not a plain local@domain address$"):
        verp_address(return_path, TOKEN)
