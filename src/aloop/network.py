"""The network half of ``aloop.Loop``: sockets, DNS, connections, servers, TLS.

A mixin of ``Loop``; the transports themselves live in ``aloop._transports``.
"""

from __future__ import annotations

__all__ = ["NetworkMixin"]


class NetworkMixin:
    """sock_*, getaddrinfo/getnameinfo, create_connection/server, datagram endpoints."""

    def _close_network(self) -> None:
        """Called by ``Loop.close()`` before the scheduler releases its fds."""
