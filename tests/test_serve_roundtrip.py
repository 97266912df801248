"""The whole path a person takes: form, confirmation email, confirm, first email, unsubscribe.

Real SQLite file (and the CI PostgreSQL), the real app under Starlette's TestClient,
the memory sender; the dispatch pass is the minimal test helper in dispatch_pass.py.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from dispatch_pass import dispatch_pass
from serve_support import (
    BASE,
    SLUG,
    Served,
    confirm_path,
    list_unsubscribe_path,
    make_served,
    sign_up,
)
from sqlalchemy import Engine, select

from dripline.campaign import Campaign, load_campaign
from dripline.serve import unsubscribe_url_for
from dripline.store import (
    Consent,
    Delivery,
    Enrollment,
    Subscriber,
    campaign_status,
    read_transaction,
)
from dripline.tokens import UNSUBSCRIBE, TokenPayload, TokenSigner


@pytest.fixture
def served(tmp_path: Path, db_url: str) -> Iterator[Served]:
    served = make_served(tmp_path, db_url, "roundtrip")
    yield served
    served.close()


@pytest.fixture
def campaigns(served: Served) -> dict[str, Campaign]:
    return {SLUG: load_campaign(served.settings.campaigns_dir / SLUG)}


def _engine(served: Served) -> Engine:
    return served.apps[0].state.service.engine  # type: ignore[no-any-return]


def _subscriber(engine: Engine, email: str = "ada@example.com") -> dict[str, object]:
    with read_transaction(engine) as conn:
        row = conn.execute(
            select(Subscriber.__table__).where(Subscriber.__table__.c.email_key == email)
        ).one()
    return dict(row._mapping)


def _delivery_statuses(engine: Engine) -> list[tuple[int, str]]:
    d = Delivery.__table__
    with read_transaction(engine) as conn:
        return [
            (r.step, r.status)
            for r in conn.execute(select(d.c.step, d.c.status).order_by(d.c.step))
        ]


def _enrollment_status(engine: Engine) -> str:
    with read_transaction(engine) as conn:
        return conn.scalar(select(Enrollment.__table__.c.status))  # type: ignore[no-any-return]


def _confirmed(served: Served, campaigns: dict[str, Campaign]) -> Engine:
    """Sign up, confirm from the email, and let the first dispatch pass send email 1."""
    client = served.client()
    assert sign_up(client, timezone="America/New_York").status_code == 200
    engine = _engine(served)
    assert client.post(confirm_path(served.emails()[-1])).status_code == 200
    sent = dispatch_pass(engine, served.settings, campaigns, served.clock.now)
    assert [d.step for d in sent] == [1]
    return engine


def test_full_round_trip(served: Served, campaigns: dict[str, Campaign]):
    client = served.client()
    form = client.get(f"/subscribe/{SLUG}")
    assert form.status_code == 200 and 'name="email"' in form.text

    response = sign_up(client, timezone="America/New_York")
    assert response.status_code == 200 and "Check your inbox" in response.text
    engine = _engine(served)
    pending = _subscriber(engine)
    assert pending["status"] == "pending"
    assert _delivery_statuses(engine) == []
    # A pending subscriber gets nothing marketing, however much time passes.
    later = served.clock.now + timedelta(days=30)
    assert dispatch_pass(engine, served.settings, campaigns, later) == []

    (confirmation,) = served.emails()
    assert confirmation["To"] == "ada@example.com"
    (sender,) = confirmation["From"].addresses
    assert (sender.display_name, sender.addr_spec) == (
        "Clearwater Mind Clinic",
        "hello@example.com",
    )
    assert confirmation["List-Unsubscribe"] is None  # not on a list yet
    path = confirm_path(confirmation)
    page = client.get(path)
    assert page.status_code == 200 and "<button" in page.text and 'method="post"' in page.text
    assert _subscriber(engine)["status"] == "pending"  # the GET changed nothing

    served.clock.advance(minutes=10)
    done = client.post(path, headers={"User-Agent": "Firefox/140 (test)"})
    assert done.status_code == 200 and "You are subscribed" in done.text
    active = _subscriber(engine)
    assert active["status"] == "active" and active["timezone"] == "America/New_York"
    assert _enrollment_status(engine) == "active"
    assert _delivery_statuses(engine) == [(n, "scheduled") for n in range(1, 7)]
    with read_transaction(engine) as conn:
        (consent,) = conn.execute(select(Consent.__table__)).all()
    assert consent.ip == "testclient" and consent.user_agent == "Firefox/140 (test)"
    assert consent.form == f"/subscribe/{SLUG}"
    assert "Top 6 Reasons to Consider Ketamine Therapy" in consent.consent_text
    assert consent.given_at == served.clock.now.replace(tzinfo=None)

    sent = dispatch_pass(engine, served.settings, campaigns, served.clock.now)
    assert [d.step for d in sent] == [1]
    first = served.emails()[-1]
    assert first["Subject"] == campaigns[SLUG].steps[0].subject
    assert first["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe = list_unsubscribe_path(first)
    token = unsubscribe.removeprefix("/u/")
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    assert b"ada" not in raw.lower() and b"example" not in raw and SLUG.encode() not in raw

    for _ in range(3):
        assert client.get(unsubscribe).status_code == 200
    assert _enrollment_status(engine) == "active"  # GETs never unsubscribe

    response = client.post(unsubscribe, data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200 and "You are unsubscribed" in response.text
    assert "set-cookie" not in response.headers and not response.is_redirect
    assert _enrollment_status(engine) == "unsubscribed"
    assert _delivery_statuses(engine) == [(1, "sent")] + [(n, "cancelled") for n in range(2, 7)]

    again = client.post(unsubscribe, data={"List-Unsubscribe": "One-Click"})
    assert again.status_code == 200 and again.text == response.text
    assert _delivery_statuses(engine) == [(1, "sent")] + [(n, "cancelled") for n in range(2, 7)]
    count = len(served.emails())
    assert dispatch_pass(engine, served.settings, campaigns, later) == []
    assert len(served.emails()) == count


def test_unsubscribe_between_two_ticks_stops_the_next_email(
    served: Served, campaigns: dict[str, Campaign]
):
    engine = _confirmed(served, campaigns)
    unsubscribe = list_unsubscribe_path(served.emails()[-1])
    step_two_due = served.clock.now + timedelta(days=3)
    served.client().post(unsubscribe, data={"List-Unsubscribe": "One-Click"})
    count = len(served.emails())
    assert dispatch_pass(engine, served.settings, campaigns, step_two_due) == []
    assert len(served.emails()) == count


def test_without_unsubscribing_the_next_tick_sends_email_two(
    served: Served, campaigns: dict[str, Campaign]
):
    # The counterpart of the test above: the same ticks do send when nobody unsubscribed.
    engine = _confirmed(served, campaigns)
    sent = dispatch_pass(engine, served.settings, campaigns, served.clock.now + timedelta(days=3))
    assert [d.step for d in sent] == [2]


def test_unsubscribe_link_still_works_after_a_year(served: Served, campaigns: dict[str, Campaign]):
    engine = _confirmed(served, campaigns)
    key = str(_subscriber(engine)["public_key"])
    url = unsubscribe_url_for(served.settings, key, SLUG, now=served.clock.now)
    served.clock.advance(days=400)
    response = served.client().post(url.removeprefix(BASE), data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert _enrollment_status(engine) == "unsubscribed"


def test_bad_tokens_all_get_the_same_404_page(served: Served, campaigns: dict[str, Campaign]):
    engine = _confirmed(served, campaigns)
    good = list_unsubscribe_path(served.emails()[-1]).removeprefix("/u/")
    signer = TokenSigner(served.settings.secret_key)
    now = int(served.clock.now.timestamp())
    candidates = {
        "garbage": "not-a-token",
        "altered": good[:-3] + ("AAA" if good[-3:] != "AAA" else "BBB"),
        "unknown subscriber": signer.sign(TokenPayload(UNSUBSCRIBE, "no-such-key", SLUG, now)),
        "other campaign": signer.sign(
            TokenPayload(UNSUBSCRIBE, str(_subscriber(engine)["public_key"]), "other", now)
        ),
        "other secret": TokenSigner("another-secret-key-0123456789").sign(
            TokenPayload(UNSUBSCRIBE, str(_subscriber(engine)["public_key"]), SLUG, now)
        ),
        "confirm link": confirm_path(served.emails()[0]).removeprefix("/confirm/"),
    }
    client = served.client()
    bodies = set()
    for reason, token in candidates.items():
        for response in (
            client.get(f"/u/{token}"),
            client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"}),
        ):
            assert response.status_code == 404, reason
            bodies.add(response.text)
    assert len(bodies) == 1
    assert _enrollment_status(engine) == "active"


def test_post_without_the_one_click_body_changes_nothing(
    served: Served, campaigns: dict[str, Campaign]
):
    engine = _confirmed(served, campaigns)
    unsubscribe = list_unsubscribe_path(served.emails()[-1])
    response = served.client().post(unsubscribe, data={"List-Unsubscribe": "Something-Else"})
    assert response.status_code == 400
    assert _enrollment_status(engine) == "active"


def test_an_old_confirmation_link_never_undoes_an_unsubscribe(
    served: Served, campaigns: dict[str, Campaign]
):
    engine = _confirmed(served, campaigns)
    client = served.client()
    client.post(list_unsubscribe_path(served.emails()[-1]), data={"List-Unsubscribe": "One-Click"})
    served.clock.advance(days=1)
    assert client.post(confirm_path(served.emails()[0])).status_code == 200
    assert _enrollment_status(engine) == "unsubscribed"
    assert _delivery_statuses(engine) == [(1, "sent")] + [(n, "cancelled") for n in range(2, 7)]


def test_signing_up_again_after_unsubscribing_resumes_the_steps_not_sent(
    served: Served, campaigns: dict[str, Campaign]
):
    engine = _confirmed(served, campaigns)
    client = served.client()
    client.post(list_unsubscribe_path(served.emails()[-1]), data={"List-Unsubscribe": "One-Click"})
    served.clock.advance(days=5)
    sign_up(client, timezone="America/New_York")
    response = client.post(confirm_path(served.emails()[-1]))
    assert "The next email arrives on" in response.text
    assert _enrollment_status(engine) == "active"
    assert _delivery_statuses(engine) == [(1, "sent")] + [(n, "scheduled") for n in range(2, 7)]
    # Step 2 comes two days after the new confirmation (as after the first email), not at once.
    assert dispatch_pass(engine, served.settings, campaigns, served.clock.now) == []
    later = served.clock.now + timedelta(days=2, hours=12)
    assert [d.step for d in dispatch_pass(engine, served.settings, campaigns, later)] == [2]


def test_one_click_works_with_a_multipart_body_too(served: Served, campaigns: dict[str, Campaign]):
    # RFC 8058 allows either form encoding; mailbox providers use both.
    engine = _confirmed(served, campaigns)
    unsubscribe = list_unsubscribe_path(served.emails()[-1])
    response = served.client().post(unsubscribe, files={"List-Unsubscribe": (None, "One-Click")})
    assert response.status_code == 200
    assert _enrollment_status(engine) == "unsubscribed"


def test_an_oversized_post_is_refused_before_it_is_read(served: Served):
    client = served.client()
    response = client.post(f"/subscribe/{SLUG}", data={"email": "a@example.com", "x": "y" * 20_000})
    assert response.status_code == 413
    assert served.emails() == []


def test_one_click_from_the_last_email_of_a_finished_sequence_is_stored(
    served: Served, campaigns: dict[str, Campaign]
):
    engine = _confirmed(served, campaigns)
    for day in range(1, 21):
        dispatch_pass(engine, served.settings, campaigns, served.clock.now + timedelta(days=day))
    assert [status for _, status in _delivery_statuses(engine)] == ["sent"] * 6
    assert _enrollment_status(engine) == "completed"
    last = served.emails()[-1]
    response = served.client().post(
        list_unsubscribe_path(last), data={"List-Unsubscribe": "One-Click"}
    )
    assert response.status_code == 200 and "You are unsubscribed" in response.text
    assert _enrollment_status(engine) == "unsubscribed"  # stored, not just answered
    assert campaign_status(engine, SLUG).unsubscribed == 1
