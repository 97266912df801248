"""Route tests for the preview app (Starlette's TestClient, real campaigns copied to tmp_path)."""

from __future__ import annotations

import re
import shutil
from datetime import datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from zoneinfo import ZoneInfo

import lxml.html
import pytest
from starlette.testclient import TestClient

from dripline._flowed import unflow
from dripline.campaign import load_campaign
from dripline.lint import lint_folder
from dripline.preview import Project, create_app, force_color_scheme, plan_sends
from dripline.render import CampaignRenderer
from dripline.samples import load_samples

PORT = 8025
BASE_URL = "http://127.0.0.1:8000"
SLUG = "ketamine-therapy"
LA = ZoneInfo("America/Los_Angeles")
ENROLLED = datetime(2026, 3, 5, 20, 0, tzinfo=LA)  # the timetable issue's worked example


@pytest.fixture
def preview(project: Path) -> Project:
    return Project(project, base_url=BASE_URL, clock=lambda: ENROLLED)


@pytest.fixture
def client(preview: Project) -> TestClient:
    app = create_app(preview, port=PORT, watch=False)
    return TestClient(app, base_url=f"http://127.0.0.1:{PORT}")


def page(client: TestClient, url: str, status: int = 200) -> lxml.html.HtmlElement:
    response = client.get(url)
    assert response.status_code == status, response.text[:2000]
    assert response.headers["content-type"].startswith("text/html")
    return lxml.html.fromstring(response.text)


def text_of(element: lxml.html.HtmlElement) -> str:
    return " ".join(element.text_content().split())


def heading_of(step_body: str) -> str:
    return re.search(r"^## (.+)$", step_body, re.MULTILINE).group(1).strip()


# -- start page ------------------------------------------------------------------------


def test_start_page_lists_each_campaign_with_steps_days_and_lint_status(
    client: TestClient, project: Path
) -> None:
    doc = page(client, "/")
    campaign = load_campaign(project / "campaigns" / SLUG)
    row = doc.cssselect(f'tr[data-slug="{SLUG}"]')[0]
    cells = [text_of(c) for c in row.cssselect("th, td")]
    assert campaign.name in cells[0]
    assert row.cssselect("th a")[0].get("href") == f"/campaigns/{SLUG}"
    assert cells[1:4] == ["6", "Day 0", "Day 10"]
    # dripline check: no errors, one warning (step 4's long subject).
    _, findings = lint_folder(project / "campaigns" / SLUG, project / "templates", BASE_URL)
    warnings = [f for f in findings if f.severity == "warning"]
    assert "ok" in cells[4].lower()
    assert f"{len(warnings)} warning" in cells[4]


def test_start_page_shows_a_campaign_that_does_not_load_with_file_and_line(
    client: TestClient, preview: Project, project: Path
) -> None:
    toml = project / "campaigns" / SLUG / "campaign.toml"
    lines = toml.read_text(encoding="utf-8").splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith("name ="))
    lines[index] = 'name = "unclosed'
    toml.write_text("\n".join(lines) + "\n", encoding="utf-8")
    preview.reload()
    row = page(client, "/").cssselect(f'tr[data-slug="{SLUG}"]')[0]
    assert f"campaigns/{SLUG}/campaign.toml:{index + 1}" in text_of(row)
    assert "1 error" in text_of(row)


# -- campaign page ---------------------------------------------------------------------


def test_campaign_page_draws_the_timeline_with_real_dates_and_weekends(
    client: TestClient, project: Path
) -> None:
    doc = page(client, f"/campaigns/{SLUG}")
    svg = doc.cssselect("svg.timeline")[0]
    assert svg.get("role") == "img"
    markers = svg.cssselect("g.tl-step")
    assert [m.get("data-step") for m in markers] == ["1", "2", "3", "4", "5", "6"]
    # Thu 03-05 to Mon 03-16: two weekends, four skipped days, each labelled.
    skipped = [text_of(r) for r in svg.cssselect("rect.tl-skip")]
    assert skipped == [
        "Sat 07 Mar: no sends",
        "Sun 08 Mar: no sends",
        "Sat 14 Mar: no sends",
        "Sun 15 Mar: no sends",
    ]
    times = [text_of(t) for t in svg.cssselect("text.tl-time")]
    assert times == ["20:00", "09:00", "09:00", "09:00", "09:00", "09:00"]
    # A step moved off a weekend shows where its day offset put it.
    assert len(svg.cssselect("line.tl-shift")) == 3


