"""Writing campaign folders (dripline/article/_writer.py)."""

from __future__ import annotations

import shutil
import tempfile
import tomllib
from pathlib import Path

import jinja2
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from dripline.article import ArticleError, load_article, parse_article, plan_campaign
from dripline.article import write_campaign as write_campaign_folder
from dripline.article._writer import GREETING, toml_string
from dripline.campaign import load_campaign
from dripline.cli import main

FIXTURES = Path(__file__).resolve().parent / "fixtures"
ALL_ARTICLES = [
    FIXTURES / "ketamine-therapy-article.txt",
    *sorted((FIXTURES / "articles").iterdir()),
]


def _blocks(body: str) -> list[str]:
    return [block.strip() for block in body.split("\n\n") if block.strip()]


@given(st.text())
def test_toml_string_round_trips_any_text(value):
    assert tomllib.loads(f"key = {toml_string(value)}")["key"] == value


@pytest.mark.parametrize("path", ALL_ARTICLES, ids=lambda p: p.name)
def test_every_fixture_article_becomes_a_campaign_that_loads(path, tmp_path):
    article = load_article(path)
    plan = plan_campaign(article, "imported", every=3)
    folder = write_campaign_folder(plan, tmp_path / "campaigns")
    campaign = load_campaign(folder)
    total = len(article.sections)
    assert campaign.name == article.title
    assert campaign.utm["utm_campaign"] == "imported"
    assert "EDIT ME" in campaign.from_name and campaign.from_address.endswith("@example.com")
    assert "EDIT ME" in campaign.postal_address
    assert [s.day for s in campaign.steps] == [3 * k for k in range(total)]
    assert [s.send_immediately for s in campaign.steps] == [True] + [False] * (total - 1)
    for step, section in zip(campaign.steps, article.sections, strict=True):
        assert step.subject.startswith(f"Reason {step.number} of {total}: ")
        assert step.subject.lower().endswith(section.heading.lower())
        assert 0 < len(step.preheader) < 90
        blocks = _blocks(step.body)
        assert blocks[0] == GREETING
        # Exactly one section per email: its heading, then its blocks verbatim, then a closing.
        headings = [b for b in blocks if b.startswith("## ")]
        assert headings == [f"## {section.heading}"]
        at = blocks.index(headings[0])
        assert blocks[at + 1 : at + 1 + len(section.blocks)] == list(section.blocks)
        assert len(blocks) == at + len(section.blocks) + 2
    first = _blocks(campaign.steps[0].body)
    assert first[1 : 1 + len(article.intro)] == list(article.intro)
    # `dripline check` fails on exactly the placeholders left to fill in, and nothing else.
    shutil.copytree(Path(__file__).resolve().parent.parent / "templates", tmp_path / "templates")
    result = CliRunner().invoke(main, ["--root", str(tmp_path), "check", "imported"])
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if ": error: " in line]
    toml = folder / "campaign.toml"
    assert [line.split(": error: ")[1].split(" is ")[0] for line in errors] == [
        "from.name",
        "from.address",
        "footer.postal_address",
    ], result.output
    assert all(line.startswith(f"{toml}:") and "placeholder" in line for line in errors)
    assert "imported: " in result.output and "3 error(s)" in result.output


def test_article_text_that_looks_like_jinja_reaches_the_reader_as_written(tmp_path):
    text = (
        "Two Templating Tips\n\nUse {{ name }} and {% if %} blocks; comments look like {# x #}.\n\n"
        "First Tip\n\nWrite {{ subscriber.first_name }} to greet people by name.\n\n"
        'Second "Quoted" Tip \\ Slash\n\nBraces {{{ are fine.\n'
    )
    article = parse_article(text, Path("tips.txt"), "text")
    folder = write_campaign_folder(plan_campaign(article, "tips"), tmp_path)
    campaign = load_campaign(folder)
    rendered = [
        jinja2.Environment(undefined=jinja2.StrictUndefined)
        .from_string(step.body)
        .render(subscriber={"first_name": "Ana"})
        for step in campaign.steps
    ]
    assert rendered[0].lstrip().startswith("Hi Ana,")
    assert "Use {{ name }} and {% if %} blocks; comments look like {# x #}." in rendered[0]
    assert "Write {{ subscriber.first_name }} to greet people by name." in rendered[0]
    assert "Braces {{{ are fine." in rendered[1]
    # Quotes and backslashes in headings survive the TOML front matter.
    assert campaign.steps[1].subject == 'Reason 2 of 2: Second "quoted" tip \\ slash'
    assert campaign.name == "Two Templating Tips"


