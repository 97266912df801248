"""Helpers for the live-edit tests: run real `dripline` processes on a project copy, edit its
campaign files as a user would (renumbering with mv), read the Maildir back."""

from __future__ import annotations

import email
import email.policy
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from dripline.cli import main

DRIPLINE = [str(Path(sys.executable).with_name("dripline"))]
SLUG = "ketamine-therapy"
REASONS = [f"Reason {n} of 6" for n in range(1, 7)]


def project_env(project: Path, db_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "DRIPLINE_ROOT": str(project),
        "DRIPLINE_SECRET_KEY": "test-secret",
        "DRIPLINE_SENDER": f"maildir:{project / 'outbox'}",
        "DRIPLINE_DATABASE_URL": db_url,
        "DRIPLINE_BASE_URL": "https://news.example.com",
        # The sample campaign sends from example.com, into a test Maildir.
        "DRIPLINE_ALLOW_EXAMPLE_ADDRESSES": "1",
    }


@dataclass(frozen=True)
class Done:
    returncode: int
    stdout: str
    stderr: str


def dripline(
    env: dict[str, str], *args: str, ok: Sequence[int] = (0,), process: bool = False
) -> Done:
    """Run `dripline ARGS` with ``env``; its exit status must be one of ``ok``.

    ``process=True`` starts a real process (the end-to-end scenario); otherwise the same
    command line runs in this process (Click's runner), which is several times faster.
    """
    if process:
        ran = subprocess.run(
            [*DRIPLINE, *args], env=env, capture_output=True, text=True, timeout=180, check=False
        )
        done = Done(ran.returncode, ran.stdout, ran.stderr)
    else:
        result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
        done = Done(result.exit_code, result.stdout, result.stderr)
    assert done.returncode in ok, f"dripline {' '.join(args)}: {done.stdout}{done.stderr}"
    return done


def dripline_json(
    env: dict[str, str], *args: str, ok: Sequence[int] = (0,), process: bool = False
) -> Any:
    return json.loads(dripline(env, *args, "--json", ok=ok, process=process).stdout)


def steps_dir(project: Path) -> Path:
    return project / "campaigns" / SLUG


def insert_step(project: Path, position: int, slug: str, front: str, body: str) -> None:
    """Insert ``NN-slug.md`` at ``position``, renumbering the later files (as `git mv` would)."""
    folder = steps_dir(project)
    files = sorted(folder.glob("[0-9][0-9]-*.md"))
    for path in reversed(files[position - 1 :]):
        number = int(path.name[:2])
        path.rename(folder / f"{number + 1:02d}-{path.name[3:]}")
    (folder / f"{position:02d}-{slug}.md").write_text(f"+++\n{front}\n+++\n{body}\n")


def remove_step(project: Path, slug: str) -> None:
    """Delete the step file named ``slug`` and renumber the later files down."""
    folder = steps_dir(project)
    files = sorted(folder.glob("[0-9][0-9]-*.md"))
    (gone,) = [p for p in files if p.name[3:] == f"{slug}.md"]
    gone.unlink()
    for path in files[files.index(gone) + 1 :]:
        number = int(path.name[:2])
        path.rename(folder / f"{number - 1:02d}-{path.name[3:]}")


def edit_step(project: Path, slug: str, old: str, new: str) -> None:
    (path,) = steps_dir(project).glob(f"[0-9][0-9]-{slug}.md")
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1))


def git_commit(project: Path, message: str) -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            [
                "git",
                "-C",
                str(project),
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@example.com",
                *args,
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    if not (project / ".git").exists():
        git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", message)
    return git("rev-parse", "HEAD")


def mailbox(project: Path) -> list[EmailMessage]:
    """Every message in the outbox Maildir, in the order sent (Date, then file time)."""
    folder = project / "outbox" / "new"
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        found.append((parsedate_to_datetime(message["Date"]), path.stat().st_mtime_ns, message))
    return [m for _, _, m in sorted(found, key=lambda item: item[:2])]


def subjects_for(project: Path, address: str) -> list[str]:
    return [str(m["Subject"]) for m in mailbox(project) if address in str(m["To"])]


def reasons(subjects: list[str]) -> list[str]:
    """The "Reason N of 6" prefix of each subject that has one, in order."""
    return [s[: len("Reason 1 of 6")] for s in subjects if s.startswith("Reason ")]
