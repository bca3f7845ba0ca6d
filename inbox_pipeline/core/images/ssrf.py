"""Which network addresses an image fetch may reach (SSRF protection).

A newsletter is untrusted input: its <img src> must not make the pipeline
talk to the machine itself, the private network or a cloud metadata service.
Hosts are resolved once, every resolved address is checked, and the caller
connects to the checked address (no second lookup, so no DNS rebinding).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Collection
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Named for the record: both are already refused as link-local / private.
METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack
        ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    }
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class AddressRefused(Exception):
    """The URL's host may not be reached; the message says why, for a person."""


@dataclass(frozen=True)
class ResolvedHost:
    host: str  # as in the URL, lower-cased, without brackets
    port: int
    addresses: tuple[str, ...]  # checked IP addresses to connect to, in resolver order


def forbidden_reason(address: IPAddress) -> str | None:
    """Why this address is off limits for a fetch, or None if it is a public address."""
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        reason = forbidden_reason(embedded)
        return f"{reason} (inside an IPv6 address)" if reason else None
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_reserved:
        return "a reserved address"
    if address.is_private:
        return "a private address"
    if not address.is_global:  # e.g. 100.64.0.0/10 carrier-grade NAT
        return "a non-public address"
    return None


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo, NAT64), if any."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def host_is_allowed(host: str, port: int, allowed_hosts: Collection[str]) -> bool:
    """True if ``host`` or ``host:port`` is on the operator's allow list."""
    if not allowed_hosts:
        return False
    host = host.lower().strip("[]")
    candidates = {host, f"{host}:{port}", f"[{host}]:{port}", f"[{host}]"}
    return any(entry.lower().strip() in candidates for entry in allowed_hosts)


def resolve_checked(
    host: str,
    port: int,
    *,
    allow_private_networks: bool = False,
    allowed_hosts: Collection[str] = (),
) -> ResolvedHost:
    """Resolve ``host`` and check every address; raise AddressRefused if any is off limits.

    Every address must pass, not just one: a resolver answering with a public
    and a private address must not get the private one used.
    """
    host = host.lower().strip("[]")
    if not host:
        raise AddressRefused("the URL has no host")
    trusted = allow_private_networks or host_is_allowed(host, port, allowed_hosts)
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise AddressRefused(f"cannot resolve host {host!r} ({exc})") from None
        addresses = []
        for _family, _type, _proto, _canon, sockaddr in infos:
            # Drop an IPv6 scope id ("fe80::1%eth0") before parsing.
            address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise AddressRefused(f"host {host!r} has no address")
    if not trusted:
        for address in addresses:
            reason = forbidden_reason(address)
            if reason:
                shown = host if literal is not None else f"{host} ({address})"
                raise AddressRefused(f"refused to fetch from {shown}: {reason}")
    return ResolvedHost(host=host, port=port, addresses=tuple(str(a) for a in addresses))
