"""SMTP replies to outcomes: enhanced status codes, queue ids, bounces (sender/_outcome.py)."""

from __future__ import annotations

import pytest

from sender import PermanentSendError, TransientSendError
from sender._outcome import Phase, Reply, enhanced_status, error_for_reply, queue_id


@pytest.mark.parametrize(
    ("code", "text", "status"),
    [
        (250, "2.0.0 Ok: queued as 4Fq2x7", "2.0.0"),
        (550, "5.1.1 <x@y>: Recipient address rejected", "5.1.1"),
        (451, "4.7.1 Greylisted", "4.7.1"),
        (550, "Requested action not taken", None),
        (550, "4.1.1 class does not match the code", None),
        (552, "5.3.4 Message too big", "5.3.4"),
        (250, "2.6.0.1 not a status", None),
    ],
)
def test_enhanced_status(code: int, text: str, status: str | None) -> None:
    assert enhanced_status(Reply(code, text)) == status


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2.0.0 Ok: queued as 4Fq2x7", "4Fq2x7"),
        ("OK id=1rAbCd-000123-XY", "1rAbCd-000123-XY"),
        ("2.0.0 OK 1700000000 a1-2xyz.123 - gsmtp", None),
    ],
)
def test_queue_id(text: str, expected: str | None) -> None:
    assert queue_id(Reply(250, text)) == expected


@pytest.mark.parametrize(
    ("phase", "code", "text", "kind", "bounce"),
    [
        (Phase.RCPT, 550, "5.1.1 User unknown", PermanentSendError, True),
        (Phase.RCPT, 550, "User unknown", PermanentSendError, True),
        (Phase.RCPT, 550, "5.2.1 Mailbox disabled", PermanentSendError, True),
        (Phase.RCPT, 550, "5.7.1 Relaying denied", PermanentSendError, False),
        (Phase.RCPT, 553, "5.1.3 Bad address syntax", PermanentSendError, True),
        (Phase.RCPT, 552, "5.2.2 Mailbox full", PermanentSendError, False),
        (Phase.MESSAGE, 550, "5.1.1 Recipient unknown after data", PermanentSendError, True),
        (Phase.MESSAGE, 554, "5.6.0 Content rejected", PermanentSendError, False),
        (Phase.MAIL, 553, "5.1.8 Sender domain unknown", PermanentSendError, False),
        (Phase.MESSAGE, 550, "5.1.7 Bad sender mailbox", PermanentSendError, False),
        (Phase.RCPT, 450, "4.2.0 Mailbox busy", TransientSendError, None),
        (Phase.MAIL, 421, "4.3.2 Shutting down", TransientSendError, None),
    ],
)
def test_classification(
    phase: Phase, code: int, text: str, kind: type, bounce: bool | None
) -> None:
    error = error_for_reply(phase, Reply(code, text), "rcpt@example.test")
    assert type(error) is kind
    assert error.code == code and error.reply == f"{code} {text}"
    if bounce is not None:
        assert isinstance(error, PermanentSendError) and error.bounce is bounce
    else:
        assert isinstance(error, TransientSendError) and not error.ambiguous
