"""The fast path's messages parse to exactly what the full per-subscriber render produces."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dripline.campaign import load_campaign
from dripline.errors import RenderError
from dripline.render import CampaignRenderer, Recipient

REPO = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 3, 5, 17, 0, tzinfo=UTC)

HOSTILE = [
    "<b>bold</b> & <script>alert(1)</script>",
    "{{ 7 * 7 }} {% if true %}x{% endif %} {# c #}",
    'O\'Brien "Bob"',
    "line\r\nBcc: victim@example.com",
    "Zoë 😀 ﷽ שלום עולם",
    "\u202eevil\u202c",
    "x" * 500,
    "=?utf-8?b?SGk=?=",
    "tab\there  two  spaces",
    "a\x00b",
    "\xa0nbsp\xa0",
    "",
]


def parse(data: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)


def summary(data: bytes) -> dict[str, object]:
    message = parse(data)
    assert not message.defects, message.defects
    # Leading folding white space carries no meaning (RFC 5322 3.2.2); the stdlib adds some.
    headers = {k: str(v).strip() for k, v in message.items() if k != "Content-Type"}
    parts = [(p.get_content_type(), p.get_content()) for p in message.iter_parts()]
    for part in message.iter_parts():
        assert not part.defects, part.defects
    return {"headers": headers, "type": message.get_content_type(), "parts": parts}


def both(compiled, recipient: Recipient):
    """(full, fast) outcomes: message summaries, or the error each raised."""
    outcomes = []
    for render in (
        lambda: compiled.render(recipient, now=NOW, message_id="<m@example.com>").data,
        lambda: compiled.render_bytes(recipient, now=NOW, message_id="<m@example.com>")[1],
    ):
        try:
            outcomes.append(summary(render()))
        except RenderError as err:
            outcomes.append(type(err).__name__)
    return outcomes


@pytest.fixture(scope="module")
def ketamine() -> CampaignRenderer:
    campaign = load_campaign(REPO / "campaigns" / "ketamine-therapy")
    return CampaignRenderer(campaign, REPO / "templates")


def test_every_ketamine_step_takes_the_fast_path(ketamine):
    for compiled in ketamine.compile_all():
        assert compiled.slotted is not None, compiled.step.name


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_names_render_the_same_both_ways(ketamine, value):
    recipient = Recipient(
        "pat@example.com",
        {"name": value, "first_name": value, "city": value},
        "https://news.example.com/u/AbC-123_x",
    )
    full, fast = both(ketamine.step(1), recipient)
    assert full == fast


def _layout_project(tmp_path: Path, body: str, subject: str) -> CampaignRenderer:
    folder = tmp_path / "campaigns" / "probe"
    folder.mkdir(parents=True)
    (folder / "campaign.toml").write_text(
        (REPO / "campaigns" / "ketamine-therapy" / "campaign.toml").read_text()
    )
    (folder / "01-probe.md").write_text(
        f'+++\nsubject = "{subject}"\n'
        'preheader = "Hello {{ subscriber.city }}"\nday = 0\n+++\n\n' + body
    )
    return CampaignRenderer(load_campaign(folder), REPO / "templates")


BODY = """Hi {{ subscriber.first_name | default("there") }}, from {{ subscriber.city }}.

## News for {{ subscriber.first_name | default("you") | upper }}

[Your page](https://example.com/p?a=1&ref={{ subscriber.ref }}) and more.

> {{ subscriber.name }} said so.
"""

field_text = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=20),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=field_text,
    first_name=st.one_of(st.none(), field_text),
    city=field_text,
    ref=st.one_of(st.from_regex(r"[a-z0-9]{1,12}", fullmatch=True), field_text),
)
def test_fast_path_matches_full_render(tmp_path_factory, name, first_name, city, ref):
    renderer = _probe(tmp_path_factory)
    fields = {"name": name, "city": city, "ref": ref}
    if first_name is not None:
        fields["first_name"] = first_name
    recipient = Recipient("pat@example.com", fields, "https://news.example.com/u/tok")
    full, fast = both(renderer.step(1), recipient)
    assert full == fast


_PROBES: dict[str, CampaignRenderer] = {}


def _probe(tmp_path_factory) -> CampaignRenderer:
    if "probe" not in _PROBES:
        _PROBES["probe"] = _layout_project(
            tmp_path_factory.mktemp("probe"), BODY, "News for {{ subscriber.name }}"
        )
    return _PROBES["probe"]


def test_subscriber_dependent_control_flow_takes_the_full_path(tmp_path):
    body = "{% if subscriber.vip %}\nWelcome back, VIP.\n{% else %}\nHello.\n{% endif %}\n"
    renderer = _layout_project(tmp_path, body, "Hi")
    compiled = renderer.step(1)
    assert compiled.slotted is None
    for vip, expected in ((True, "Welcome back, VIP."), (False, "Hello.")):
        recipient = Recipient("v@example.com", {"vip": vip, "city": "Oslo"}, "https://e.com/u/t")
        _, data = compiled.render_bytes(recipient, now=NOW)
        text = parse(data).get_body(("plain",)).get_content()
        assert expected in text
        assert ("Hello." in text) != vip


def test_header_injection_is_refused_both_ways(tmp_path):
    renderer = _layout_project(tmp_path, "Hi.\n", "News for {{ subscriber.name }}")
    recipient = Recipient(
        "v@example.com", {"name": "x\r\nBcc: a@b.c", "city": "Oslo"}, "https://e.com/u/t"
    )
    assert both(renderer.step(1), recipient) == ["HeaderInjectionError", "HeaderInjectionError"]