def test_existing_campaign_is_kept_without_force(tmp_path):
    article = load_article(ALL_ARTICLES[0])
    folder = write_campaign_folder(plan_campaign(article, "k"), tmp_path)
    (folder / "campaign.toml").write_text("# edited by hand\n", encoding="utf-8")
    with pytest.raises(ArticleError, match="already exists; use --force") as caught:
        write_campaign_folder(plan_campaign(article, "k"), tmp_path)
    assert caught.value.path == folder
    assert (folder / "campaign.toml").read_text(encoding="utf-8") == "# edited by hand\n"


def test_force_replaces_the_emails_but_keeps_other_files(tmp_path):
    walking = load_article(FIXTURES / "articles" / "walking-numbered.txt")
    folder = write_campaign_folder(plan_campaign(walking, "k"), tmp_path)
    (folder / "notes.txt").write_text("keep me", encoding="utf-8")
    (folder / "images").mkdir()
    (folder / "images" / "hero.png").write_bytes(b"\x89PNG")
    tea = load_article(FIXTURES / "articles" / "tea-reason-labels.txt")
    write_campaign_folder(plan_campaign(tea, "k"), tmp_path, force=True)
    campaign = load_campaign(folder)
    assert len(campaign.steps) == 4  # the walking article's emails 05-07 are gone
    assert campaign.name == "Top 4 Reasons to Drink Green Tea"
    assert (folder / "notes.txt").read_text(encoding="utf-8") == "keep me"
    assert (folder / "images" / "hero.png").read_bytes() == b"\x89PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k"]  # no staging folders left


@pytest.mark.parametrize(("slug", "every"), [("Bad Slug", 2), ("-x", 2), ("ok", 0)])
def test_bad_slug_or_interval_is_refused(slug, every):
    article = load_article(ALL_ARTICLES[0])
    with pytest.raises(ArticleError):
        plan_campaign(article, slug, every)


def test_duplicate_headings_get_distinct_file_names(tmp_path):
    text = "Tips\n\nIntro.\n\nDo This\n\nOne thing.\n\nDo This\n\nAnother.\n\nΩμέγα Ψ\n\nOdd.\n"
    plan = plan_campaign(parse_article(text, Path("t.txt"), "text"), "t")
    names = [e.file_name for e in plan.emails]
    assert names == ["01-do-this.md", "02-do-this-2.md", "03-reason-3.md"]


_PIECES = [
    *"aAbZ .?!:\n#-*1)[](<>/{}\"'\\%",
    "\n\n", "<h2>", "</h2>", "<h1>", "<p>", "## ", "# ", "\n---\n", "Reason 3: ", "Top 6 Reasons",
    "TherapiesKetamine ", "<ul><li>", "&amp;", "<!--", "\x00", "\u00a0", "+++\n", "\r", "{{", "{%",
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(_PIECES), max_size=60).map("".join),
    st.sampled_from(["text", "markdown", "html"]),
)
def test_any_input_is_an_article_error_or_a_campaign_that_loads_and_renders(text, fmt):
    try:
        article = parse_article(text, Path("fuzz"), fmt)
    except ArticleError:
        return
    with tempfile.TemporaryDirectory() as folder:
        campaign = load_campaign(write_campaign_folder(plan_campaign(article, "f"), Path(folder)))
        for step in campaign.steps:
            jinja2.Environment().from_string(step.body).render(subscriber={})
            assert not any(c in step.subject for c in "\r\n\0")


def test_failed_write_leaves_the_old_content_and_no_half_campaign(tmp_path):
    (tmp_path / "k").write_text("not a folder", encoding="utf-8")
    article = load_article(ALL_ARTICLES[0])
    with pytest.raises(ArticleError, match="cannot write the campaign") as caught:
        write_campaign_folder(plan_campaign(article, "k"), tmp_path, force=True)
    assert caught.value.path == tmp_path / "k"
    assert (tmp_path / "k").read_text(encoding="utf-8") == "not a folder"
    assert [p.name for p in tmp_path.iterdir()] == ["k"]
