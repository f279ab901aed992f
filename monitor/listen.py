"""Binding the listening socket before anything is printed, so a busy port is one clear line."""

from __future__ import annotations

import errno
import socket

from monitor.errors import UserError


def bind(host: str, port: int, *, busy_hint: str) -> socket.socket:
    """A bound socket for uvicorn to serve on; a UserError (with ``busy_hint``) if taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise UserError(f"port {port} is in use: {busy_hint}") from None
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    except OverflowError:
        sock.close()
        raise UserError(f"port {port}: give a port from 0 to 65535") from None
    return sock
