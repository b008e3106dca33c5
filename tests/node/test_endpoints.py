"""Endpoints read from the chain: a node sends requests only to ``http(s)://host[:port][/path]``
(``node.endpoints``); anything else an organisation publishes is no endpoint."""

from __future__ import annotations

import pytest

from privledger.node.endpoints import usable_endpoint


@pytest.mark.parametrize(
    ("published", "used"),
    [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("https://bank-a.example", "https://bank-a.example"),
        ("https://host.example:443/t/tenant-x/", "https://host.example:443/t/tenant-x"),
        ("http://[::1]:9000/", "http://[::1]:9000"),
    ],
)
def test_a_usable_endpoint_is_used_without_its_trailing_slash(published: str, used: str) -> None:
    assert usable_endpoint(published) == used


@pytest.mark.security
@pytest.mark.parametrize(
    "published",
    [
        "",
        "bank-a.example",
        "ftp://bank-a.example",
        "file:///etc/passwd",
        "http://",
        "http://127.0.0.1:8080/internal/admin?x=",  # the rest of the URL would be the publisher's
        "http://127.0.0.1:8080/internal#",
        "http://user:secret@127.0.0.1:8080",
        "http://127.0.0.1:8080@10.0.0.1",
        "http://bank-a.example /x",
        "http://bank-a.example\n",
        "http://bank-a.example\\@evil",
        "http://bank-a.example:0",
        "http://bank-a.example:65536",
        "http://bank-a.example:80:81",
        "http://-bank-a.example",
        "http://bank-a.example/a%2Fb",
        "http://bänk.example",
    ],
)
def test_anything_else_is_no_endpoint(published: str) -> None:
    assert usable_endpoint(published) == ""
