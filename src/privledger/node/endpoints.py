"""Node endpoints as other nodes read them from the chain.

An organisation's admin publishes its node's endpoint with ``OrgRegistry.updateNode``, which
takes any string. Every node that sends a request to another organisation's node, or probes its
health, first passes the endpoint through :func:`usable_endpoint`: ``http(s)://host[:port]`` with
an optional path prefix, and nothing else -- no query, fragment, user info, whitespace or other
characters that would let the publisher choose the rest of the URL a node then requests
(``{endpoint}/api/v1/...``). Anything else counts as no endpoint: the organisation's node is
unreachable until a usable one is published.
"""

from __future__ import annotations

import re

_ENDPOINT = re.compile(
    r"https?://"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:.]+\])"  # a host name, an IPv4 address or a bracketed IPv6 address
    r"(?::(?P<port>[0-9]{1,5}))?"
    r"(?:/[A-Za-z0-9._~-]*)*"  # a path prefix: segments of unreserved characters only
)


def usable_endpoint(endpoint: str) -> str:
    """``endpoint`` without a trailing ``/`` if a node may send requests to it, else ``""``."""
    found = _ENDPOINT.fullmatch(endpoint)
    if found is None or (found["port"] is not None and not 0 < int(found["port"]) < 2**16):
        return ""
    return endpoint.rstrip("/")
