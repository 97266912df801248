"""The sign-up form and confirmation: validation, honeypot, rate limits, expiry, privacy."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import html as lxml_html
from mail_checks import assert_wire_clean, raw_headers, rfc2047
from serve_support import SLUG, Served, confirm_path, make_served, plain_body, sign_up
from sqlalchemy import Engine, func, select

from dripline.errors import ConfigError
from dripline.serve import create_app
from dripline.serve._form import SlidingWindowLimiter
from dripline.store import (
    Consent,
    Delivery,
    Enrollment,
    NewSubscriber,
    SignupRequest,
    Subscriber,
    normalize_email,
    read_transaction,
    subscribe,
    unsubscribe,
)
from dripline.timetable import Timetable
from sender.memory import MemorySender


@pytest.fixture
def served(tmp_path: Path, sqlite_url: str) -> Iterator[Served]:
    served = make_served(tmp_path, sqlite_url, "signup")
    yield served
    served.close()


def _engine(served: Served) -> Engine:
    return served.apps[0].state.service.engine  # type: ignore[no-any-return]


def _count(engine: Engine, table: object, **where: object) -> int:
    t = table.__table__  # type: ignore[attr-defined]
    query = select(func.count()).select_from(t)
    for column, value in where.items():
        query = query.where(t.c[column] == value)
    with read_transaction(engine) as conn:
        return conn.scalar(query) or 0


def _form_errors(text: str) -> dict[str, str]:
    doc = lxml_html.fromstring(text)
    return {p.get("id").removesuffix("-error"): p.text_content() for p in doc.cssselect("p.error")}


def test_form_is_labelled_and_fills_the_time_zone_in_the_browser(served: Served):
    response = served.client().get(f"/subscribe/{SLUG}")
    assert response.status_code == 200
    doc = lxml_html.fromstring(response.text)
    assert doc.get("lang") == "en"
    for field in ("email", "first_name", "consent"):
        (label,) = doc.cssselect(f'label[for="{field}"]')
        assert label.text_content().strip()
    assert doc.cssselect("#email")[0].get("autocomplete") == "email"
    assert doc.cssselect('input[type="hidden"][name="timezone"]')
    script = doc.cssselect("script")[0].text
    assert "Intl.DateTimeFormat().resolvedOptions().timeZone" in script
    assert "unsubscribe at any time" in doc.cssselect('label[for="consent"]')[0].text_content()
    honeypot = doc.cssselect('input[name="website"]')[0]
    assert honeypot.get("tabindex") == "-1"
    assert honeypot.getparent().get("aria-hidden") == "true"
    assert response.headers["referrer-policy"] == "no-referrer"


def test_unknown_campaign_is_404(served: Served):
    assert served.client().get("/subscribe/no-such-campaign").status_code == 404
    assert served.client().get("/subscribe/..").status_code == 404


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"first_name": "Ada\r\nBcc: victim@example.com"}, "first_name", "line breaks"),
        ({"first_name": "Ada\x1b[31m"}, "first_name", "control characters"),
        ({"first_name": "Ada\u2028Lovelace"}, "first_name", "line breaks"),
        ({"first_name": "A" * 101}, "first_name", "at most 100 characters"),
        ({"email": "a" * 250 + "@example.com"}, "email", "too long"),
        ({"email": "not an address"}, "email", "like name@example.com"),
        ({"email": "zoë@example.com"}, "email", "non-Latin letters before the @"),
        ({"first_name": "=?utf-8?q?Boss?="}, "first_name", "'=?'"),
        ({"email": ""}, "email", "Enter your email"),
        ({"email": "ada@example.com\r\nBcc: x@example.com"}, "email", "line breaks"),
        ({"consent": ""}, "consent", "Tick the box"),
    ],
)
def test_bad_input_shows_the_form_again_with_a_message_by_the_field(
    served: Served, fields: dict[str, str], field: str, message: str
):
    response = sign_up(served.client(), **fields)
    assert response.status_code == 400
    errors = _form_errors(response.text)
    assert list(errors) == [field] and message in errors[field]
    assert lxml_html.fromstring(response.text).findtext(".//title").startswith("Error: ")
    doc = lxml_html.fromstring(response.text)
    assert doc.cssselect(f"#{field}")[0].get("aria-invalid") == "true"
    typed_email = fields.get("email", "ada@example.com")
    if "\r" not in typed_email:
        assert doc.cssselect("#email")[0].get("value") == typed_email
    assert served.emails() == []
    assert _count(_engine(served), Subscriber) == 0


def test_international_domain_is_accepted_and_mailed_in_punycode(served: Served):
    response = sign_up(served.client(), email="joerg@bücher.example", first_name="Jörg")
    assert response.status_code == 200
    (message,) = served.emails()
    assert message["To"] == "joerg@xn--bcher-kva.example"
    assert "Hi Jörg," in plain_body(message)


def test_name_is_escaped_in_the_confirmation_html(served: Served):
    sign_up(served.client(), first_name="<b>Ada</b> & co")
    html_part = served.emails()[0].get_body(("html",)).get_content()
    assert "&lt;b&gt;Ada&lt;/b&gt; &amp; co" in html_part and "<b>Ada" not in html_part


def test_confirmation_email_is_standards_clean(served: Served):
    # Issue 12: QP lines of 77-78 characters and one long encoded word in the subject.
    toml = served.settings.root / "campaigns" / SLUG / "campaign.toml"
    name = "Réservez votre séance découverte : thérapie à la kétamine, pas à pas, en six étapes"
    toml.write_text(re.sub(r'(?m)^name = ".*"$', f'name = "{name}"', toml.read_text()))
    first_name = "Zoë 😀 שלום " + "Ü" * 80
    sign_up(served.client(), email="jorg@bücher.example", first_name=first_name)
    (outgoing,) = MemorySender.outbox(served.outbox)
    assert_wire_clean(outgoing.data)
    headers = raw_headers(outgoing.data)
    assert rfc2047(headers["subject"]) == f"Confirm your subscription: {name}"
    assert headers["to"] == b"jorg@xn--bcher-kva.example"
    message = served.emails()[0]
    text = plain_body(message)  # asserts format=flowed
    assert f"Hi {first_name}," in text and f'receive "{name}" from' in text
    flowed = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    # Wrapped at 76 columns, except a line that is one long word (the link, the long name).
    assert all(len(line.rstrip()) <= 76 or " " not in line.strip() for line in flowed.split("\n"))


def test_honeypot_looks_like_success_but_does_nothing(served: Served):
    client = served.client()
    trap = sign_up(client, website="http://spam.example")
    human = sign_up(client, email="bob@example.com")
    assert trap.status_code == human.status_code == 200
    assert trap.text == human.text
    assert [m["To"] for m in served.emails()] == ["bob@example.com"]
    assert _count(_engine(served), Subscriber, email_key="ada@example.com") == 0


def test_an_already_subscribed_address_looks_like_a_new_sign_up(served: Served):
    client = served.client()
    engine = _engine(served)
    campaign_table = Timetable.of(served.apps[0].state.service.campaigns[SLUG].campaign)
    subscribe(engine, campaign_table, SLUG, NewSubscriber(normalize_email("old@example.com")))
    known = sign_up(client, email="old@example.com")
    new = sign_up(client, email="new@example.com")
    assert (known.status_code, known.text) == (new.status_code, new.text)
    # The existing subscriber keeps getting mail: nothing about them changed.
    s = Subscriber.__table__
    with read_transaction(engine) as conn:
        assert conn.scalar(select(s.c.status).where(s.c.email_key == "old@example.com")) == (
            "active"
        )
    assert _count(engine, Delivery, status="scheduled") == 6


def test_confirming_after_unsubscribing_re_enrolls_only_through_the_email(served: Served):
    client = served.client()
    engine = _engine(served)
    table = Timetable.of(served.apps[0].state.service.campaigns[SLUG].campaign)
    subscribe(engine, table, SLUG, NewSubscriber(normalize_email("ada@example.com")))
    unsubscribe(engine, "ada@example.com")
    sign_up(client)
    assert _count(engine, Subscriber, status="unsubscribed") == 1  # not until they confirm
    client.post(confirm_path(served.emails()[-1]))
    assert _count(engine, Subscriber, status="active") == 1


def test_at_most_five_sign_ups_per_ip_per_minute(served: Served):
    client = served.client()
    responses = [sign_up(client, email=f"p{n}@example.com") for n in range(7)]
    assert [r.status_code for r in responses] == [200] * 5 + [429] * 2
    assert responses[-1].headers["retry-after"] == "60"
    assert "Too many sign-ups" in responses[-1].text
    assert len(served.emails()) == 5


def test_ip_limit_window_slides_and_is_per_ip():
    now = [0.0]
    limiter = SlidingWindowLimiter(5, 60.0, clock=lambda: now[0])
    assert [limiter.allow("1.2.3.4") for _ in range(6)] == [True] * 5 + [False]
    assert limiter.allow("5.6.7.8")
    now[0] = 59.9
    assert not limiter.allow("1.2.3.4")
    now[0] = 60.1
    assert limiter.allow("1.2.3.4")


def test_three_confirmation_emails_per_address_per_hour_across_processes(served: Served):
    # Two apps on one database stand for two server processes; each allows many sign-ups
    # per IP, so only the per-address limit (kept in the database) is in play.
    first = served.client(signups_per_ip_per_minute=100)
    second = served.client(signups_per_ip_per_minute=100)
    responses = [sign_up(c) for c in (first, second, first, second, first)]
    assert {r.status_code for r in responses} == {200}
    assert len({r.text for r in responses}) == 1  # the visitor cannot tell
    assert len(served.emails()) == 3
    assert _count(_engine(served), SignupRequest) == 3
    served.clock.advance(minutes=61)
    sign_up(second)
    assert len(served.emails()) == 4


def test_expired_confirmation_link_is_refused(served: Served):
    client = served.client()
    sign_up(client)
    path = confirm_path(served.emails()[0])
    served.clock.advance(days=7, minutes=1)
    assert client.get(path).status_code == 404
    response = client.post(path)
    assert response.status_code == 404 and "expired" in response.text
    engine = _engine(served)
    assert _count(engine, Subscriber, status="pending") == 1
    assert _count(engine, Enrollment) == 0 and _count(engine, Consent) == 0


def test_confirmation_link_works_until_seven_days(served: Served):
    client = served.client()
    sign_up(client)
    path = confirm_path(served.emails()[0])
    served.clock.advance(days=6, hours=23)
    assert client.post(path).status_code == 200
    assert _count(_engine(served), Enrollment, status="active") == 1


def test_confirming_twice_enrolls_once_and_records_one_consent(served: Served):
    client = served.client()
    sign_up(client)
    path = confirm_path(served.emails()[0])
    assert client.post(path).status_code == 200
    assert client.post(path).status_code == 200
    engine = _engine(served)
    assert _count(engine, Consent) == 1 and _count(engine, Delivery) == 6


def test_altered_confirmation_link_is_refused(served: Served):
    client = served.client()
    sign_up(client)
    path = confirm_path(served.emails()[0])
    altered = path[:-2] + ("xy" if not path.endswith("xy") else "zz")
    assert client.post(altered).status_code == 404
    assert client.post(re.sub(r"/confirm/", "/u/", path)).status_code in (400, 404)
    assert _count(_engine(served), Enrollment) == 0


def test_refuses_to_start_without_a_secret_key(served: Served):
    from dataclasses import replace

    with pytest.raises(ConfigError, match="DRIPLINE_SECRET_KEY is not set"):
        create_app(replace(served.settings, secret_key=""))
    with pytest.raises(ConfigError, match="too short"):
        create_app(replace(served.settings, secret_key="short"))


def test_a_sender_that_fails_gives_a_try_again_page(served: Served):
    from dataclasses import replace

    served.settings = replace(served.settings, sender_url="maildir:/proc/no-such-outbox")
    response = sign_up(served.client())
    assert response.status_code == 503 and "try again" in response.text


def test_refuses_to_start_with_an_unknown_sender(served: Served):
    from dataclasses import replace

    with pytest.raises(ConfigError, match="unknown sender"):
        create_app(replace(served.settings, sender_url="pigeon:coop"))


def test_a_database_failure_gives_a_page_not_a_traceback(served: Served):
    from serve_support import TestClient
    from sqlalchemy import text

    app = served.app()
    with _engine(served).begin() as conn:
        conn.execute(text("DROP TABLE consents"))
        conn.execute(text("DROP TABLE signup_requests"))
    client = TestClient(app, raise_server_exceptions=False)
    response = sign_up(client)
    assert response.status_code == 500
    assert "Something went wrong" in response.text and "Traceback" not in response.text


def test_the_country_field_is_checked_and_upper_cased() -> None:
    from dripline.serve._form import read_signup_fields

    fields = read_signup_fields(
        {"email": "lena@example.com", "first_name": "Lena", "country": "de", "consent": "yes"}
    )
    assert fields.ok and fields.checked_country == "DE"
    bad = read_signup_fields({"email": "x@example.com", "country": "Germany", "consent": "yes"})
    assert list(bad.errors) == ["country"] and "two-letter code" in bad.errors["country"]
