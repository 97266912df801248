"""The SMTP sender against real aiosmtpd servers: what the server received is the evidence."""

from __future__ import annotations

import email
import email.policy
import socket
import ssl
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from smtp_servers import (
    Certificates,
    FaultyHandler,
    GatedHandler,
    PasswordCheck,
    RecordingHandler,
    make_certificates,
    running_server,
)

from sender import (
    OutgoingMessage,
    PermanentSendError,
    Sender,
    SenderConfigError,
    SendError,
    SendResult,
    TransientSendError,
    create_sender,
)
from sender.smtp import SmtpSender

PASSWORD = "s3cret-Pa55-" + uuid.uuid4().hex[:8]


def make_message(to: str = "alice@example.test", subject: str = "Hello") -> OutgoingMessage:
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = "Dripline <news@example.test>"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@example.test>"
    # A line starting with a dot must survive dot-stuffing unchanged.
    msg.set_content(f"Hi {to},\n.a line that starts with a dot\n..and two\nbye\n")
    return OutgoingMessage("news@example.test", (to,), msg.as_bytes(), msg["Message-ID"])


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


def server_tls_context(certs: Certificates) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs.cert_file, certs.key_file)
    return context


@pytest.mark.parametrize("pipelining", [False, True], ids=["lockstep", "pipelining"])
def test_plain_messages_arrive_intact_over_one_reused_connection(pipelining: bool) -> None:
    handler = RecordingHandler(pipelining=pipelining)
    with running_server(handler) as server:
        messages = [make_message(f"user{i}@example.test") for i in range(3)]
        with create_sender(f"smtp://127.0.0.1:{server.port}") as sender:
            results = [sender.send(m) for m in messages]
    assert [r.message_id for r in results] == [m.message_id for m in messages]
    assert [r.queue_id for r in results] == ["Q00001", "Q00002", "Q00003"]
    assert results[0].code == 250 and results[0].enhanced_status == "2.0.0"
    assert results[0].reply == "250 2.0.0 Ok: queued as Q00001"
    assert [r.data for r in handler.received] == [m.data for m in messages]
    assert [r.rcpt_tos for r in handler.received] == [m.recipients for m in messages]
    assert len(handler.sessions) == 1  # one EHLO: the connection was reused


def test_starttls_with_the_test_ca_encrypts_the_session(certificates: Certificates) -> None:
    handler = RecordingHandler()
    tls = server_tls_context(certificates)
    with running_server(handler, tls_context=tls, require_starttls=True) as server:
        url = f"smtp://localhost:{server.port}?starttls=required&cafile={certificates.ca_file}"
        with create_sender(url) as sender:
            result = sender.send(make_message())
    assert result.queue_id == "Q00001"
    assert handler.received[0].tls


def test_starttls_without_the_ca_is_a_configuration_error(certificates: Certificates) -> None:
    tls = server_tls_context(certificates)
    with running_server(RecordingHandler(), tls_context=tls, require_starttls=True) as server:
        sender = create_sender(f"smtp://localhost:{server.port}?starttls=required")
        with pytest.raises(SenderConfigError, match="certificate verify failed"):
            sender.send(make_message())


def test_required_starttls_refuses_a_server_without_it() -> None:
    handler = RecordingHandler()
    with running_server(handler) as server:
        sender = create_sender(f"smtp://127.0.0.1:{server.port}?starttls=required")
        with pytest.raises(SenderConfigError, match="does not offer STARTTLS"):
            sender.send(make_message())
        with create_sender(f"smtp://127.0.0.1:{server.port}?starttls=opportunistic") as fallback:
            fallback.send(make_message())
    assert len(handler.received) == 1 and not handler.received[0].tls


def test_smtps_uses_implicit_tls(certificates: Certificates) -> None:
    handler = RecordingHandler()
    with (
        running_server(handler, ssl_context=server_tls_context(certificates)) as server,
        create_sender(f"smtps://localhost:{server.port}?cafile={certificates.ca_file}") as s,
    ):
        s.send(make_message())
    assert handler.received[0].tls


