"""The outbound address policy: which addresses opsboard may open a connection to on its own.

Operators type URLs that opsboard later requests by itself: a notification channel's webhook, an
AWS account's endpoint URL. Unchecked, such a URL points opsboard at its own host, the cloud's
metadata service (169.254.169.254) or the private network behind it, and hands back what answered
(server-side request forgery). So by default opsboard refuses loopback, link-local, private
(RFC 1918), shared (CGNAT 100.64/10), unique-local, site-local, multicast, unspecified, reserved and
broadcast addresses — in IPv4, in IPv6, and IPv4 carried inside IPv6 (::ffff:127.0.0.1, NAT64,
6to4). The OUTBOUND_ALLOWED_NETWORKS setting lists networks let through anyway (an emulator, a
webhook receiver inside the network; tests and the demo allow loopback).

The check that counts is `check_socket`, made on the address actually connected to, after connect
and before a byte of the request is written or TLS begins: a name that resolves to a public address
when a form is saved and to a private one when the request is made (DNS rebinding) is still refused.
`url_errors` resolves a URL's host in advance, only to give a clear form error at save time.
"""

from __future__ import annotations

import ipaddress
import socket
from functools import lru_cache
from urllib.parse import urlsplit

from django.conf import settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Ranges refused by default, with the word the refusal uses. Anything else that is not globally
#: routable (documentation, benchmarking, IETF ranges…) is refused as "reserved".
REFUSED: tuple[tuple[Network, str], ...] = tuple(
    (ipaddress.ip_network(net), kind)
    for net, kind in (
        ("0.0.0.0/8", "unspecified"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),  # the instance metadata service lives here
        ("10.0.0.0/8", "private"),
        ("172.16.0.0/12", "private"),
        ("192.168.0.0/16", "private"),
        ("100.64.0.0/10", "shared (CGNAT)"),
        ("255.255.255.255/32", "broadcast"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("::/8", "reserved"),  # IPv4-compatible (::127.0.0.1) and other IETF-reserved forms
        ("100::/64", "reserved"),
        ("2001:db8::/32", "reserved"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local"),
        ("fc00::/7", "unique-local"),
        ("ff00::/8", "multicast"),
    )
)
NAT64 = ipaddress.ip_network("64:ff9b::/96")


class Refused(Exception):
    """A connection the policy forbids.

    Deliberately not an OSError: HTTP libraries retry OSErrors or rewrap them as network trouble,
    and this is a decision, not a failure of the network.
    """

    def __init__(self, address: str, kind: str):
        self.address, self.kind = address, kind
        super().__init__(
            f"opsboard refuses to connect to {address} ({kind} address): outbound address policy; "
            "add the network to OUTBOUND_ALLOWED_NETWORKS to allow it."
        )


def _embedded_ipv4(ip: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (IPv4-mapped, NAT64, 6to4), which is where it leads."""
    if ip.version != 6:
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def classify(ip: Address) -> str | None:
    """What kind of non-public address `ip` is ("loopback", "private", …), or None for a public one."""
    inner = _embedded_ipv4(ip)
    if inner is not None:
        return classify(inner)
    for network, kind in REFUSED:
        if ip.version == network.version and ip in network:
            return kind
    return None if ip.is_global else "reserved"


@lru_cache(maxsize=16)
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def allowed_networks() -> tuple[Network, ...]:
    """OUTBOUND_ALLOWED_NETWORKS, read on every check so a changed setting applies at once."""
    return _networks(tuple(getattr(settings, "OUTBOUND_ALLOWED_NETWORKS", ())))


def _is_allowed(ip: Address) -> bool:
    candidates = [ip, *filter(None, [_embedded_ipv4(ip)])]
    return any(c.version == n.version and c in n for c in candidates for n in allowed_networks())


def check_address(address: str) -> None:
    """Raise Refused when the policy forbids connecting to `address` (an IP address, as text)."""
    ip = ipaddress.ip_address(address)
    if _is_allowed(ip):
        return
    kind = classify(ip)
    if kind is not None:
        raise Refused(address, kind)


def check_socket(sock: socket.socket) -> None:
    """Refuse a connected socket whose peer the policy forbids, closing it before anything is sent."""
    try:
        check_address(sock.getpeername()[0])
    except BaseException:
        sock.close()
        raise


def create_connection(address, *args, **kwargs) -> socket.socket:
    """`socket.create_connection`, refusing a peer the policy forbids (the hook http.client offers)."""
    sock = socket.create_connection(address, *args, **kwargs)
    check_socket(sock)
    return sock


def host_errors(host: str | None, port: int | None = None) -> list[str]:
    """The policy's objection to what `host` resolves to now, as a sentence; empty when there is none.

    For a form's early, clear error only. A name that does not resolve here is no objection (the
    connection will say so); the check that counts is the one on the connected socket.
    """
    if not host:
        return []
    try:
        found = socket.getaddrinfo(host, port or 0, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    for *_, sockaddr in found:
        try:
            check_address(sockaddr[0])
        except Refused as exc:
            same = exc.address == host.strip("[]")
            return [str(exc) if same else f"{exc} ({host} resolves to {exc.address}.)"]
    return []


def url_errors(url: str) -> list[str]:
    """`host_errors` for a URL's host and port."""
    parts = urlsplit((url or "").strip())
    try:
        port = parts.port
    except ValueError:
        return []  # the URL's own validation reports a bad port
    return host_errors(parts.hostname, port or (443 if parts.scheme == "https" else 80))
