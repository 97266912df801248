"""End to end in headless Chromium: the preview as a marketer sees it, phone and desktop.

Debian's Chromium driven by Playwright (``CHROMIUM_EXECUTABLE``, default
/usr/bin/chromium; ``.ci/chromium.sh`` installs it). Skipped only when that
browser is missing. Screenshots go to tests/artifacts/ (git-ignored).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from dripline.campaign import load_campaign

CHROMIUM = os.environ.get("CHROMIUM_EXECUTABLE", "/usr/bin/chromium")
CHROMIUM_ARGS = os.environ.get(
    "CHROMIUM_ARGS", "--no-sandbox --disable-gpu --disable-dev-shm-usage"
)
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
SLUG = "ketamine-therapy"

if not Path(CHROMIUM).is_file():
    pytest.skip(f"no Chromium at {CHROMIUM} (run .ci/chromium.sh)", allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api")


def heading_of(step_body: str) -> str:
    return re.search(r"^## (.+)$", step_body, re.MULTILINE).group(1).strip()


def shot(page, name: str, *, full_page: bool = False) -> None:
    # Full-page captures of Chromium cut a cross-origin iframe short, so pages with the
    # email frame are captured at the (tall) viewport, as a person sees them.
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"preview-{name}.png"), full_page=full_page)


# Everything on the page fits the viewport, apart from what sits inside a box that
# scrolls on its own (the timeline, the email frame at desktop width).
CLIPPED = """() => {
  const limit = document.documentElement.clientWidth;
  const inScrollBox = (e) => e.closest('.timeline-scroll, .frame-scroll');
  return [...document.querySelectorAll('main *, header *, nav *')]
    .filter((e) => !inScrollBox(e) && e.getClientRects().length)
    .filter((e) => e.getBoundingClientRect().right > limit + 0.5)
    .map((e) => e.tagName + '.' + e.className + ': ' + e.textContent.trim().slice(0, 40));
}"""


def scroll_width(page) -> int:
    return page.evaluate("document.documentElement.scrollWidth")


@pytest.mark.parametrize("width", [375, 800])
def test_every_step_shows_its_reason_at_phone_and_desktop_width(
    browser, preview_server, project: Path, width: int
) -> None:
    campaign = load_campaign(project / "campaigns" / SLUG)
    # Tall enough that full-page screenshots include the whole email frame.
    page = browser.new_page(viewport={"width": width, "height": 1400})
    try:
        for step in campaign.steps:
            page.goto(f"{preview_server.url}campaigns/{SLUG}/{step.number}?width={width}")
            frame = page.frame_locator("iframe.email-frame")
            heading = frame.locator("h2").first
            sync_api.expect(heading).to_have_text(heading_of(step.body))
            assert heading.is_visible()
            box = page.locator("iframe.email-frame").bounding_box()
            assert box is not None and round(box["width"]) == width
            if width == 375:
                assert scroll_width(page) <= 375, f"step {step.number} scrolls sideways"
                assert page.evaluate(CLIPPED) == []
            shot(page, f"step{step.number}-{width}")
        if width == 375:
            for url in ("", f"campaigns/{SLUG}"):
                page.goto(preview_server.url + url)
                assert scroll_width(page) <= 375, f"/{url} scrolls sideways"
                assert page.evaluate(CLIPPED) == []
                shot(page, f"{url.replace('/', '-') or 'start'}-{width}", full_page=True)
    finally:
        page.close()


def test_dark_mode_and_subscriber_switch(browser, preview_server) -> None:
    page = browser.new_page(viewport={"width": 1000, "height": 900})
    try:
        page.goto(f"{preview_server.url}campaigns/{SLUG}/1?width=375")
        body = page.frame_locator("iframe.email-frame").locator("body")
        assert body.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(243, 241, 236)"
        page.get_by_role("link", name="Dark").click()
        body = page.frame_locator("iframe.email-frame").locator("body")
        sync_api.expect(body).to_have_css("background-color", "rgb(17, 23, 20)")
        shot(page, "step1-dark")
        # The switcher submits on change; the sample without a first name gets the fallback.
        switcher = page.get_by_label("Subscriber")
        switcher.select_option(label="No first name on file (reader@example.com)")
        page.wait_for_url(re.compile(r"sample=1"))
        greeting = page.frame_locator("iframe.email-frame").locator("p").first
        sync_api.expect(greeting).to_have_text("Hi there,")
        assert "scheme=dark" in page.url
        page.get_by_role("link", name="Plain text").click()
        sync_api.expect(page.locator("pre.plain-text")).to_contain_text("Hi there,")
    finally:
        page.close()


def test_saving_markdown_updates_the_open_page_without_a_manual_reload(
    browser, preview_server, project: Path
) -> None:
    path = project / "campaigns" / SLUG / "03-neuroplasticity.md"
    good = path.read_text(encoding="utf-8")
    old_heading = heading_of(good)
    page = browser.new_page(viewport={"width": 375, "height": 900})
    try:
        page.goto(f"{preview_server.url}campaigns/{SLUG}/3?width=375")
        heading = page.frame_locator("iframe.email-frame").locator("h2").first
        sync_api.expect(heading).to_have_text(old_heading)
        page.wait_for_function(
            "document.getElementById('live-status').textContent.includes('Live')"
        )

        path.write_text(good.replace(old_heading, "A Brain That Rewires Itself"), "utf-8")
        # No reload from here: the page refreshes itself (bench/preview_reload.py times it).
        sync_api.expect(heading).to_have_text("A Brain That Rewires Itself", timeout=5000)
        shot(page, "step3-after-edit")

        # A broken save shows the file and line in the open page; the fix brings it back.
        lines = good.splitlines(keepends=True)
        lines[1] = 'subject = "unterminated\n'
        path.write_text("".join(lines), "utf-8")
        where = page.locator(".error-panel .error-where")
        sync_api.expect(where).to_have_text(f"campaigns/{SLUG}/03-neuroplasticity.md:2")
        shot(page, "step3-broken")
        path.write_text(good, "utf-8")
        sync_api.expect(page.frame_locator("iframe.email-frame").locator("h2").first).to_have_text(
            old_heading
        )
    finally:
        page.close()


def test_scripts_in_an_email_never_run_in_the_preview(
    browser, preview_server, project: Path
) -> None:
    # Raw HTML passes through Markdown, so an email can carry a script: the sandbox
    # (no allow-scripts) and the document's CSP must keep it inert.
    path = project / "campaigns" / SLUG / "06-other-therapies.md"
    path.write_text(
        path.read_text(encoding="utf-8")
        + '\n<p id="marker">marker</p>\n\n<script>document.body.dataset.ran = "yes";'
        "parent.document.title = 'pwned';</script>\n",
        encoding="utf-8",
    )
    preview_server.project.reload()
    page = browser.new_page(viewport={"width": 800, "height": 900})
    try:
        page.goto(f"{preview_server.url}campaigns/{SLUG}/6?width=800")
        frame = page.frame_locator("iframe.email-frame")
        sync_api.expect(frame.locator("#marker")).to_have_text("marker")
        assert frame.locator("script").count() >= 1  # the script is there...
        page.wait_for_timeout(300)
        assert frame.locator("body").get_attribute("data-ran") is None  # ...and did not run
        assert page.title() != "pwned"
    finally:
        page.close()


def test_step_page_fills_in_the_spam_score_and_lists_client_gaps(
    browser, preview_server, project: Path
) -> None:
    if shutil.which("spamassassin") is None:
        pytest.skip("spamassassin is not installed (run .ci/spamassassin.sh)")
    path = project / "campaigns" / SLUG / "05-holistic-health.md"
    path.write_text(
        path.read_text(encoding="utf-8")
        + '\n<div style="position:absolute; top:0">Badge</div>\n\n[Read more](https://example.com/m)\n',
        encoding="utf-8",
    )
    preview_server.project.reload()
    page = browser.new_page(viewport={"width": 375, "height": 900})
    try:
        page.goto(f"{preview_server.url}campaigns/{SLUG}/5?width=375")
        # preview.js fetches the score when its section comes into view, and puts it in
        # place of the link once SpamAssassin answers.
        page.locator("#spam-heading").scroll_into_view_if_needed()
        score = page.locator(".spam-slot .spam-score")
        sync_api.expect(score).to_contain_text("points for Maria, Los Angeles", timeout=60_000)
        sync_api.expect(page.locator(".spam-slot .spam-rules")).to_contain_text("HTML_MESSAGE")
        outlook = page.locator("h3.client-name", has_text="Outlook Windows")
        sync_api.expect(outlook).to_be_visible()
        sync_api.expect(page.locator("ul.client-gaps").first).to_contain_text("css-position")
        sync_api.expect(page.locator("ul.a11y-findings")).to_contain_text("'Read more'")
        assert scroll_width(page) <= 375
        assert page.evaluate(CLIPPED) == []
        shot(page, "step5-preflight", full_page=True)
    finally:
        page.close()
