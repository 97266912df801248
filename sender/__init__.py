"""Pluggable senders: every way dripline can hand a finished message to the world."""

from .base import (
    OutgoingMessage,
    PermanentSendError,
    Sender,
    SenderConfigError,
    SendError,
    SendResult,
    TransientSendError,
)
from .registry import ENTRY_POINT_GROUP, available_schemes, create_sender, sender_class

__all__ = [
    "ENTRY_POINT_GROUP",
    "OutgoingMessage",
    "PermanentSendError",
    "SendError",
    "SendResult",
    "Sender",
    "SenderConfigError",
    "TransientSendError",
    "available_schemes",
    "create_sender",
    "sender_class",
]
