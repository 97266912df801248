"""Links in emails: unsubscribe (for the dispatcher and renderer) and sign-up confirmation.

Beside :mod:`dripline.tokens`, which signs them: the runtime builds unsubscribe links
and ``dripline serve`` checks them, so neither imports the other for it.

Both are built from ``Settings.base_url`` and signed with ``Settings.secret_key``.
Unsubscribe links never expire; a confirmation link works for :data:`CONFIRM_MAX_AGE`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache

from .settings import Settings
from .tokens import CONFIRM, UNSUBSCRIBE, TokenPayload, TokenSigner, unsubscribe_url

__all__ = ["CONFIRM_MAX_AGE", "confirm_url_for", "signer_for", "unsubscribe_url_for"]

CONFIRM_MAX_AGE = timedelta(days=7)


@lru_cache(maxsize=8)
def signer_for(secret_key: str) -> TokenSigner:
    """One signer per secret (deriving its keys is cheap, but the dispatcher calls per email)."""
    return TokenSigner(secret_key)


def _epoch_seconds(moment: datetime | None) -> int:
    return int((moment or datetime.now(UTC)).timestamp())


def unsubscribe_url_for(
    settings: Settings,
    subscriber_public_key: str,
    campaign_slug: str,
    *,
    now: datetime | None = None,
) -> str:
    """``BASE/u/TOKEN`` for one subscriber and campaign: what List-Unsubscribe and the footer carry.

    Raises :class:`~dripline.errors.ConfigError` when ``DRIPLINE_SECRET_KEY`` is not set.
    """
    token = signer_for(settings.secret_key).sign(
        TokenPayload(UNSUBSCRIBE, subscriber_public_key, campaign_slug, _epoch_seconds(now))
    )
    return unsubscribe_url(settings.base_url, token)


def confirm_url_for(
    settings: Settings, request_key: str, campaign_slug: str, *, now: datetime | None = None
) -> str:
    """``BASE/confirm/TOKEN`` for one sign-up request, valid for seven days from ``now``."""
    token = signer_for(settings.secret_key).sign(
        TokenPayload(CONFIRM, request_key, campaign_slug, _epoch_seconds(now))
    )
    return f"{settings.base_url.rstrip('/')}/confirm/{token}"
