"""Link tokens: what they reveal (nothing), and that no altered one is ever accepted."""

from __future__ import annotations

import asyncio
import base64
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from serve_support import BASE, SLUG, Served, list_unsubscribe_path, make_served, sign_up
from sqlalchemy import select
from starlette.applications import Starlette

from dripline.campaign import load_campaign
from dripline.serve import confirm_url_for, unsubscribe_url_for
from dripline.store import Delivery, Subscriber, read_transaction
from dripline.tokens import CONFIRM, UNSUBSCRIBE, TokenPayload, TokenSigner, verify_token

SECRET = "unit-test-secret-0123456789"
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
STRAY = ALPHABET + "=+/.~%! "


def _raw(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def test_round_trip_and_issue_time():
    signer = TokenSigner(SECRET)
    issued = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)
    token = signer.sign(TokenPayload(UNSUBSCRIBE, "k3y", SLUG, int(issued.timestamp())))
    verified = signer.verify(token, purpose=UNSUBSCRIBE)
    assert verified is not None and verified.key == "k3y" and verified.issued == issued
    assert signer.names_campaign(verified, SLUG) and not signer.names_campaign(verified, "other")
    assert signer.verify(token, purpose=CONFIRM) is None
    assert verify_token(token, SECRET, purpose=UNSUBSCRIBE) == verified
    assert verify_token(token, SECRET + "x", purpose=UNSUBSCRIBE) is None


def test_max_age_is_enforced():
    signer = TokenSigner(SECRET)
    issued = datetime(2026, 3, 2, tzinfo=UTC)
    token = signer.sign(TokenPayload(CONFIRM, "req", SLUG, int(issued.timestamp())))
    week = timedelta(days=7)
    inside = issued + week - timedelta(seconds=1)
    assert signer.verify(token, purpose=CONFIRM, max_age=week, now=inside) is not None
    after = issued + week + timedelta(seconds=1)
    assert signer.verify(token, purpose=CONFIRM, max_age=week, now=after) is None
    # A token "issued" far in the future (a clock trick) is no good either.
    assert signer.verify(token, purpose=CONFIRM, max_age=week, now=issued - week) is None


def test_nothing_about_the_person_or_campaign_can_be_read():
    settings = make_settings()
    url = unsubscribe_url_for(settings, "Zq3-random-public-key", SLUG)
    assert url.startswith(f"{BASE}/u/")
    raw = _raw(url.rsplit("/", 1)[1])
    assert SLUG.encode() not in raw and b"ketamine" not in raw
    confirm = confirm_url_for(settings, "request-key", SLUG)
    assert SLUG.encode() not in _raw(confirm.rsplit("/", 1)[1])


def make_settings():  # a Settings object without a project: links need only two values
    from dripline.settings import Settings

    return Settings(base_url=BASE, secret_key=SECRET)


def _mutations(token: str, rng: random.Random) -> Iterator[str]:
    kinds = ["flip", "insert", "delete", "truncate", "swap", "case", "append"]
    while True:
        kind = rng.choice(kinds)
        i = rng.randrange(len(token))
        if kind == "flip":
            yield token[:i] + rng.choice(ALPHABET.replace(token[i], "")) + token[i + 1 :]
        elif kind == "insert":
            yield token[:i] + rng.choice(STRAY) + token[i:]
        elif kind == "delete":
            yield token[:i] + token[i + 1 :]
        elif kind == "truncate":
            yield token[: rng.randrange(len(token))]
        elif kind == "swap" and i + 1 < len(token) and token[i] != token[i + 1]:
            yield token[:i] + token[i + 1] + token[i] + token[i + 2 :]
        elif kind == "case" and token[i].swapcase() != token[i]:
            yield token[:i] + token[i].swapcase() + token[i + 1 :]
        elif kind == "append":
            yield token + rng.choice(STRAY) * rng.randint(1, 3)


async def _statuses(app: Starlette, tokens: list[str]) -> dict[int, int]:
    """Status code counts for GET and POST (alternately) of ``/u/TOKEN`` for each token."""
    statuses: dict[int, int] = {}
    transport = httpx.ASGITransport(app=app)  # in-process, one event loop: fast
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        for n, token in enumerate(tokens):
            path = f"/u/{quote(token, safe='')}"
            if n % 2:
                response = await client.post(path, data={"List-Unsubscribe": "One-Click"})
            else:
                response = await client.get(path)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
    return statuses


@pytest.fixture
def served(tmp_path: Path, sqlite_url: str) -> Iterator[Served]:
    served = make_served(tmp_path, sqlite_url, "tokens")
    yield served
    served.close()


def test_ten_thousand_mutated_tokens_are_all_rejected_with_404(served: Served):
    from dispatch_pass import dispatch_pass

    client = served.client()
    sign_up(client)
    confirm = served.emails()[0]
    from serve_support import confirm_path

    client.post(confirm_path(confirm))
    engine = served.apps[0].state.service.engine
    campaigns = {SLUG: load_campaign(served.settings.campaigns_dir / SLUG)}
    dispatch_pass(engine, served.settings, campaigns, served.clock.now)
    good = list_unsubscribe_path(served.emails()[-1]).removeprefix("/u/")
    assert client.get(f"/u/{good}").status_code == 200  # the genuine one works

    with read_transaction(engine) as conn:
        key = conn.scalar(select(Subscriber.__table__.c.public_key))
    now = int(served.clock.now.timestamp())
    rng = random.Random(20261126)
    candidates: set[str] = set()
    mutations = _mutations(good, rng)
    while len(candidates) < 9_000:
        candidate = next(mutations)
        if candidate != good:
            candidates.add(candidate)
    others = [TokenSigner(f"other-secret-{n:04d}-abcdefgh") for n in range(500)]
    for signer in others:  # right shape and fields, wrong key
        candidates.add(signer.sign(TokenPayload(UNSUBSCRIBE, key, SLUG, now)))
    genuine = TokenSigner(served.settings.secret_key)
    for n in range(500):  # right key, wrong purpose or unknown subscriber
        purpose = CONFIRM if n % 2 else UNSUBSCRIBE
        subject = key if purpose == CONFIRM else f"unknown-{n}"
        candidates.add(genuine.sign(TokenPayload(purpose, subject, SLUG, now + n)))
    assert len(candidates) == 10_000

    statuses = asyncio.run(_statuses(served.apps[0], sorted(candidates)))
    assert statuses == {404: 10_000}
    d = Delivery.__table__
    with read_transaction(engine) as conn:
        assert conn.scalar(select(d.c.status).where(d.c.step == 2)) == "scheduled"
