"""`dripline send-test` through a real SMTP server, and the password never shows."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

from click.testing import CliRunner
from smtp_servers import FaultyHandler, PasswordCheck, RecordingHandler, running_server

from dripline.cli import main


def test_send_test_delivers_the_step_and_prints_the_reply(project: Path):
    handler = RecordingHandler()
    with running_server(handler) as server:
        result = CliRunner().invoke(
            main,
            [
                "--root",
                str(project),
                "send-test",
                "ketamine-therapy",
                "--step",
                "3",
                "--to",
                "qa@example.com",
                "--sender",
                f"smtp://127.0.0.1:{server.port}",
                "--allow-local-links",  # a test server, not a subscriber
            ],
        )
    assert result.exit_code == 0, result.output
    assert "Accepted: 250 2.0.0 Ok: queued as Q00001" in result.output
    (received,) = handler.received
    assert received.rcpt_tos == ("qa@example.com",)
    message = email.message_from_bytes(received.data, policy=email.policy.default)
    assert message["Subject"] == "Reason 3 of 6: Promotes neuroplasticity for long-term benefits"
    assert message.get_body(("plain",)).get_content().startswith("Hi Maria,")


def test_a_refusal_is_one_clear_error(project: Path):
    with running_server(FaultyHandler()) as server:
        result = CliRunner().invoke(
            main,
            [
                "--root",
                str(project),
                "send-test",
                "ketamine-therapy",
                "--to",
                "unknown@example.com",
                "--sender",
                f"smtp://127.0.0.1:{server.port}",
                "--allow-local-links",  # a test server, not a subscriber
            ],
        )
    assert result.exit_code == 1
    assert "Error: not accepted: 550 5.1.1" in result.output
    assert "Traceback" not in result.output


def test_login_password_comes_from_the_environment_and_is_never_printed(project: Path):
    password = "s3cret-Pa55word-xyz"
    handler = RecordingHandler()
    with running_server(
        handler, authenticator=PasswordCheck("mailer", password), auth_require_tls=False
    ) as server:
        env = {"DRIPLINE_SMTP_PASSWORD": password, "DRIPLINE_BASE_URL": "https://mail.example.org"}
        result = CliRunner(env=env).invoke(
            main,
            [
                "--root",
                str(project),
                "send-test",
                "ketamine-therapy",
                "--to",
                "qa@example.com",
                "--sender",
                f"smtp://mailer@127.0.0.1:{server.port}",
            ],
        )
    assert result.exit_code == 0, result.output
    assert len(handler.received) == 1
    assert password not in result.output
    assert "mailer" in result.output


def test_a_bad_to_address_is_one_clear_error(project: Path):
    for bad in ("a@example.com, c@example.com", "a@b@example.com", "<a@example.com>", "nobody"):
        result = CliRunner().invoke(
            main,
            [
                "--root",
                str(project),
                "send-test",
                "ketamine-therapy",
                "--to",
                bad,
                "--sender",
                "memory:bad-to",
            ],
        )
        assert result.exit_code == 1, (bad, result.output)
        assert result.output.startswith("Error: --to: "), result.output
        assert "Traceback" not in result.output
