"""Senders are found by URL scheme in the ``dripline.senders`` entry-point group, lazily.

The built-in senders register through the same group (see pyproject.toml), so a
third-party package adds a scheme by declaring::

    [project.entry-points."dripline.senders"]
    mysvc = "mypackage.sender:MyServiceSender"
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import entry_points

from .base import Sender, SenderConfigError

__all__ = ["ENTRY_POINT_GROUP", "available_schemes", "create_sender", "sender_class"]

ENTRY_POINT_GROUP = "dripline.senders"


def available_schemes() -> list[str]:
    """The schemes installed senders serve, sorted."""
    return sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


def sender_class(scheme: str) -> type[Sender]:
    """Load the class registered for ``scheme`` (only that one plugin is imported)."""
    matches = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == scheme]
    if not matches:
        installed = ", ".join(f"{s}:" for s in available_schemes()) or "none"
        raise SenderConfigError(f"unknown sender {scheme!r}; installed senders: {installed}")
    try:
        cls = matches[0].load()
    except Exception as err:  # a broken plugin must not look like our bug
        raise SenderConfigError(f"sender {scheme!r} failed to load: {err}") from err
    if not (isinstance(cls, type) and issubclass(cls, Sender)):
        raise SenderConfigError(f"sender {scheme!r} ({matches[0].value}) is not a Sender")
    return cls


def create_sender(url: str, *, secrets: Mapping[str, str] | None = None) -> Sender:
    """The sender a URL names, e.g. ``maildir:outbox`` or ``smtp://relay.example.com:587``."""
    scheme, sep, _ = url.partition(":")
    if not sep or not scheme:
        raise SenderConfigError(
            f"a sender is a URL such as maildir:outbox or smtp://host:587, not {url!r}"
        )
    return sender_class(scheme.lower()).from_url(url, secrets=secrets)
