"""The links tracking rewrites are the real href attributes, found by parsing: any legal
quoting or case, never data-href, comments or scripts; the rest of the template is kept
byte for byte. Then the same through a real step, its rendered email, and `dripline check`."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

from click.testing import CliRunner

from dripline._hrefs import find_hrefs, rewrite_hrefs
from dripline.campaign import load_campaign
from dripline.cli import main
from dripline.render import CampaignRenderer, Recipient

SLUG = "ketamine-therapy"


class _Links(HTMLParser):
    """What a browser follows: each <a>'s first href (the stdlib parser, not ours)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            values = [v for k, v in attrs if k == "href"]
            if values:
                self.hrefs.append(values[0] or "")


def followed(html: str) -> list[str]:
    parser = _Links()
    parser.feed(html)
    return parser.hrefs


def test_every_legal_spelling_of_href_is_found_and_nothing_else() -> None:
    html = (
        '<p><a data-href="https://a.example/x" href="https://b.example/y">one</a>\n'
        "<A HREF='https://c.example/z?q=1&amp;r=2'>two</A>\n"
        "<a class=btn href = https://d.example/u>three</a>\n"
        '<a\n  title="x > y"\n  Href="https://e.example/">four</a>\n'
        '<!-- <a href="https://commented.example/"> -->\n'
        '<script>var s = "<a href=\\"https://script.example/\\">";</script>\n'
        '<a href="https://f.example/" href="https://ignored.example/">five</a>\n'
        '<area shape=rect href="https://g.example/">'
        '<link href="https://style.example/x.css"><a href>bare</a></p>'
    )
    found = find_hrefs(html)
    assert [h.url for h in found] == [
        "https://b.example/y",
        "https://c.example/z?q=1&r=2",
        "https://d.example/u",
        "https://e.example/",
        "https://f.example/",
        "https://g.example/",
    ]
    assert [h.line for h in found] == [1, 2, 3, 6, 9, 10]
    rewritten = rewrite_hrefs(html, lambda url: url.upper().replace("&", "&amp;"))
    # A browser now follows exactly the new values; everything else is untouched.
    assert followed(rewritten) == [
        "HTTPS://B.EXAMPLE/Y",
        "HTTPS://C.EXAMPLE/Z?Q=1&R=2",
        "HTTPS://D.EXAMPLE/U",
        "HTTPS://E.EXAMPLE/",
        "HTTPS://F.EXAMPLE/",
        "",
    ]
    for kept in (
        'data-href="https://a.example/x"',
        "https://commented.example/",
        "https://script.example/",
        "https://ignored.example/",
        "https://style.example/x.css",
        'title="x > y"',
    ):
        assert kept in rewritten
    assert rewrite_hrefs(html, lambda url: None) == html


def test_a_step_with_hand_written_links_is_tracked_exactly(project: Path) -> None:
    folder = project / "campaigns" / SLUG
    toml = folder / "campaign.toml"
    toml.write_text(toml.read_text(encoding="utf-8") + "\n[tracking]\nclicks = true\n")
    step = folder / "01-rapid-relief.md"
    step.write_text(
        step.read_text(encoding="utf-8")
        + '\n<p><a data-href="https://a.example/x" href="https://b.example/y">Both</a>'
        + " <A HREF='https://c.example/z'>Upper</A></p>\n",
        encoding="utf-8",
    )
    campaign = load_campaign(folder)
    compiled = CampaignRenderer(campaign, project / "templates").step(1)
    assert [u.split("?")[0] for u in compiled.tracked_urls] == [
        "https://b.example/y",
        "https://c.example/z",
    ]
    assert all("utm_source=" in u for u in compiled.tracked_urls)
    tracked = tuple(f"https://news.example.com/c/T{i}" for i in range(2))
    email = compiled.render(
        Recipient("ada@example.com", {}, "https://news.example.com/u/U", tracked)
    )
    hrefs = followed(email.html)
    assert tracked[0] in hrefs and tracked[1] in hrefs
    assert not any(h.startswith(("https://b.example", "https://c.example")) for h in hrefs)
    assert 'data-href="https://a.example/x"' in email.html  # not a link: left as written


def test_check_warns_about_links_tracking_cannot_follow(project: Path) -> None:
    folder = project / "campaigns" / SLUG
    toml = folder / "campaign.toml"
    toml.write_text(toml.read_text(encoding="utf-8") + "\n[tracking]\nclicks = true\n")
    step = folder / "02-treatment-resistant.md"
    before = step.read_text(encoding="utf-8")
    step.write_text(
        before + "\n[Your page](https://book.example/p/{{ subscriber.email }})\n",
        encoding="utf-8",
    )
    jinja_line = before.count("\n") + 2
    layout = project / "templates" / "base.html"
    text = layout.read_text(encoding="utf-8")
    marker = '<a href="{{ unsubscribe_url }}">'
    layout.write_text(
        text.replace(marker, '<a href="https://help.example/faq">Help</a> ' + marker),
        encoding="utf-8",
    )
    layout_line = text[: text.index(marker)].count("\n") + 1
    result = CliRunner().invoke(main, ["--root", str(project), "check", "--json"])
    findings = [f for f in json.loads(result.stdout) if f["rule"] == "untracked-link"]
    where = {(Path(f["file"]).name, f["line"], f["severity"]) for f in findings}
    assert ("02-treatment-resistant.md", jinja_line, "warning") in where
    assert ("base.html", layout_line, "warning") in where
    layout_finding = next(f for f in findings if f["file"].endswith("base.html"))
    assert "https://help.example/faq" in layout_finding["message"]
    # Without click tracking there is nothing to warn about.
    toml.write_text(toml.read_text(encoding="utf-8").replace("clicks = true", "clicks = false"))
    result = CliRunner().invoke(main, ["--root", str(project), "check", "--json"])
    assert not [f for f in json.loads(result.stdout) if f["rule"] == "untracked-link"]
