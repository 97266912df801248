"""``smtp://`` and ``smtps://``: a production SMTP sender for any relay.

URL: ``smtp://[user@]host[:port]?starttls=off|opportunistic|required&cafile=PATH
&connections=N&rate=N/s&timeout=SECONDS`` (``smtps://`` for implicit TLS). STARTTLS
is required unless the host is loopback; certificates are always verified. The
password is ``DRIPLINE_SMTP_PASSWORD`` from the ``secrets`` mapping and is never
logged, printed or shown (``display_url`` says ``***``).

Connections are kept and reused; a connection that went stale while idle is
replaced transparently, and one the server dropped (or closed with 421) is
reopened for the next message. ``?connections=N`` keeps a pool of N sessions:
``send`` is safe from N threads at once (each takes a session), and
``send_many`` spreads a batch over the N sessions itself. ``?rate=`` is one token
bucket for every connection to that relay and account in the process; ``dripline
run`` replaces it with one shared by every worker through the database
(:meth:`SmtpSender.use_rate_limiter`). ``?timeout=`` is a deadline for each whole
command/reply exchange (see :mod:`sender._smtp_connection`).

Outcomes: :class:`SendResult` for 2xx (reply, queue id, enhanced status);
:class:`TransientSendError` for 4xx/421/timeouts/drops (``ambiguous`` when the
connection died after the data was sent); :class:`PermanentSendError` for 5xx
(``bounce`` for a dead mailbox); :class:`SenderConfigError` when nothing can go
(login refused, TLS failure, bad URL). See :mod:`sender._outcome` for the rules.
"""

from __future__ import annotations

import itertools
import logging
import queue
import ssl
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Self

from ._ratelimit import RateLimiter, shared_bucket
from ._smtp_connection import SmtpConnection, tls_context
from ._smtp_url import PASSWORD_SECRET, SmtpConfig, parse_smtp_url
from .base import (
    OutcomeCallback,
    OutgoingMessage,
    PermanentSendError,
    Sender,
    SenderConfigError,
    SendError,
    SendResult,
    TransientSendError,
    _Outcomes,
    unexpected_failure,
)

__all__ = ["PASSWORD_SECRET", "SmtpConfig", "SmtpSender"]

log = logging.getLogger("dripline.sender.smtp")


