"""One round trip per message: the next envelope rides behind the data (RFC 2920 3.1).

What the server saw (a raw server that notes whether the next MAIL FROM came with the
final ``.``, and aiosmtpd servers that misbehave on purpose) is the evidence: each
fault of the message in flight must leave the message announced behind it sent exactly
once, or not at all when the batch stops.
"""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest
from smtp_servers import FaultyHandler, LookaheadServer, RecordingHandler, running_server
from test_sender_smtp import make_message

from sender import PermanentSendError, SendResult, TransientSendError, create_sender


@pytest.mark.parametrize("connections", [1, 2])
def test_the_next_envelope_goes_out_with_the_final_dot(connections: int) -> None:
    messages = [make_message(f"user{i}@example.test") for i in range(6)]
    with LookaheadServer() as server:
        url = f"smtp://127.0.0.1:{server.port}?connections={connections}"
        with create_sender(url) as sender:
            results = sender.send_many(messages)
    assert all(isinstance(r, SendResult) for r in results), results
    assert sorted(server.messages) == sorted(m.data for m in messages)
    # Per session, every message but its last had the next one's MAIL FROM right behind it.
    # (On a loaded machine one session may send them all before the other starts.)
    assert 1 <= server.connections <= connections
    assert server.ahead.count(False) == server.connections
    assert server.ahead.count(True) == len(messages) - server.connections


@pytest.mark.parametrize(
    ("pipelining", "query"),
    [(False, ""), (True, "&rate=1000/s")],
    ids=["server-without-pipelining", "rate-limited"],
)
def test_no_envelope_goes_ahead_without_pipelining_or_under_a_rate(
    pipelining: bool, query: str
) -> None:
    messages = [make_message(f"user{i}@example.test") for i in range(3)]
    with LookaheadServer(pipelining=pipelining, patience=0.3) as server:
        url = f"smtp://127.0.0.1:{server.port}?connections=1{query}"
        with create_sender(url) as sender:
            results = sender.send_many(messages)
    assert all(isinstance(r, SendResult) for r in results), results
    assert server.ahead == [False, False, False]


def test_pipelining_off_waits_for_every_reply_even_when_the_relay_offers_it() -> None:
    """``?pipelining=off``, for a relay that offers PIPELINING and then mishandles it:
    each command waits for the reply to the one before, and nothing is announced."""
    messages = [make_message(f"user{i}@example.test") for i in range(3)]
    with (
        LookaheadServer(patience=0.3) as server,
        create_sender(server.url + "?pipelining=off") as sender,
    ):
        results = sender.send_many(messages)
    assert all(isinstance(r, SendResult) for r in results), results
    assert sorted(server.messages) == sorted(m.data for m in messages)
    assert server.ahead == [False, False, False]
    assert server.grouped == [False, False, False]
    # The same relay with the default: MAIL, RCPT and DATA go together.
    with LookaheadServer(patience=0.3) as server, create_sender(server.url) as sender:
        sender.send_many(messages)
    assert server.grouped == [True, True, True]


def test_one_message_at_a_time_announces_nothing() -> None:
    with LookaheadServer(patience=0.3) as server, create_sender(server.url) as sender:
        for i in range(2):
            sender.send(make_message(f"user{i}@example.test"))
    assert server.ahead == [False, False]


@pytest.mark.parametrize("connections", [1, 3])
def test_each_fault_leaves_the_message_behind_it_sent_once(connections: int) -> None:
    # Every fault sits between two good messages: its envelope rode behind the data of
    # the one before, and the next one's envelope behind its own data (if it got there).
    handler = FaultyHandler(pipelining=True, stall_seconds=2.5)
    faults = ["unknown", "policy", "defer-once", "close421", "drop-in-data", "stall"]
    names = [f"ok{i}" for i in range(len(faults) + 1)]
    order = [n for pair in zip(names, [*faults, ""], strict=True) for n in pair if n]
    messages = {name: make_message(f"{name}@example.test") for name in order}
    with running_server(handler) as server:
        url = f"smtp://127.0.0.1:{server.port}?connections={connections}&timeout=1"
        with create_sender(url) as sender:
            first = dict(zip(order, sender.send_many(list(messages.values())), strict=True))
            retry = [
                name
                for name, result in first.items()
                if isinstance(result, TransientSendError) and not result.ambiguous
            ]
            second = dict(zip(retry, sender.send_many([messages[n] for n in retry]), strict=True))
    counts = handler.message_ids()

    assert all(isinstance(first[n], SendResult) for n in names), first
    assert isinstance(first["unknown"], PermanentSendError) and first["unknown"].bounce
    assert isinstance(first["policy"], PermanentSendError) and not first["policy"].bounce
    assert isinstance(first["defer-once"], TransientSendError) and first["defer-once"].code == 451
    assert isinstance(first["close421"], TransientSendError) and first["close421"].code == 421
    dropped = first["drop-in-data"]
    assert isinstance(dropped, TransientSendError) and dropped.ambiguous
    stalled = first["stall"]
    assert isinstance(stalled, TransientSendError) and not stalled.ambiguous
    assert sorted(retry) == ["close421", "defer-once", "stall"]
    assert all(isinstance(r, SendResult) for r in second.values()), second
    expected = {messages[n].message_id: 1 for n in order if n not in ("unknown", "policy")}
    assert dict(counts) == expected  # exactly once; the ambiguous one did arrive, once


def test_a_stop_mid_batch_drops_the_announced_message_unsent() -> None:
    handler = RecordingHandler(pipelining=True)
    messages = [make_message(f"user{i}@example.test") for i in range(5)]
    stop = threading.Event()
    with (
        running_server(handler) as server,
        create_sender(f"smtp://127.0.0.1:{server.port}") as sender,
    ):
        # The first outcome stops the batch: the second message's envelope was already
        # out (the server answered 354 for it), its data never.
        results = sender.send_many(messages, on_result=lambda i, r: stop.set(), stop=stop)
        again = sender.send(messages[1])  # a fresh session; the dropped one left nothing
    assert isinstance(results[0], SendResult)
    assert results[1:] == [None] * 4
    assert isinstance(again, SendResult)
    assert dict(handler.message_ids()) == {messages[0].message_id: 1, messages[1].message_id: 1}
    assert len(handler.sessions) == 2


def test_a_next_address_that_cannot_be_written_spoils_nothing_before_it() -> None:
    # The announced envelope is built before this message's DATA: an address that cannot
    # be encoded (a lone surrogate) fails its own send, never the message in flight.
    handler = RecordingHandler(pipelining=True)
    good, after = make_message("ok@example.test"), make_message("after@example.test")
    bad = replace(make_message("bad@example.test"), recipients=("b\udcffd@example.test",))
    with (
        running_server(handler, enable_SMTPUTF8=True) as server,
        create_sender(f"smtp://127.0.0.1:{server.port}") as sender,
    ):
        results = sender.send_many([good, bad, after])
    assert isinstance(results[0], SendResult) and isinstance(results[2], SendResult), results
    assert results[1] is not None and not isinstance(results[1], SendResult)
    assert dict(handler.message_ids()) == {good.message_id: 1, after.message_id: 1}