def test_campaign_page_inbox_lists_sender_subject_preheader_and_day(
    client: TestClient, project: Path
) -> None:
    campaign = load_campaign(project / "campaigns" / SLUG)
    doc = page(client, f"/campaigns/{SLUG}")
    rows = doc.cssselect("ol.inbox li.inbox-row")
    assert len(rows) == len(campaign.steps)
    expected_due = [p.due.isoformat() for p in plan_sends(campaign, ENROLLED)]
    for row, step, due in zip(rows, campaign.steps, expected_due, strict=True):
        assert text_of(row.cssselect(".inbox-from")[0]) == campaign.from_name
        assert text_of(row.cssselect(".inbox-subject")[0]) == step.subject
        assert text_of(row.cssselect(".inbox-preheader")[0]) == " ".join(step.preheader.split())
        assert text_of(row.cssselect(".inbox-when")[0]).startswith(f"Day {step.day}")
        assert row.cssselect("time")[0].get("datetime") == due
        assert row.cssselect("a")[0].get("href") == f"/campaigns/{SLUG}/{step.number}"
    assert "2026-03-09T09:00:00-07:00" in expected_due  # the DST change is in the dates
    notes = [text_of(n) for n in doc.cssselect(".inbox-note")]
    assert notes == [
        "Moved 2 days from Saturday: no emails go out on Saturdays",
        "Moved 1 day from Monday: each email goes out on a later day than the one before",
        "Moved 1 day from Sunday: no emails go out on Sundays",
    ]


def test_inbox_subjects_are_rendered_for_the_first_sample(
    client: TestClient, preview: Project, project: Path
) -> None:
    path = project / "campaigns" / SLUG / "01-rapid-relief.md"
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            'subject = "Reason 1 of 6:',
            "subject = \"{{ subscriber.first_name | default('Friend') }}, reason 1 of 6:",
        ),
        encoding="utf-8",
    )
    preview.reload()
    doc = page(client, f"/campaigns/{SLUG}")
    first = doc.cssselect("li.inbox-row .inbox-subject")[0]
    assert text_of(first) == "Maria, reason 1 of 6: Rapid relief from symptoms"
    assert "Maria, Los Angeles" in text_of(doc.cssselect("#inbox-heading + p")[0])


# -- step pages ------------------------------------------------------------------------


def test_every_step_page_answers_for_every_sample(client: TestClient, project: Path) -> None:
    campaign = load_campaign(project / "campaigns" / SLUG)
    renderer = CampaignRenderer(campaign, project / "templates")
    samples = load_samples(campaign, BASE_URL)
    assert len(samples) == 3
    for step in campaign.steps:
        for index, sample in enumerate(samples):
            url = f"/campaigns/{SLUG}/{step.number}?sample={index}"
            doc = page(client, url)
            expected = renderer.step(step.number).render(sample.recipient)
            assert text_of(doc.cssselect("h1.step-subject")[0]) == expected.subject
            frame = doc.cssselect("iframe.email-frame")[0]
            assert "allow-scripts" not in frame.get("sandbox")
            assert "allow-same-origin" not in frame.get("sandbox")
            assert frame.get("src").startswith(f"/campaigns/{SLUG}/{step.number}/email.html?")
            assert f"sample={index}" in frame.get("src")
            options = doc.cssselect("select#sample option")
            assert [o.text_content().split(" (")[0] for o in options] == [s.label for s in samples]
            assert options[index].get("selected") is not None
            assert sample.recipient.email in text_of(doc.cssselect(".envelope")[0])
            previous = doc.cssselect('a[rel="prev"]')
            following = doc.cssselect('a[rel="next"]')
            assert bool(previous) == (step.number > 1)
            assert bool(following) == (step.number < len(campaign.steps))
            if following:
                assert (
                    following[0]
                    .get("href")
                    .startswith(f"/campaigns/{SLUG}/{step.number + 1}?sample={index}&")
                )


