"""The private-address guard shared by media pinning and the adapters that fetch URLs.

A URL that came from outside (a post's media, an RSS feed, a redirect hop) must
not make the service reach its own network: the host is resolved here once and
refused when any of its addresses is private, loopback, link-local or reserved,
unless ``OUTBOUND_ALLOW_PRIVATE`` says the deployment really wants that. The
caller then connects to the address returned, so DNS cannot change under it.

It lives in ``adapters`` (not ``monitor``) because adapters must not import
``monitor``; ``monitor.services.media`` imports it from here.
"""

from __future__ import annotations

import ipaddress
import socket

import httpx

from adapters.base import AdapterError

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
#: IPv6 ranges that reach private networks although Python may call them global:
#: local-use NAT64 (RFC 8215) and the deprecated site-local range; and IPv4-compatible
#: addresses (``::a.b.c.d``), which carry an IPv4 address like a mapped one does.
_NOT_PUBLIC_V6 = (
    ipaddress.ip_network("64:ff9b:1::/48"),
    ipaddress.ip_network("fec0::/10"),
)
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_SHOWN_URL_CHARS = 120


class AddressRefused(AdapterError):
    """The URL's host cannot be resolved, or resolves to an address we must not reach."""


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True for a globally routable unicast address, looking through IPv6 wrappers."""
    if isinstance(address, ipaddress.IPv6Address):
        if any(address in network for network in _NOT_PUBLIC_V6):
            return False
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and (address in _NAT64 or address in _IPV4_COMPATIBLE):
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public(embedded)
    return address.is_global and not address.is_multicast


def checked_address(url: httpx.URL, *, allow_private: bool) -> str:
    """Resolve the host once; refuse it if any address is not public (the SSRF guard)."""
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(url.host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise AddressRefused(f"cannot resolve the host {url.host!r}") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not addresses:
        raise AddressRefused(f"cannot resolve the host {url.host!r}")
    if not allow_private:
        for address in addresses:
            if not is_public(address):
                raise AddressRefused(
                    f"refused {_short(url)}: {url.host} is a private, loopback, link-local or"
                    f" reserved address ({address})"
                )
    return str(addresses[0])


def _short(url: object) -> str:
    text = str(url)
    return text if len(text) <= _SHOWN_URL_CHARS else text[: _SHOWN_URL_CHARS - 3] + "..."
