"""The ledger's pieces: the subject as sent, a stable body digest, the campaign's git commit."""

from __future__ import annotations

import subprocess
from pathlib import Path

from dripline.ledger import body_digest, campaign_commit, sent_subject
from dripline.render import CampaignRenderer, Recipient

ROOT = Path(__file__).resolve().parent.parent


def test_subject_and_digest_read_back_from_the_fast_path_bytes(campaign):
    compiled = CampaignRenderer(campaign, ROOT / "templates").step(2)
    who = Recipient("zoe@example.com", {"first_name": "Zoë"}, "https://x.test/u/abc")
    _, first = compiled.render_bytes(who)
    _, second = compiled.render_bytes(who)
    full = compiled.render(who)
    assert sent_subject(first) == full.subject == campaign.step(2).subject
    # Each message has its own random MIME boundary and Message-ID; the body digest does not
    # depend on them, so two sends of one rendering match and another subscriber's do not.
    assert first != second
    assert body_digest(first) == body_digest(second)
    _, other = compiled.render_bytes(Recipient("ann@example.com", {"first_name": "Ann"}, ""))
    assert body_digest(other) != body_digest(first)


def test_encoded_and_folded_subject_is_decoded():
    data = (
        b"From: a@example.com\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
        b" =?utf-8?q?_aus_K=C3=B6ln?=\r\nTo: b@example.com\r\n\r\nbody\r\n"
    )
    assert sent_subject(data) == "Grüße aus Köln"


def test_commit_is_marked_dirty_when_campaign_files_differ(tmp_path: Path):
    assert campaign_commit(tmp_path) is None  # not a git repository
    (tmp_path / "campaigns").mkdir()
    (tmp_path / "campaigns" / "a.md").write_text("one\n")

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@e.st", *args],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "x")
    head = git("rev-parse", "HEAD")
    assert campaign_commit(tmp_path) == head
    (tmp_path / "notes.txt").write_text("outside campaigns/ and templates/\n")
    assert campaign_commit(tmp_path) == head
    (tmp_path / "campaigns" / "a.md").write_text("two\n")
    assert campaign_commit(tmp_path) == f"{head}-dirty"
