"""`dripline check --spam`: every message through SpamAssassin (local tests), scored per step.

Needs Debian's spamassassin (.ci/spamassassin.sh installs it in CI); skipped without it
locally, and a skip fails CI under DRIPLINE_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from dripline.cli import main
from dripline.errors import DriplineError
from dripline.preflight import spam_reports

needs_spamassassin = pytest.mark.skipif(
    shutil.which("spamassassin") is None,
    reason="spamassassin is not installed (run .ci/spamassassin.sh)",
)
SLUG = "ketamine-therapy"
SPAMMY = """+++
subject = "FREE!!! CLAIM YOUR $$$ CASH PRIZE NOW!!! 100% GUARANTEED!!!"
preheader = "FREE!!! $1,000,000 US DOLLARS WAITING! MONEY BACK GUARANTEE!"
day = 0
send = "immediately"
+++

<a href="https://example.com/claim"><img src="https://example.com/prize.jpg" alt="Prize"
width="600" height="800"></a>
"""


def one_email(project: Path, body: str | None = None) -> Path:
    """Cut the campaign to its first email and one sample: each SpamAssassin run stays short."""
    folder = project / "campaigns" / SLUG
    for path in folder.glob("0[2-9]-*.md"):
        path.unlink()
    (folder / "preview.toml").write_text(
        '[[subscriber]]\nlabel = "Maria"\nemail = "maria@example.com"\nfirst_name = "Maria"\n',
        encoding="utf-8",
    )
    step = folder / "01-rapid-relief.md"
    if body is not None:
        step.write_text(body, encoding="utf-8")
    return step


def check(project: Path, *args: str):
    result = CliRunner().invoke(main, ["--root", str(project), "check", *args, SLUG])
    assert "Traceback" not in result.output
    return result


def spam_findings(project: Path) -> list[dict]:
    result = check(project, "--spam", "--json")
    return [f for f in json.loads(result.stdout) if f["rule"] == "spam-score"]


def score_of(finding: dict) -> float:
    return float(re.match(r"spam score (-?[\d.]+) ", finding["message"]).group(1))


@needs_spamassassin
def test_the_ketamine_campaign_scores_under_the_threshold(project):
    result = check(project, "--spam", "--json")
    assert result.exit_code == 0, result.output
    found = [f for f in json.loads(result.stdout) if f["rule"] == "spam-score"]
    # One finding per step: each step's three samples score alike, each under half of 5.0.
    assert sorted(f["step"] for f in found) == [1, 2, 3, 4, 5, 6]
    for finding in found:
        assert score_of(finding) < 5.0 / 2, finding
        assert finding["severity"] == "info"
        assert "for every sample" in finding["message"]


@needs_spamassassin
def test_a_spammy_step_scores_above_the_threshold_and_fails(project):
    step = one_email(project, SPAMMY)
    result = check(project, "--spam")
    assert result.exit_code == 1
    line = next(ln for ln in result.output.splitlines() if "spam score" in ln)
    assert line.startswith(f"{step}: error: spam score ")
    assert float(re.search(r"spam score ([\d.]+) \(threshold 5\)", line).group(1)) > 5.0
    # Rules with their points and descriptions, as SpamAssassin names them.
    assert re.search(r"0\.5 SUBJ_ALL_CAPS \(Subject is all capitals\)", line)
    assert re.search(r"[\d.]+ MONEY_BACK \(BODY: Money back guarantee\)", line)
    # Plain check does not score, so the same step passes it.
    assert check(project).exit_code == 0


@needs_spamassassin
def test_the_threshold_comes_from_the_lint_table(project):
    step = one_email(project)
    text = step.read_text(encoding="utf-8")
    subject = re.search(r'^subject = ".*"$', text, re.M).group(0)
    # A shouted subject scores 0.5 (SUBJ_ALL_CAPS): a warning above half of 0.8, an error
    # above 0.4.
    step.write_text(text.replace(subject, 'subject = "RAPID RELIEF FROM SYMPTOMS"'), "utf-8")
    toml = project / "campaigns" / SLUG / "campaign.toml"
    base = toml.read_text(encoding="utf-8")
    toml.write_text(base + "\n[lint]\nspam_threshold = 0.8\n", encoding="utf-8")
    result = check(project, "--spam", "--json")
    assert result.exit_code == 0
    found = [f for f in json.loads(result.stdout) if f["rule"] == "spam-score"]
    assert [f["severity"] for f in found] == ["warning"]
    toml.write_text(base + "\n[lint]\nspam_threshold = 0.4\n", encoding="utf-8")
    result = check(project, "--spam", "--json")
    assert result.exit_code == 1
    found = [f for f in json.loads(result.stdout) if f["rule"] == "spam-score"]
    assert [f["severity"] for f in found] == ["error"]


@needs_spamassassin
def test_user_preferences_and_learnt_state_do_not_leak_in(project, tmp_path, monkeypatch):
    one_email(project)
    expected = spam_findings(project)
    assert len(expected) == 1
    # A user whose own SpamAssassin settings would make every message spam.
    home = tmp_path / "home"
    (home / ".spamassassin").mkdir(parents=True)
    (home / ".spamassassin" / "user_prefs").write_text(
        "score HTML_MESSAGE 20\nrequired_score 0.1\n", encoding="utf-8"
    )
    monkeypatch.setenv("HOME", str(home))
    assert spam_findings(project) == expected
    assert sorted(p.name for p in (home / ".spamassassin").iterdir()) == ["user_prefs"]


def test_without_spamassassin_spam_says_so_in_one_line_and_plain_check_works(
    project, tmp_path, monkeypatch
):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    result = check(project, "--spam")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: --spam needs SpamAssassin, which is not installed "
        "(apt-get install --no-install-recommends spamassassin)"
    ]
    assert check(project).exit_code == 0


def test_a_failing_spamassassin_is_an_error_not_a_traceback(tmp_path):
    broken = tmp_path / "spamassassin"
    broken.write_text("#!/bin/sh\necho 'config: cannot read rules' >&2\nexit 2\n")
    broken.chmod(0o755)
    message = b"From: a@example.com\r\nMessage-ID: <1@example.com>\r\n\r\nHi\r\n"
    with pytest.raises(DriplineError, match=r"SpamAssassin failed \(exit 2\): config: cannot"):
        spam_reports([message], executable=str(broken))


def test_a_spamassassin_failing_mid_check_is_an_error_finding_and_json_stays_valid(
    project, tmp_path, monkeypatch
):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    broken = bin_dir / "spamassassin"
    broken.write_text("#!/bin/sh\necho 'config: cannot read rules' >&2\nexit 2\n")
    broken.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    result = check(project, "--spam", "--json")
    assert result.exit_code == 1
    found = json.loads(result.stdout)
    failed = [f for f in found if f["rule"] == "spam-score"]
    assert len(failed) == 1 and failed[0]["severity"] == "error"
    assert "SpamAssassin failed (exit 2): config: cannot read rules" in failed[0]["message"]
    assert failed[0]["file"].endswith("campaign.toml")
    # The lint's own findings are still there.
    assert any(f["rule"] == "subject-length" for f in found)
    # Without --json: the lint results, then the error, no traceback.
    text = check(project, "--spam")
    assert text.exit_code == 1
    assert "error: no spam score: SpamAssassin failed (exit 2)" in text.output
    assert "ketamine-therapy: 6 emails, 1 error(s)" in text.output


def test_without_spamassassin_json_is_still_a_json_array(project, tmp_path, monkeypatch):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    result = check(project, "--spam", "--json")
    assert result.exit_code == 1
    found = json.loads(result.stdout)
    assert any(f["rule"] == "subject-length" for f in found)
    missing = [f for f in found if f["rule"] == "spam-score"]
    assert len(missing) == 1 and "not installed" in missing[0]["message"]
    assert result.stderr.strip().splitlines() == [
        "Error: --spam needs SpamAssassin, which is not installed "
        "(apt-get install --no-install-recommends spamassassin)"
    ]
