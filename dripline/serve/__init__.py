"""``dripline serve``: double opt-in sign-up and RFC 8058 one-click unsubscribe over HTTP.

:func:`create_app` builds the Starlette app from :class:`~dripline.settings.Settings`;
:func:`unsubscribe_url_for` is what the dispatcher calls for each email's
``List-Unsubscribe`` and footer link.
"""

from __future__ import annotations

from ..links import CONFIRM_MAX_AGE, confirm_url_for, unsubscribe_url_for
from ._app import MIN_SECRET_KEY_LENGTH, check_serve_settings, create_app

__all__ = [
    "CONFIRM_MAX_AGE",
    "MIN_SECRET_KEY_LENGTH",
    "check_serve_settings",
    "confirm_url_for",
    "create_app",
    "unsubscribe_url_for",
]