def test_auth_after_starttls(certificates: Certificates) -> None:
    check = PasswordCheck("bob", PASSWORD)
    handler = RecordingHandler()
    tls = server_tls_context(certificates)
    options = {"tls_context": tls, "authenticator": check, "auth_required": True}
    with running_server(handler, **options) as server:  # AUTH is offered only after STARTTLS
        url = f"smtp://bob@localhost:{server.port}?starttls=required&cafile={certificates.ca_file}"
        with create_sender(url, secrets={"DRIPLINE_SMTP_PASSWORD": PASSWORD}) as sender:
            sender.send(make_message())
    assert handler.received[0].tls and check.mechanisms == ["PLAIN"]


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_auth_logs_in_and_the_password_never_shows(
    mechanism: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level("DEBUG")
    check = PasswordCheck("alice@example.test", PASSWORD)
    handler = RecordingHandler()
    other = {"PLAIN": "LOGIN", "LOGIN": "PLAIN"}[mechanism]
    options = {
        "authenticator": check,
        "auth_required": True,
        "auth_require_tls": False,  # loopback: the test has no TLS here
        "auth_exclude_mechanism": [other],
    }
    with running_server(handler, **options) as server:
        url = f"smtp://alice%40example.test@127.0.0.1:{server.port}"
        secrets = {"DRIPLINE_SMTP_PASSWORD": PASSWORD}
        with create_sender(url, secrets=secrets) as sender:
            result = sender.send(make_message())
            shown = sender.display_url
            print(sender, shown, repr(getattr(sender, "config", None)))
        wrong = create_sender(url, secrets={"DRIPLINE_SMTP_PASSWORD": "wrong-" + PASSWORD})
        with pytest.raises(SenderConfigError) as refused:
            wrong.send(make_message())
    assert result.code == 250 and len(handler.received) == 1
    assert check.mechanisms[0] == mechanism
    assert shown == f"smtp://alice%40example.test:***@127.0.0.1:{server.port}"
    assert "login refused" in str(refused.value) and "535" in str(refused.value)
    everything = "\n".join(
        [
            caplog.text,
            capsys.readouterr().out,
            shown,
            "".join(traceback.format_exception(refused.value)),
        ]
    )
    assert "alice" in everything  # the user may show...
    assert PASSWORD not in everything  # ...the password never


def test_a_server_without_auth_is_a_configuration_error() -> None:
    with running_server(RecordingHandler()) as server:  # aiosmtpd offers AUTH only over TLS
        sender = create_sender(
            f"smtp://dave@127.0.0.1:{server.port}", secrets={"DRIPLINE_SMTP_PASSWORD": PASSWORD}
        )
        with pytest.raises(SenderConfigError, match="AUTH") as err:
            sender.send(make_message())
    assert PASSWORD not in "".join(traceback.format_exception(err.value))


def test_a_password_in_the_url_is_refused_without_echoing_it() -> None:
    with pytest.raises(SenderConfigError) as err:
        create_sender(f"smtp://bob:{PASSWORD}@127.0.0.1:2525")
    assert "DRIPLINE_SMTP_PASSWORD" in str(err.value)
    assert PASSWORD not in "".join(traceback.format_exception(err.value))


def outcome(sender: Sender, message: OutgoingMessage) -> SendResult | SendError:
    try:
        return sender.send(message)
    except SendError as err:
        return err


@pytest.mark.parametrize("pipelining", [False, True], ids=["lockstep", "pipelining"])
def test_faults_are_classified_and_a_retry_loop_delivers_each_message_once(
    pipelining: bool,
) -> None:
    handler = FaultyHandler(pipelining=pipelining, stall_seconds=2.5)
    names = ["ok1", "defer-once", "unknown", "policy", "close421", "drop-in-data", "stall", "ok2"]
    messages = {name: make_message(f"{name}@example.test") for name in names}
    with running_server(handler) as server:
        with create_sender(f"smtp://127.0.0.1:{server.port}?timeout=1") as sender:
            assert isinstance(sender, SmtpSender)
            first = {name: outcome(sender, m) for name, m in messages.items()}
            # What a dispatcher does: retry transient failures unless ambiguous.
            retry = [
                name
                for name, result in first.items()
                if isinstance(result, TransientSendError) and not result.ambiguous
            ]
            second = {name: outcome(sender, messages[name]) for name in retry}
        time.sleep(0.2)
        counts = handler.message_ids()

    assert isinstance(first["ok1"], SendResult) and isinstance(first["ok2"], SendResult)
    deferred = first["defer-once"]
    assert isinstance(deferred, TransientSendError) and not deferred.ambiguous
    assert (deferred.code, deferred.enhanced_status) == (451, "4.3.0")
    unknown = first["unknown"]
    assert isinstance(unknown, PermanentSendError) and unknown.bounce
    assert (unknown.code, unknown.enhanced_status) == (550, "5.1.1")
    policy = first["policy"]
    assert isinstance(policy, PermanentSendError) and not policy.bounce
    closed = first["close421"]
    assert isinstance(closed, TransientSendError) and closed.code == 421
    dropped = first["drop-in-data"]
    assert isinstance(dropped, TransientSendError) and dropped.ambiguous
    stalled = first["stall"]
    assert isinstance(stalled, TransientSendError) and not stalled.ambiguous
    assert "timed out" in str(stalled)

    assert sorted(retry) == ["close421", "defer-once", "stall"]
    assert all(isinstance(r, SendResult) for r in second.values()), second
    expected = {messages[n].message_id: 1 for n in names if n not in ("unknown", "policy")}
    assert dict(counts) == expected  # exactly once; the ambiguous one did arrive, once


def test_no_reply_to_the_end_of_data_in_time_is_ambiguous() -> None:
    handler = FaultyHandler(pipelining=True, stall_seconds=2.0)
    slow, after = make_message("stall-in-data@example.test"), make_message("ok@example.test")
    with (
        running_server(handler) as server,
        create_sender(f"smtp://127.0.0.1:{server.port}?timeout=0.8") as sender,
    ):
        with pytest.raises(TransientSendError, match="timed out") as late:
            sender.send(slow)
        result = sender.send(after)  # on a fresh connection
    assert late.value.ambiguous and "may have been delivered" in str(late.value)
    assert result.code == 250
    assert dict(handler.message_ids()) == {slow.message_id: 1, after.message_id: 1}


def test_refused_recipients_do_not_cost_the_connection() -> None:
    handler = FaultyHandler(pipelining=True)
    with (
        running_server(handler) as server,
        create_sender(f"smtp://127.0.0.1:{server.port}") as sender,
    ):
        for name in ["ok1", "unknown", "defer-once", "policy", "ok2"]:
            outcome(sender, make_message(f"{name}@example.test"))
    assert [r.rcpt_tos[0].split("@")[0] for r in handler.received] == ["ok1", "ok2"]
    assert len(handler.sessions) == 1  # RSET kept the session usable


def test_a_connection_closed_while_idle_is_replaced_transparently() -> None:
    handler = RecordingHandler(pipelining=True)
    with (
        running_server(handler) as server,
        create_sender(f"smtp://127.0.0.1:{server.port}") as sender,
    ):
        first = make_message("one@example.test")
        sender.send(first)
        handler.drop_all_connections(server.loop)
        second = make_message("two@example.test")
        result = sender.send(second)
    assert result.code == 250
    assert dict(handler.message_ids()) == {first.message_id: 1, second.message_id: 1}


def test_a_server_that_never_greets_times_out_as_transient() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(TransientSendError, match="cannot connect"):
            create_sender(f"smtp://127.0.0.1:{port}?timeout=0.3").send(make_message())
        assert time.monotonic() - started < 3


def test_nobody_listening_is_transient() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound but not listening: connection refused
        with pytest.raises(TransientSendError, match="cannot connect"):
            create_sender(f"smtp://127.0.0.1:{port}").send(make_message())


@pytest.fixture
def recording_server() -> Iterator[tuple[RecordingHandler, int]]:
    handler = RecordingHandler(pipelining=True)
    with running_server(handler) as server:
        yield handler, server.port


def test_send_many_uses_the_pool_and_keeps_the_order() -> None:
    # The server answers no message until four sessions are open: a batch that did not
    # spread over the pool would stall on its first message, whatever the machine's load.
    handler = GatedHandler(sessions=4)
    messages = [make_message(f"user{i}@example.test") for i in range(40)]
    with (
        running_server(handler) as server,
        create_sender(f"smtp://127.0.0.1:{server.port}?connections=4&timeout=60") as sender,
    ):
        results = sender.send_many(messages)
    assert [r.message_id for r in results] == [m.message_id for m in messages]
    assert all(isinstance(r, SendResult) for r in results)
    assert sorted(handler.message_ids().values()) == [1] * 40
    assert handler.open_before_first_reply == 4  # all four in use at once...
    assert len(handler.sessions) == 4  # ...and never a fifth


def test_send_many_reports_each_refusal_in_place() -> None:
    handler = FaultyHandler(pipelining=True)
    names = ["a", "unknown", "b", "policy", "c", "d"]
    with (
        running_server(handler) as server,
        create_sender(f"smtp://127.0.0.1:{server.port}?connections=3") as sender,
    ):
        results = sender.send_many([make_message(f"{n}@example.test") for n in names])
    kinds = [type(r).__name__ for r in results]
    assert (
        kinds
        == ["SendResult", "PermanentSendError", "SendResult", "PermanentSendError"]
        + ["SendResult"] * 2
    )
    assert len(handler.received) == 4


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_a_login_refused_mid_batch_stops_it_and_keeps_what_was_sent() -> None:
    check = PasswordCheck("carol", PASSWORD, logins_allowed=1)  # the second session is refused
    handler = RecordingHandler(pipelining=True)
    options = {"authenticator": check, "auth_required": True, "auth_require_tls": False}
    messages = [make_message(f"user{i}@example.test") for i in range(200)]
    with running_server(handler, **options) as server:
        url = f"smtp://carol@127.0.0.1:{server.port}?connections=2"
        sender = create_sender(url, secrets={"DRIPLINE_SMTP_PASSWORD": PASSWORD})
        with sender, pytest.raises(SenderConfigError, match="login refused") as stopped:
            sender.send_many(messages)
    results = stopped.value.results
    assert results is not None and len(results) == 200
    sent = [m.message_id for m, r in zip(messages, results, strict=True) if r is not None]
    assert all(isinstance(r, SendResult) for r in results if r is not None)
    assert None in results  # the batch stopped...
    assert sorted(handler.message_ids()) == sorted(sent)  # ...and every send was reported


@pytest.mark.parametrize("connections", [1, 4])
def test_an_unreachable_relay_defers_the_whole_batch_quickly(connections: int) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)  # accepts connections, never greets: every session times out
        url = f"smtp://127.0.0.1:{silent.getsockname()[1]}?connections={connections}&timeout=0.3"
        started = time.monotonic()
        results = create_sender(url).send_many([make_message() for _ in range(50)])
        elapsed = time.monotonic() - started
    assert len(results) == 50
    assert all(isinstance(r, TransientSendError) and not r.ambiguous for r in results)
    assert "cannot connect" in str(results[-1])
    assert elapsed < 3  # not 50 timeouts one after another