def test_the_fallback_greeting_shows_for_the_sample_without_a_first_name(
    client: TestClient,
) -> None:
    labels = [o.text_content() for o in page(client, f"/campaigns/{SLUG}/1").cssselect("option")]
    without = next(i for i, label in enumerate(labels) if "No first name" in label)
    html = client.get(f"/campaigns/{SLUG}/1/email.html?sample={without}").text
    assert "Hi there," in html
    assert "Hi Maria," in client.get(f"/campaigns/{SLUG}/1/email.html?sample=0").text


def test_width_and_dark_mode_toggles_change_the_frame(client: TestClient) -> None:
    doc = page(client, f"/campaigns/{SLUG}/2?width=375")
    assert "width-375" in doc.cssselect("iframe")[0].get("class")
    toggles = {text_of(a): a for a in doc.cssselect(".controls a.toggle")}
    assert toggles["Phone 375 px"].get("aria-current") == "true"
    desktop = page(client, toggles["Desktop 800 px"].get("href"))
    assert "width-800" in desktop.cssselect("iframe")[0].get("class")
    dark_link = {text_of(a): a for a in desktop.cssselect(".controls a.toggle")}["Dark"]
    dark = page(client, dark_link.get("href"))
    frame_src = dark.cssselect("iframe")[0].get("src")
    assert "scheme=dark" in frame_src
    dark_doc = client.get(frame_src).text
    assert "prefers-color-scheme" not in dark_doc
    assert "color-scheme: dark" in dark_doc
    light_doc = client.get(frame_src.replace("scheme=dark", "scheme=light")).text
    assert light_doc != dark_doc


def test_email_document_has_a_strict_csp_and_the_rendered_html(
    client: TestClient, project: Path
) -> None:
    campaign = load_campaign(project / "campaigns" / SLUG)
    renderer = CampaignRenderer(campaign, project / "templates")
    sample = load_samples(campaign, BASE_URL)[0]
    for step in campaign.steps:
        response = client.get(f"/campaigns/{SLUG}/{step.number}/email.html?sample=0")
        assert response.status_code == 200
        csp = response.headers["content-security-policy"]
        assert "default-src 'none'" in csp
        assert "script-src" not in csp  # so scripts fall back to 'none'
        assert "img-src https: data:" in csp
        assert "style-src 'unsafe-inline'" in csp
        expected = renderer.step(step.number).render(sample.recipient).html
        assert response.text == force_color_scheme(expected, "light")
        assert f">{heading_of(step.body)}</h2>" in response.text


def test_eml_download_is_the_message_sending_would_produce(
    client: TestClient, project: Path
) -> None:
    campaign = load_campaign(project / "campaigns" / SLUG)
    renderer = CampaignRenderer(campaign, project / "templates")
    samples = load_samples(campaign, BASE_URL)
    planned = plan_sends(campaign, ENROLLED)
    for step in campaign.steps:
        response = client.get(f"/campaigns/{SLUG}/{step.number}/message.eml?sample=1")
        assert response.status_code == 200
        assert response.headers["content-type"] == "message/rfc822"
        assert response.headers["content-disposition"] == (
            f'attachment; filename="{step.name}.eml"'
        )
        got = message_from_bytes(response.content, policy=default_policy)
        sent = renderer.step(step.number).render(samples[1].recipient).data
        want = message_from_bytes(sent, policy=default_policy)
        assert isinstance(got, EmailMessage) and isinstance(want, EmailMessage)
        skip = {"Date", "Message-ID", "Content-Type"}  # the boundary differs per message
        assert [(k, str(v)) for k, v in got.items() if k not in skip] == [
            (k, str(v)) for k, v in want.items() if k not in skip
        ]
        assert got.get_content_type() == want.get_content_type() == "multipart/alternative"
        for kind in ("plain", "html"):
            mine, theirs = got.get_body((kind,)), want.get_body((kind,))
            assert mine.get_content() == theirs.get_content()
            assert mine["Content-Transfer-Encoding"] == theirs["Content-Transfer-Encoding"]
        # Dated when the timetable would send it.
        assert got["Date"].datetime == planned[step.number - 1].due


