"""Who the client is: the peer, or past the trusted proxies in X-Forwarded-For."""

from __future__ import annotations

from typing import Any

import pytest

from fraud.api.clientip import TrustedProxies, client_address, client_bucket

PROXIES = TrustedProxies.parse(["10.0.0.0/8", "fd00::/8"])


def scope(peer: str | None, *forwarded: str) -> dict[str, Any]:
    return {"client": (peer, 1234) if peer else None,
            "headers": [(b"x-forwarded-for", f.encode()) for f in forwarded]}


@pytest.mark.parametrize(("peer", "forwarded", "client"), [
    ("203.0.113.5", ["198.51.100.1"], "203.0.113.5"),  # not a proxy: its header is a lie
    ("10.1.2.3", ["198.51.100.1"], "198.51.100.1"),
    ("10.1.2.3", ["6.6.6.6, 198.51.100.1, 10.9.9.9"], "198.51.100.1"),  # past trusted hops
    ("10.1.2.3", ["6.6.6.6", "198.51.100.1"], "198.51.100.1"),  # several headers, in order
    ("10.1.2.3", [], "10.1.2.3"),
    ("10.1.2.3", ["not-an-address"], "10.1.2.3"),  # garbage: the last address believed
    ("10.1.2.3", ["10.4.4.4"], "10.4.4.4"),  # only proxies: the farthest one
    ("10.1.2.3", ["[2001:db8::1]:443"], "2001:db8::1"),
    ("10.1.2.3", ["198.51.100.1:8080"], "198.51.100.1"),
])
def test_client_address(peer: str, forwarded: list[str], client: str) -> None:
    assert str(client_address(scope(peer, *forwarded), PROXIES)) == client


def test_buckets_are_addresses_and_ipv6_64s() -> None:
    none = TrustedProxies()
    assert client_bucket(scope("198.51.100.1"), none) == "198.51.100.1"
    assert client_bucket(scope("2001:db8:1:2:aaaa::1"), none) == "2001:db8:1:2::/64"
    assert client_bucket(scope("2001:db8:1:2:bbbb::9"), none) == "2001:db8:1:2::/64"
    assert client_bucket(scope("::ffff:198.51.100.1"), none) == "198.51.100.1"
    assert client_bucket(scope(None), none) == "unknown"


def test_configuration_and_its_environment_override() -> None:
    assert TrustedProxies.from_config(["10.0.0.1"], {}).trusts(client_address(
        scope("10.0.0.1"), TrustedProxies()))
    assert TrustedProxies.from_config(["10.0.0.1"], {"FRAUDSERVE_TRUSTED_PROXIES": ""}
                                      ).networks == ()
    with pytest.raises(ValueError, match=r"access\.trusted_proxies: 'ingress'"):
        TrustedProxies.parse(["ingress"])