@pytest.mark.parametrize("connections", [1, 3])
def test_a_relay_that_goes_away_mid_run_defers_the_rest(connections: int) -> None:
    handler = RecordingHandler(pipelining=True)
    first = [make_message() for _ in range(5)]
    later = [make_message() for _ in range(40)]
    server = running_server(handler)
    port = server.__enter__().port
    url = f"smtp://127.0.0.1:{port}?connections={connections}&timeout=0.3"
    with create_sender(url) as sender, socket.socket() as silent:
        assert all(isinstance(r, SendResult) for r in sender.send_many(first))
        server.__exit__(None, None, None)  # the relay is gone; pooled sessions are dead...
        silent.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        silent.bind(("127.0.0.1", port))
        silent.listen(64)  # ...and what answers on its port now never greets
        started = time.monotonic()
        results = sender.send_many(later)
        elapsed = time.monotonic() - started
    assert all(isinstance(r, TransientSendError) and not r.ambiguous for r in results)
    assert elapsed < 2.5  # one round of timeouts, not 40 / connections of them
    assert dict(handler.message_ids()) == {m.message_id: 1 for m in first}


def test_many_threads_share_n_connections(recording_server: tuple[RecordingHandler, int]) -> None:
    handler, port = recording_server
    sender = create_sender(f"smtp://127.0.0.1:{port}?connections=3")
    errors: list[BaseException] = []

    def send_ten(thread: int) -> None:
        try:
            for i in range(10):
                sender.send(make_message(f"t{thread}-{i}@example.test"))
        except BaseException as err:  # collected for the assertion below
            errors.append(err)

    threads = [threading.Thread(target=send_ten, args=(t,)) for t in range(8)]
    with sender:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    assert sorted(handler.message_ids().values()) == [1] * 80
    assert len(handler.sessions) <= 3


def test_rate_limit_spaces_messages_across_all_connections(
    recording_server: tuple[RecordingHandler, int],
) -> None:
    handler, port = recording_server
    # A rate no other test uses, so this test gets a bucket of its own.
    with create_sender(f"smtp://127.0.0.1:{port}?connections=4&rate=23/s") as sender:
        sender.send_many([make_message(f"user{i}@example.test") for i in range(24)])
    stamps = sorted(r.at for r in handler.received)
    span = stamps[-1] - stamps[0]
    assert 23 / 23 * 0.8 <= span <= 3.0  # 24 messages at 23/s: about one second
    per_window = max(sum(1 for s in stamps if start <= s < start + 0.5) for start in stamps)
    assert per_window <= 23 * 0.5 + 3  # never a burst of the whole batch


def test_closed_sender_refuses_to_send(tmp_path: Path) -> None:
    handler = RecordingHandler()
    with running_server(handler) as server:
        sender = create_sender(f"smtp://127.0.0.1:{server.port}")
        with sender:
            sender.send(make_message())
        with pytest.raises(SenderConfigError, match="closed"):
            sender.send(make_message())
    parsed = email.message_from_bytes(handler.received[0].data, policy=email.policy.default)
    assert parsed["Subject"] == "Hello"