def test_text_headers_and_source_tabs_show_the_message(client: TestClient) -> None:
    base = f"/campaigns/{SLUG}/3?sample=0&width=800&scheme=light"
    eml = client.get(f"/campaigns/{SLUG}/3/message.eml?sample=0").content
    message = message_from_bytes(eml, policy=default_policy)
    text = page(client, base + "&view=text").cssselect("pre.plain-text")[0].text_content()
    # What a format=flowed reader shows: paragraphs whole, not cut at 76 columns.
    assert text == unflow(message.get_body(("plain",)).get_content())
    headers = page(client, base + "&view=headers")
    rows = {
        text_of(r.cssselect("th")[0]): text_of(r.cssselect("td")[0])
        for r in headers.cssselect("table.headers tr")
    }
    assert rows["Subject"] == message["Subject"]
    assert rows["Message-ID"] == message["Message-ID"]  # the same cached message
    assert rows["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    source = page(client, base + "&view=source").cssselect("pre.source")[0].text_content()
    assert source.replace("\r\n", "\n") == eml.decode("utf-8").replace("\r\n", "\n")
    tabs = page(client, base + "&view=source").cssselect("nav.tabs a")
    assert [text_of(a) for a in tabs] == [
        "Email",
        "Plain text",
        "Headers",
        "Source",
        "Download .eml",
    ]
    assert [a.get("aria-current") for a in tabs][3] == "page"


def test_step_page_shows_the_check_findings_for_that_step(
    client: TestClient, preview: Project, project: Path
) -> None:
    doc = page(client, f"/campaigns/{SLUG}/4")
    findings = [text_of(li) for li in doc.cssselect("ul.findings li")]
    assert len(findings) == 1
    assert "subject is 86 characters" in findings[0]
    assert f"campaigns/{SLUG}/04-fewer-side-effects.md:2" in findings[0]
    assert page(client, f"/campaigns/{SLUG}/3").cssselect(".ok-note")
    # A new problem appears after the next reload, as `dripline check` reports it.
    path = project / "campaigns" / SLUG / "03-neuroplasticity.md"
    path.write_text(
        re.sub(r"(?m)^preheader = .*\n", "", path.read_text(encoding="utf-8")), encoding="utf-8"
    )
    preview.reload()
    _, lint = lint_folder(project / "campaigns" / SLUG, project / "templates", BASE_URL)
    expected = {f.message for f in lint if f.step == 3}
    shown = " ".join(
        text_of(li) for li in page(client, f"/campaigns/{SLUG}/3").cssselect("ul.findings li")
    )
    assert expected and all(message in shown for message in expected)


# -- errors ----------------------------------------------------------------------------


def test_broken_markdown_shows_file_and_line_and_a_fix_brings_it_back(
    client: TestClient, preview: Project, project: Path
) -> None:
    path = project / "campaigns" / SLUG / "02-treatment-resistant.md"
    good = path.read_text(encoding="utf-8")
    lines = good.splitlines(keepends=True)
    broken_line = len(lines) - 1
    lines.insert(broken_line - 1, "{% if subscriber.first_name %}Welcome back\n")
    path.write_text("".join(lines), encoding="utf-8")
    preview.reload()

    doc = page(client, f"/campaigns/{SLUG}/2")
    panel = doc.cssselect(".error-panel")[0]
    assert panel.get("role") == "alert"
    assert text_of(panel.cssselect(".error-where")[0]) == (
        f"campaigns/{SLUG}/02-treatment-resistant.md:{broken_line}"
    )
    assert "if" in text_of(panel.cssselect(".error-message")[0])
    assert not doc.cssselect("iframe")
    # The campaign page marks the broken step; other steps still render.
    inbox = page(client, f"/campaigns/{SLUG}")
    assert len(inbox.cssselect("li.has-problem")) == 1
    assert page(client, f"/campaigns/{SLUG}/3").cssselect("iframe")

    path.write_text(good, encoding="utf-8")
    preview.reload()
    doc = page(client, f"/campaigns/{SLUG}/2")
    assert not doc.cssselect(".error-panel")
    assert doc.cssselect("iframe.email-frame")


def test_broken_front_matter_shows_file_and_line_on_every_page_of_the_campaign(
    client: TestClient, preview: Project, project: Path
) -> None:
    path = project / "campaigns" / SLUG / "05-holistic-health.md"
    good = path.read_text(encoding="utf-8")
    path.write_text(good.replace("day = 8", "day = eight", 1), encoding="utf-8")
    preview.reload()
    for url in (f"/campaigns/{SLUG}", f"/campaigns/{SLUG}/1", f"/campaigns/{SLUG}/5"):
        panel = page(client, url).cssselect(".error-panel")[0]
        assert text_of(panel.cssselect(".error-where")[0]) == (
            f"campaigns/{SLUG}/05-holistic-health.md:4"
        )
        assert "invalid TOML" in text_of(panel)
    path.write_text(good, encoding="utf-8")
    preview.reload()
    assert page(client, f"/campaigns/{SLUG}/5").cssselect("iframe.email-frame")


def test_broken_layout_template_shows_its_file_and_line(
    client: TestClient, preview: Project, project: Path
) -> None:
    layout = project / "templates" / "base.html"
    good = layout.read_text(encoding="utf-8")
    lines = good.splitlines(keepends=True)
    line_number = next(i for i, line in enumerate(lines, 1) if "{{ body }}" in line)
    lines[line_number - 1] = "{{ body | nosuchfilter }}\n"
    layout.write_text("".join(lines), encoding="utf-8")
    preview.reload()
    panel = page(client, f"/campaigns/{SLUG}/1").cssselect(".error-panel")[0]
    assert text_of(panel.cssselect(".error-where")[0]) == f"templates/base.html:{line_number}"
    assert "nosuchfilter" in text_of(panel)
    layout.write_text(good, encoding="utf-8")
    preview.reload()
    assert page(client, f"/campaigns/{SLUG}/1").cssselect("iframe.email-frame")


def test_unknown_campaign_and_step_answer_404(client: TestClient) -> None:
    page(client, "/campaigns/no-such-campaign", 404)
    page(client, f"/campaigns/{SLUG}/7", 404)
    page(client, f"/campaigns/{SLUG}/0", 404)
    assert client.get(f"/campaigns/{SLUG}/9/message.eml").status_code == 404


# -- the Host check --------------------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["evil.example", f"evil.example:{PORT}", f"127.0.0.1:{PORT + 1}", "127.0.0.1", ""]
)
def test_foreign_host_header_gets_403(client: TestClient, host: str) -> None:
    for url in ("/", f"/campaigns/{SLUG}/1", f"/campaigns/{SLUG}/1/message.eml", "/events"):
        response = client.get(url, headers={"Host": host})
        assert response.status_code == 403
        assert "only answers at" in response.text


