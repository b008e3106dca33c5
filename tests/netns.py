"""Hosts of their own for the ``netns`` tests: each a Linux network namespace with one address
on a private bridge, so a node (or the chain) listens on, and is reached at, an address of its
own, and a host's link can be cut and restored like a cable.

The bridge lives in the test's own namespace with the first address of a /24 in 10/8 that no
interface here uses, so the test process reaches every host through it. Every name carries a
random token (namespaces ``pl-<token>-<host>``, links ``plv<token><n>``, bridge ``plb<token>``):
sessions running side by side do not clash. Everything is deleted on exit, on failure too.
Needs root (``make test`` runs as root in CI) and ``ip`` from iproute2.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from privledger.demo import Placement


class NetnsUnavailable(RuntimeError):
    """Network namespaces cannot be made here (not root, no ``ip``, or ``ip`` failed)."""


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise NetnsUnavailable(f"ip {' '.join(args)}: {done.stderr.strip()}")


@dataclass(frozen=True)
class Host:
    name: str
    namespace: str
    link: str  # the bridge's end of the host's cable
    address: str

    @property
    def placement(self) -> Placement:
        """A consortium part placed here: run inside the namespace, at the host's address."""
        return Placement(self.address, ("ip", "netns", "exec", self.namespace))


@dataclass(frozen=True)
class Network:
    bridge: str
    gateway: str  # the bridge's address: where the test process is seen from
    hosts: dict[str, Host]

    def cut(self, name: str) -> None:
        """Unplug ``name``'s cable: nothing reaches the host or leaves it, processes live on."""
        _ip("link", "set", self.hosts[name].link, "down")

    def restore(self, name: str) -> None:
        """Plug ``name``'s cable back in."""
        _ip("link", "set", self.hosts[name].link, "up")


def _unused_subnet() -> ipaddress.IPv4Network:
    """A random 10.x.y.0/24 that overlaps no address of this namespace."""
    shown = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    used = [ipaddress.ip_interface(field).network for field in shown.split() if "/" in field]
    for _ in range(100):
        subnet = ipaddress.ip_network(
            f"10.{secrets.randbelow(200) + 50}.{secrets.randbelow(256)}.0/24"
        )
        if not any(subnet.overlaps(other) for other in used):
            return subnet
    raise NetnsUnavailable("no free 10.x.y.0/24 found")


@contextmanager
def start_network(names: Sequence[str]) -> Iterator[Network]:
    """Make one host per name on a fresh bridge; delete all of it on exit."""
    if os.geteuid() != 0:
        raise NetnsUnavailable("network namespaces need root (`make test` runs as root in CI)")
    if shutil.which("ip") is None:
        raise NetnsUnavailable("no `ip` command: install iproute2")
    token = secrets.token_hex(3)
    subnet = _unused_subnet()
    addresses = subnet.hosts()
    gateway = str(next(addresses))
    bridge = f"plb{token}"
    hosts = {
        name: Host(name, f"pl-{token}-{name}", f"plv{token}{index}", str(next(addresses)))
        for index, name in enumerate(names)
    }
    made_bridge = False
    made: list[Host] = []
    try:
        _ip("link", "add", bridge, "type", "bridge")
        made_bridge = True
        _ip("addr", "add", f"{gateway}/{subnet.prefixlen}", "dev", bridge)
        _ip("link", "set", bridge, "up")
        for host in hosts.values():
            _ip("netns", "add", host.namespace)
            made.append(host)
            _ip(
                "link",
                "add",
                host.link,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                host.namespace,
            )
            _ip("link", "set", host.link, "master", bridge, "up")
            inside = ("-n", host.namespace)
            _ip(*inside, "addr", "add", f"{host.address}/{subnet.prefixlen}", "dev", "eth0")
            _ip(*inside, "link", "set", "eth0", "up")
            _ip(*inside, "link", "set", "lo", "up")
        yield Network(bridge, gateway, hosts)
    finally:
        for host in made:  # a cable goes with either end, at once (a namespace may linger)
            subprocess.run(["ip", "link", "delete", host.link], capture_output=True)
            subprocess.run(["ip", "netns", "delete", host.namespace], capture_output=True)
        if made_bridge:
            subprocess.run(["ip", "link", "delete", bridge], capture_output=True)
