"""Who the client is, for the per-address buckets: the peer's address, or, when the peer is a
trusted proxy, the nearest address in X-Forwarded-For that is not one.

Only the configured proxies (configs/ab.yaml `access.trusted_proxies`, or
FRAUDSERVE_TRUSTED_PROXIES, comma-separated addresses or CIDR ranges) are believed: anyone
else could write any X-Forwarded-For. The header is read from the right (the entry the
nearest proxy appended) leftwards, past every trusted hop. IPv6 clients are bucketed by
their /64, the block one subscriber usually holds, so rotating addresses inside it does not
buy a fresh bucket.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

PROXIES_ENV = "FRAUDSERVE_TRUSTED_PROXIES"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class TrustedProxies:
    """The proxies whose X-Forwarded-For is believed; empty believes none."""

    networks: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str], source: str = "access.trusted_proxies"
              ) -> TrustedProxies:
        """Addresses or CIDR ranges; a bad entry is a ValueError naming it."""
        out = []
        for entry in (e.strip() for e in entries):
            if not entry:
                continue
            try:
                out.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ValueError(f"{source}: {entry!r} is not an address or a CIDR "
                                 "range") from None
        return cls(tuple(out))

    @classmethod
    def from_config(cls, configured: Iterable[str], environ: Mapping[str, str]
                    ) -> TrustedProxies:
        """The config's list, or FRAUDSERVE_TRUSTED_PROXIES when set."""
        if environ.get(PROXIES_ENV) is not None:
            return cls.parse(environ[PROXIES_ENV].split(","), PROXIES_ENV)
        return cls.parse(configured)

    def trusts(self, address: Address | None) -> bool:
        return address is not None and any(address in net for net in self.networks)


NO_PROXIES = TrustedProxies()


def _address(text: str) -> Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _forwarded_for(scope: Mapping[str, Any]) -> list[str]:
    values = [v.decode("latin-1") for k, v in scope.get("headers", ())
              if k.lower() == b"x-forwarded-for"]
    return [part for value in values for part in value.split(",")]


def client_address(scope: Mapping[str, Any], proxies: TrustedProxies) -> Address | None:
    """The client's address: the peer's, or past the trusted proxies in X-Forwarded-For."""
    client = scope.get("client")
    peer = _address(str(client[0])) if client else None
    if not proxies.trusts(peer):
        return peer
    current = peer
    for hop in reversed(_forwarded_for(scope)):
        address = _address(hop)
        if address is None:  # garbage in the header: stop at the last address we believe
            return current
        current = address
        if not proxies.trusts(address):
            return address
    return current


def client_bucket(scope: Mapping[str, Any], proxies: TrustedProxies) -> str:
    """The name of the client's bucket: its IPv4 address, or its IPv6 /64."""
    address = client_address(scope, proxies)
    if address is None:
        return "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)