@pytest.mark.parametrize("host", [f"127.0.0.1:{PORT}", f"localhost:{PORT}", f"LOCALHOST:{PORT}"])
def test_local_host_header_is_served(client: TestClient, host: str) -> None:
    response = client.get("/", headers={"Host": host})
    assert response.status_code == 200
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"


# -- preflight: client support, accessibility, spam score -------------------------------


def test_step_page_shows_unsupported_features_by_client_and_accessibility_findings(
    client: TestClient, preview: Project, project: Path
) -> None:
    path = project / "campaigns" / SLUG / "03-neuroplasticity.md"
    path.write_text(
        path.read_text(encoding="utf-8")
        + '\n<div style="display:flex">Row</div>\n\n[click here](https://example.com/a)\n'
        + "\n#### Too deep\n",
        encoding="utf-8",
    )
    lines = path.read_text(encoding="utf-8").splitlines()
    flex_line = next(i for i, ln in enumerate(lines, 1) if "display:flex" in ln)
    link_line = next(i for i, ln in enumerate(lines, 1) if "click here" in ln)
    preview.reload()
    doc = page(client, f"/campaigns/{SLUG}/3")
    clients = doc.get_element_by_id("clients-heading").getparent()
    names = [text_of(h) for h in clients.cssselect("h3.client-name")]
    assert "Outlook Windows" in names
    outlook = clients.cssselect("h3.client-name")[names.index("Outlook Windows")]
    gaps = [text_of(li) for li in outlook.getnext().cssselect("li")]
    assert any(
        "not supported" in gap
        and "css-display-flex" in gap
        and f"campaigns/{SLUG}/03-neuroplasticity.md:{flex_line}" in gap
        for gap in gaps
    ), gaps
    a11y = [text_of(li) for li in doc.cssselect("ul.a11y-findings li")]
    assert any(
        "'click here' says nothing" in item and f"03-neuroplasticity.md:{link_line}" in item
        for item in a11y
    ), a11y
    assert any("heading h4 'Too deep' follows h2" in item for item in a11y)
    # Today's check findings stay in their own list; the page links the spam score.
    assert not [li for li in doc.cssselect("ul.findings:not(.client-gaps):not(.a11y-findings) li")]
    slot = doc.cssselect("[data-spam-src]")[0]
    assert slot.get("data-spam-src") == f"/campaigns/{SLUG}/3/spam?sample=0"


