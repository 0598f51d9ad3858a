"""Free loopback ports for the servers that tests and ``cep-automation dev`` start."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def is_free(port: int) -> bool:
    """True when ``port`` can be bound on 127.0.0.1 now."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port_pairs(count: int, offset: int) -> list[int]:
    """``count`` distinct ports p such that p and p + ``offset`` are both free (SeaweedFS's gRPC ports)."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port + offset <= 65535 and port not in ports and is_free(port + offset):
            ports.append(port)
    return ports
