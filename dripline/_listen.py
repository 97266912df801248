"""Binding a listening socket before a server starts, so a busy port is one clear error."""

from __future__ import annotations

import socket

from .errors import DriplineError

__all__ = ["listen_socket"]


def listen_socket(host: str, port: int, *, busy_hint: str) -> socket.socket:
    """A TCP socket bound to ``host:port`` (port 0 picks a free one), not yet listening.

    Raises :class:`DriplineError` ("cannot listen on HOST:PORT: Address already in use
    (BUSY_HINT)") when the address cannot be bound, before anything claims to be serving.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        reason = err.strerror or str(err)
        raise DriplineError(f"cannot listen on {host}:{port}: {reason} ({busy_hint})") from err
    return sock
