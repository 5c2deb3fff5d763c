"""The ledger's name in messages and logs never carries its password (issue 23: redact()
missed ?password= and passwords with # or ?), read by libpq's own parser."""

from __future__ import annotations

import pytest

from fraud.store.backend import redact

SECRET = "s3#cr?t-Pw"


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://api:s3cretpw@db:5432/ledger",
     "user=api password=*** dbname=ledger host=db port=5432"),
    (f"postgresql://api@db:5432/ledger?password={SECRET}",
     "user=api password=*** dbname=ledger host=db port=5432"),
    (f"postgresql://api:{SECRET}@db/ledger", "user=api password=*** dbname=ledger host=db"),
    ("postgresql://api:p%23w%3F@db/ledger?sslmode=require&password=other",
     "user=api password=*** dbname=ledger host=db sslmode=require"),
    ("postgresql+psycopg://api:s3cretpw@db/ledger", "user=api password=*** dbname=ledger "
                                                    "host=db"),
    ("postgres://db/ledger", "dbname=ledger host=db"),
    ("postgresql://[::1", "postgresql://(a URL libpq cannot read: not shown)"),
    ("mysql://api:s3cretpw@db/ledger?password=x", "mysql://***@db/ledger"),
    ("/var/lib/fraudserve/ledger.sqlite", "/var/lib/fraudserve/ledger.sqlite"),
    ("sqlite:///data/ledger.sqlite", "sqlite:///data/ledger.sqlite"),
])
def test_the_password_is_never_shown(url: str, shown: str) -> None:
    assert redact(url) == shown
    for secret in ("s3cretpw", SECRET, "s3#cr", "p%23w", "p#w?"):
        assert secret not in redact(url)