class SmtpSender(Sender):
    """Sends over a pool of ``config.connections`` reused SMTP sessions."""

    schemes = ("smtp", "smtps")

    def __init__(self, config: SmtpConfig) -> None:
        super().__init__()
        self.config = config
        self._context: ssl.SSLContext | None = None
        # LIFO: the most recently used session is the one least likely to have gone stale.
        self._pool: queue.LifoQueue[SmtpConnection] = queue.LifoQueue()
        self._bucket: RateLimiter | None = None
        if config.rate_per_second is not None:
            self._bucket = shared_bucket(
                config.host, config.port, config.user, config.rate_per_second
            )
        self._workers: ThreadPoolExecutor | None = None
        self._workers_lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, *, secrets: Mapping[str, str] | None = None) -> Self:
        return cls(parse_smtp_url(url, secrets=secrets))

    @property
    def display_url(self) -> str:
        return self.config.display_url

    @property
    def parallelism(self) -> int:
        """How many messages are in flight at once (``?connections=``)."""
        return self.config.connections

    @property
    def rate_limit(self) -> tuple[str, float] | None:
        """(relay account key, messages per second) of ``?rate=``, or None without one."""
        if self.config.rate_per_second is None:
            return None
        key = f"smtp://{self.config.user or ''}@{self.config.host.lower()}:{self.config.port}"
        return key, self.config.rate_per_second

    def use_rate_limiter(self, limiter: RateLimiter) -> None:
        """Draw ``?rate=`` slots from ``limiter`` (shared by every worker) instead of the
        process's own bucket. Call before the first message."""
        self._bucket = limiter

    def _open(self) -> None:
        needs_tls = self.config.implicit_tls or self.config.starttls != "off"
        self._context = tls_context(self.config) if needs_tls else None
        connections = [SmtpConnection(self.config, self._context)]
        connections += [
            SmtpConnection(self.config, self._context) for _ in range(self.config.connections - 1)
        ]
        # Connect one session now, so a refused login or a bad certificate is reported
        # before the first message rather than as that message's outcome.
        connections[0].connect()
        for connection in reversed(connections):
            self._pool.put(connection)

    def _close(self) -> None:
        with self._workers_lock:
            if self._workers is not None:
                self._workers.shutdown(wait=True)
                self._workers = None
        while True:
            try:
                connection = self._pool.get_nowait()
            except queue.Empty:
                break
            connection.close()

    def _send(self, message: OutgoingMessage) -> SendResult:
        connection = self._pool.get()  # blocks while all N sessions are busy
        try:
            return self._send_on(connection, message)
        finally:
            self._pool.put(connection)

    def _send_on(
        self,
        connection: SmtpConnection,
        message: OutgoingMessage,
        following: OutgoingMessage | None = None,
    ) -> SendResult:
        """Send ``message`` on ``connection``, announcing ``following`` (see
        :meth:`SmtpConnection.send`) unless ``?rate=`` applies."""
        if self._bucket is not None:
            self._bucket.acquire()
            # The next transaction waits for its own slot: opened early, the server
            # would hold it (waiting for the data) for as long as the bucket makes us wait.
            following = None
        try:
            return connection.send(message, following)
        except TransientSendError as err:
            if not getattr(err, "retry_now", False):
                raise
            # The reused session had gone stale before the server accepted MAIL FROM:
            # nothing of this message reached it, so it goes again on a fresh session.
            log.info("%s: session went stale (%s); reconnecting", self.display_url, err)
            return connection.send(message, following)

    def send_many(
        self,
        messages: Sequence[OutgoingMessage],
        *,
        on_result: OutcomeCallback | None = None,
        stop: threading.Event | None = None,
    ) -> list[SendResult | SendError | None]:
        """Send a batch over all N sessions at once; outcomes come back in the batch's order.

        Same contract as :meth:`Sender.send_many`; ``on_result`` is called from the
        worker threads as each message is answered (from this thread with one session).
        Each session takes the next message of the batch ahead of time, so its envelope
        can go out with the data of the one before (one round trip per message), and
        holds its connection until the batch ends: ``on_result`` must not send through
        this sender, and :meth:`send` from another thread waits for a free session.
        """
        if not messages:
            return []
        outcomes = _Outcomes(len(messages), on_result)
        try:
            self.open()
        except TransientSendError as err:  # the relay is unreachable: all of them wait
            return outcomes.fill(err)
        except SenderConfigError as err:
            err.results = outcomes.results
            raise
        next_index = itertools.count()  # next() on a count is atomic under the GIL
        halt = threading.Event()
        config_errors: list[SenderConfigError] = []
        unreachable: list[SendError] = []

        def drain() -> None:
            connection = self._pool.get()  # held for the batch: it knows what comes next
            try:
                index = next(next_index)
                while index < len(messages):
                    if halt.is_set() or (stop is not None and stop.is_set()):
                        return  # the message taken ahead stays untried (None)
                    ahead = next(next_index)
                    following = messages[ahead] if ahead < len(messages) else None
                    outcome: SendResult | SendError
                    try:
                        if not messages[index].recipients:
                            raise PermanentSendError("the message has no recipient")
                        outcome = self._send_on(connection, messages[index], following)
                    except SendError as err:
                        outcome = err
                    except SenderConfigError as err:
                        config_errors.append(err)
                        halt.set()
                        return
                    except Exception as err:  # keep the batch going; never re-send this one
                        outcome = unexpected_failure(err)
                    outcomes.set(index, outcome)  # a failure to record is the caller's, raised
                    if getattr(outcome, "unreachable", False):
                        # No session could be opened: the rest would only wait for the
                        # same timeout one by one; they get this outcome untried.
                        unreachable.append(outcome)  # type: ignore[arg-type]
                        halt.set()
                    index = ahead
            finally:
                connection.drop_unsent()
                self._pool.put(connection)

        sessions = min(self.config.connections, len(messages))
        if sessions == 1:
            drain()  # no thread to hand over to: one session sends from here
        else:
            workers = self._worker_pool()
            futures = [workers.submit(drain) for _ in range(sessions)]
            for future in futures:
                future.result()  # a bug in a worker surfaces here instead of vanishing
        if config_errors:
            config_errors[0].results = outcomes.results
            raise config_errors[0]
        if unreachable:
            return outcomes.fill(unreachable[0])
        return outcomes.results

    def _worker_pool(self) -> ThreadPoolExecutor:
        with self._workers_lock:
            if self._workers is None:
                self._workers = ThreadPoolExecutor(
                    max_workers=self.config.connections, thread_name_prefix="dripline-smtp"
                )
            return self._workers