def test_step_page_says_ok_when_the_email_has_no_client_or_accessibility_gap(
    client: TestClient,
) -> None:
    doc = page(client, f"/campaigns/{SLUG}/1")
    notes = [text_of(p) for p in doc.cssselect(".preflight .ok-note")]
    assert any("No unsupported features in Gmail Desktop Webmail" in n for n in notes)
    assert any("No accessibility findings" in n for n in notes)


@pytest.mark.skipif(
    shutil.which("spamassassin") is None,
    reason="spamassassin is not installed (run .ci/spamassassin.sh)",
)
def test_spam_score_page_shows_score_and_rules_for_the_sample(client: TestClient) -> None:
    doc = page(client, f"/campaigns/{SLUG}/2/spam?sample=1")
    result = doc.get_element_by_id("spam-result")
    score = text_of(result.cssselect(".spam-score")[0])
    assert re.match(r"[\d.]+ points for No first name on file, threshold 5 ", score)
    assert float(score.split()[0]) < 2.5
    rows = [[text_of(c) for c in tr.cssselect("th, td")] for tr in result.cssselect("tbody tr")]
    assert ["0", "HTML_MESSAGE", "BODY: HTML included in message"] in rows


def test_spam_score_page_says_when_spamassassin_is_missing(
    client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    doc = page(client, f"/campaigns/{SLUG}/2/spam?sample=0")
    assert text_of(doc.cssselect(".spam-missing")[0]).startswith("SpamAssassin is not installed")


def test_spam_score_page_says_when_spamassassin_fails(
    project: Path, preview: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A message no other test renders, so no score cached by an earlier test answers.
    step = project / "campaigns" / SLUG / "04-fewer-side-effects.md"
    step.write_text(step.read_text(encoding="utf-8") + "\nA line only this test adds.\n")
    client = TestClient(
        create_app(preview, port=PORT, watch=False), base_url=f"http://127.0.0.1:{PORT}"
    )
    broken = tmp_path / "spamassassin"
    broken.write_text("#!/bin/sh\necho 'config: cannot read rules' >&2\nexit 2\n")
    broken.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    doc = page(client, f"/campaigns/{SLUG}/4/spam?sample=0")
    said = text_of(doc.cssselect(".spam-missing")[0])
    assert said == "No score: SpamAssassin failed (exit 2): config: cannot read rules"
    # It is installed: the page does not tell the reader to install it.
    assert "need Debian" not in text_of(doc.get_element_by_id("spam-result"))


def test_a_layout_that_runs_away_is_the_page_error_within_the_render_budget(project: Path):
    """DRIPLINE_RENDER_BUDGET reaches the preview: a layout whose compile runs away is the
    campaign's error, at the layout's file and line, after that budget (not a fixed 5 s)."""
    layout = project / "templates/base.html"
    lines = layout.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if "{{ campaign.postal_address }}" in line)
    lines.insert(at, '<p>{{ "x" | slice(1000000000000) | sum(start=[]) }}</p>')
    layout.write_text("\n".join(lines) + "\n")
    preview = Project(project, base_url=BASE_URL, clock=lambda: ENROLLED, render_budget=0.5)
    error = preview.snapshot.entries[SLUG].error
    assert error is not None
    assert str(error).startswith(f"{layout}:{at + 1}: compiling the layout took longer than 0.5 s")
    app = create_app(preview, port=PORT, watch=False)
    client = TestClient(app, base_url=f"http://127.0.0.1:{PORT}")
    assert f"templates/base.html:{at + 1}</code>" in client.get(f"/campaigns/{SLUG}").text
