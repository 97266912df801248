"""Wiring for the sending commands: settings -> store, sender, campaigns, dispatcher."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from functools import cache, partial
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from sender import Sender, create_sender, sender_class

from .dispatch import CampaignLibrary, Dispatcher
from .errors import ConfigError, DriplineError
from .guards import campaign_readiness, ready_to_send, require_public_links
from .links import unsubscribe_url_for
from .settings import Settings
from .store import (
    BouncePolicy,
    ClaimedDelivery,
    DatabaseRateLimit,
    SqlDeliveryQueue,
    open_store,
)
from .timetable import Timetable

if TYPE_CHECKING:
    from .metrics import RunMetrics
from .tokens import TokenSigner, click_url, open_url, tracking_tokens, verp_address

__all__ = [
    "bounce_policy_for",
    "check_ready_to_send",
    "dispatcher_for",
    "envelope_sender_maker",
    "sender_for",
    "tracking_links_for",
    "unsubscribe_link_maker",
]

log = logging.getLogger("dripline.runtime")


def sender_for(settings: Settings) -> Sender:
    """The configured sender; passwords reach it from the environment, never from the URL."""
    # The name sender.smtp looks the password up by; the plugin itself is imported only
    # when an smtp:// URL asks for it.
    secrets = {"DRIPLINE_SMTP_PASSWORD": settings.smtp_password} if settings.smtp_password else {}
    return create_sender(settings.effective_sender_url, secrets=secrets)


def unsubscribe_link_maker(settings: Settings) -> Callable[[ClaimedDelivery], str]:
    """Signed one-click unsubscribe URLs under ``DRIPLINE_BASE_URL`` for claimed deliveries.

    The token names the subscriber by their random public key (never the address or
    a row id) and is what ``dripline serve`` verifies at ``/u/TOKEN``.
    """
    if not settings.secret_key:
        raise ConfigError(
            "DRIPLINE_SECRET_KEY is not set: unsubscribe links cannot be signed "
            "(set it to a long random string; `dripline demo` makes its own)"
        )

    def link(delivery: ClaimedDelivery) -> str:
        return unsubscribe_url_for(settings, delivery.public_key, delivery.campaign)

    return link


class _SignedTrackingLinks:
    """``BASE/c/TOKEN`` and ``BASE/o/TOKEN`` for claimed deliveries (dispatch.TrackingLinks)."""

    def __init__(self, settings: Settings) -> None:
        self.base_url = settings.base_url
        self.tokens = tracking_tokens(settings.secret_key)

    def click(self, delivery: ClaimedDelivery, position: int) -> str:
        token = self.tokens.click(delivery.delivery_id, position, delivery.campaign)
        return click_url(self.base_url, token)

    def open(self, delivery: ClaimedDelivery) -> str:
        return open_url(self.base_url, self.tokens.open(delivery.delivery_id, delivery.campaign))


def tracking_links_for(settings: Settings) -> _SignedTrackingLinks:
    """Signed click and open URLs under ``DRIPLINE_BASE_URL`` (campaigns opt in with
    ``[tracking]``). Raises ConfigError without ``DRIPLINE_SECRET_KEY``."""
    return _SignedTrackingLinks(settings)


def _share_rate_limit(sender: Sender, engine: Engine) -> None:
    """``?rate=`` holds for every worker on this database, not per process."""
    rate_limit = getattr(sender, "rate_limit", None)
    if rate_limit is not None:
        key, rate = rate_limit
        sender.use_rate_limiter(DatabaseRateLimit(engine, key, rate))  # type: ignore[attr-defined]


@contextmanager
def _heartbeat(queue: SqlDeliveryQueue, every: float) -> Iterator[None]:
    """Renew the worker's lease every ``every`` seconds while inside (idle ticks, slow relays)."""
    done = threading.Event()

    def beat() -> None:
        while not done.wait(every):
            try:
                queue.heartbeat()
            except Exception as err:  # the database is away: the next beat tries again
                # Any error: a dead heartbeat thread would let a healthy worker's lease lapse.
                log.warning("lease heartbeat failed: %s", err)

    thread = threading.Thread(target=beat, name="dripline-lease", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(5)


def bounce_policy_for(settings: Settings) -> BouncePolicy:
    """How many soft bounces within how many days suppress an address (``[bounces]``)."""
    return BouncePolicy(
        soft_limit=settings.soft_bounce_limit,
        soft_window=timedelta(days=settings.soft_bounce_window_days),
    )


def envelope_sender_maker(settings: Settings) -> Callable[[ClaimedDelivery], str] | None:
    """VERP envelope senders ``local+TOKEN@domain`` from ``DRIPLINE_RETURN_PATH``, or None.

    TOKEN names the delivery (:meth:`~dripline.tokens.TokenSigner.return_path_token`), so a
    bounce that comes back days later finds it. Raises ConfigError for a bad return path.
    """
    if not settings.return_path:
        return None
    if not settings.secret_key:
        raise ConfigError("DRIPLINE_RETURN_PATH needs DRIPLINE_SECRET_KEY to sign its tokens")
    signer = TokenSigner(settings.secret_key)
    try:
        verp_address(settings.return_path, signer.return_path_token(0))
    except ValueError as err:
        raise ConfigError(f"DRIPLINE_RETURN_PATH: {err}") from None

    def envelope_sender(delivery: ClaimedDelivery) -> str:
        token = signer.return_path_token(delivery.delivery_id)
        return verp_address(settings.return_path, token)

    return envelope_sender


def _reaches_recipients(settings: Settings) -> bool:
    """False for senders that deliver to no one (``console:``, ``memory:``)."""
    scheme = settings.effective_sender_url.partition(":")[0].lower()
    return sender_class(scheme).reaches_recipients


def _examples_allowed(settings: Settings) -> bool:
    """Example-domain senders are fine when allowed, or when the mail reaches no one."""
    return settings.allow_example_addresses or not _reaches_recipients(settings)


def check_ready_to_send(settings: Settings, *, campaigns: bool = True) -> None:
    """Refuse to start sending what must not reach subscribers (see :mod:`dripline.guards`).

    Raises :class:`ConfigError` when links would point at a base URL subscribers cannot
    use. With ``campaigns``, raises :class:`DriplineError` listing every problem
    (placeholders; example-domain senders unless allowed) when no campaign could be sent
    at all. When some can, the others are held by the dispatcher instead (their
    deliveries wait, logged once), so one draft never stops the rest.
    """
    require_public_links(
        settings.base_url,
        reaches_recipients=_reaches_recipients(settings),
        allow_local=settings.allow_local_links,
        source=settings.sources.get("base_url"),
    )
    if not campaigns:
        return
    readiness = campaign_readiness(
        settings.campaigns_dir, allow_example_addresses=_examples_allowed(settings)
    )
    if not readiness or any(not problems for problems in readiness.values()):
        return
    problems = [problem for found in readiness.values() for problem in found]
    listed = "\n".join(f"  {problem}" for problem in problems)
    allow = (
        "; --allow-example-addresses sends from example domains anyway"
        if any(p.kind == "example" for p in problems)
        else ""
    )
    raise DriplineError(
        f"not starting: no campaign can be sent; {len(problems)} problem(s) would reach "
        f"subscribers:\n{listed}\nFix them (dripline check lists them too){allow}"
    )


@contextmanager
def dispatcher_for(
    settings: Settings,
    *,
    stop: threading.Event | None = None,
    batch_size: int = 500,
    metrics: RunMetrics | None = None,
) -> Iterator[Dispatcher]:
    """A dispatcher over the configured store and sender, closed on exit.

    It works as one leased worker (``settings.lease_seconds``, renewed by a heartbeat
    thread every third of it), shares ``?rate=`` with every other worker through the
    database, and renders under ``settings.render_budget``.
    """
    links = unsubscribe_link_maker(settings)
    envelope_sender = envelope_sender_maker(settings)
    engine = open_store(
        settings.effective_database_url,
        campaigns_dir=settings.campaigns_dir,
        lease_seconds=settings.lease_seconds,
    )
    library = CampaignLibrary(
        settings.campaigns_dir,
        settings.templates_dir,
        render_budget=settings.render_budget,
        vet=partial(ready_to_send, allow_example_addresses=_examples_allowed(settings)),
    )

    @cache
    def timetable_for(slug: str) -> Timetable:
        # The files' timetable: a layout that does not compile defers the sends, and
        # must not stop the claim that finds them.
        return Timetable.of(library.definition(slug))

    sender = sender_for(settings)
    _share_rate_limit(sender, engine)
    queue = SqlDeliveryQueue(engine, timetable_for, lease_seconds=settings.lease_seconds)
    # Not `with sender:`, which opens at once: the sender opens on its first message, so
    # a relay that is down when `dripline run` starts defers that pass's messages for a
    # retry instead of ending the process.
    try:
        dispatcher = Dispatcher(
            queue,
            sender,
            library,
            links,
            batch_size=batch_size,
            stop=stop,
            envelope_sender=envelope_sender,
            tracking=tracking_links_for(settings),
            metrics=metrics,
        )
        try:
            with _heartbeat(queue, settings.lease_seconds / 3):
                yield dispatcher
        finally:
            dispatcher.close()
    finally:
        sender.close()
        queue.close()
        engine.dispose()
