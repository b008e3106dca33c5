"""TLS for node-to-node and client-to-node traffic, with certificates bound to on-chain identities.

Why not a consortium CA: a CA is one more key that can mint any node's identity, and one more
party to run, rotate and revoke; the chain already says who each organisation is, where its node
is (the endpoint its org admin published) and which accounts act for it. So a node's TLS
certificate is self-signed (P-256) and carries an **endorsement**: its org admin account's
EIP-191 signature over the organisation id and the SHA-256 of the certificate's public key.
A client accepts the server of ``https://host:port`` only if

- an Active organisation published exactly that endpoint on chain, and
- the certificate's public key is endorsed, for that organisation, by an account that holds
  ROLE_ORG_ADMIN in it now (the role that publishes the endpoint), and it is within its dates.

No CA is trusted (the system's roots play no part), so revoking the admin role on chain, or
publishing another endpoint, retires a certificate at once; nothing needs to be distributed
but the chain. The check runs inside the TLS handshake, before any byte of a request is sent.
The peer channel stays end-to-end encrypted on its own (Noise KK); TLS adds confidentiality of
everything else (bearer tokens, task specs, API answers) and of the traffic's shape.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import logging
import os
import ssl
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from privledger.evm.contracts import OrgRegistry, OrgStatus, Role
from privledger.node.endpoints import usable_endpoint

logger = logging.getLogger(__name__)

# a UUID-derived OID (ITU-T X.667), no registration needed: the endorsement extension
ENDORSEMENT_OID = x509.ObjectIdentifier("2.25.261417812392153424407442256466381946914")
CERT_DAYS = 365
ENDPOINT_CACHE_S = 5.0


class TlsIdentityError(ssl.SSLCertVerificationError):
    """A server's certificate does not match what the chain says of its endpoint."""


def endorsement_message(org_id: int, public_key_sha256: bytes) -> bytes:
    return f"privledger TLS key\norg {org_id}\nspki-sha256 {public_key_sha256.hex()}".encode()


def _spki_sha256(certificate: x509.Certificate) -> bytes:
    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).digest()


def issue_certificate(
    account: LocalAccount, org_id: int, host: str, cert_file: Path, key_file: Path
) -> x509.Certificate:
    """A new key and self-signed certificate for ``host`` (an IP address or a DNS name), endorsed
    by ``account`` for ``org_id``; the key is written readable by its owner only."""
    key = ec.generate_private_key(ec.SECP256R1())
    try:
        alt_name: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        alt_name = x509.DNSName(host)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"privledger org {org_id}")])
    now = datetime.datetime.now(datetime.UTC)
    unsigned = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
        .add_extension(x509.SubjectAlternativeName([alt_name]), critical=False)
    )
    spki = hashlib.sha256(
        key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).digest()
    signed = account.sign_message(encode_defunct(endorsement_message(org_id, spki)))
    endorsement = org_id.to_bytes(32, "big") + bytes(signed.signature)
    certificate = unsigned.add_extension(
        x509.UnrecognizedExtension(ENDORSEMENT_OID, endorsement), critical=False
    ).sign(key, hashes.SHA256())
    key_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return certificate


def endorser(certificate: x509.Certificate) -> tuple[int, str]:
    """The organisation a certificate claims and the account that endorsed its key for it;
    :class:`TlsIdentityError` if it carries no well-formed endorsement."""
    try:
        value = certificate.extensions.get_extension_for_oid(ENDORSEMENT_OID).value
    except x509.ExtensionNotFound:
        raise TlsIdentityError("the certificate carries no privledger endorsement") from None
    raw = value.value if isinstance(value, x509.UnrecognizedExtension) else b""
    if len(raw) != 32 + 65:
        raise TlsIdentityError("malformed endorsement")
    org_id = int.from_bytes(raw[:32], "big")
    message = encode_defunct(endorsement_message(org_id, _spki_sha256(certificate)))
    try:
        signer = Account.recover_message(message, signature=raw[32:])
    except Exception as exc:  # a signature that recovers no key
        raise TlsIdentityError(f"unreadable endorsement: {exc}") from exc
    return org_id, str(signer)


class ChainTrust:
    """Decides whether a certificate belongs to the node an on-chain endpoint names."""

    def __init__(self, orgs: OrgRegistry) -> None:
        self._orgs = orgs
        self._lock = threading.Lock()
        self._endpoints: dict[tuple[str, int], int] = {}
        self._read_at = float("-inf")

    def _org_at(self, host: str, port: int) -> int | None:
        """The Active organisation whose published endpoint is ``https://host:port`` (read
        from chain at most every few seconds, and again at once for an unknown endpoint)."""
        with self._lock:
            fresh = time.monotonic() - self._read_at < ENDPOINT_CACHE_S
            if not fresh or (host, port) not in self._endpoints:
                self._endpoints = {}
                for org_id in range(1, self._orgs.org_count() + 1):
                    org = self._orgs.get_org(org_id)
                    parts = urlsplit(usable_endpoint(org.endpoint))
                    if parts.scheme == "https" and org.status is OrgStatus.ACTIVE:
                        self._endpoints[(parts.hostname or "", parts.port or 443)] = org_id
                self._read_at = time.monotonic()
            return self._endpoints.get((host, port))

    def check(self, der: bytes, host: str, port: int) -> int:
        """The organisation whose node presented ``der`` at ``host:port``;
        :class:`TlsIdentityError` unless the chain vouches for it."""
        org_id = self._org_at(host, port)
        if org_id is None:
            raise TlsIdentityError(f"no organisation publishes https://{host}:{port} on chain")
        certificate = x509.load_der_x509_certificate(der)
        now = datetime.datetime.now(datetime.UTC)
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise TlsIdentityError("the certificate is not valid now")
        claimed, signer = endorser(certificate)
        if claimed != org_id or not self._orgs.has_org_role(org_id, signer, Role.ORG_ADMIN):
            raise TlsIdentityError(
                f"https://{host}:{port} is org {org_id}'s endpoint, but its certificate is "
                f"endorsed by {signer} for org {claimed}, not by an admin of org {org_id}"
            )
        return org_id


class _ChainVerifiedSocket(ssl.SSLSocket):
    def do_handshake(self, block: bool = False) -> None:
        super().do_handshake(block)
        context = self.context
        assert isinstance(context, ChainVerifiedContext)
        der = self.getpeercert(binary_form=True)
        if der is None:
            raise TlsIdentityError("the server presented no certificate")
        host, port = self.getpeername()[:2]
        context.trust.check(der, self.server_hostname or host, port)


class _UncheckedObject(ssl.SSLObject):
    def do_handshake(self) -> None:
        # an SSLObject (asyncio, httpx.AsyncClient) knows no peer port to look up on chain:
        # refused rather than left with CERT_NONE and no check at all
        raise TlsIdentityError("ChainVerifiedContext checks servers on sockets (httpx.Client)")


class ChainVerifiedContext(ssl.SSLContext):
    """A client context (TLS 1.3) that accepts a server by the chain alone (:class:`ChainTrust`),
    checked in the handshake; give it to ``httpx.Client(verify=...)`` (a blocking socket: an
    asyncio client's handshake is refused)."""

    trust: ChainTrust

    def __new__(cls, trust: ChainTrust) -> ChainVerifiedContext:
        context = super().__new__(cls, ssl.PROTOCOL_TLS_CLIENT)
        context.trust = trust
        context.check_hostname = False  # the endorsement, not a CA, binds the name
        context.verify_mode = ssl.CERT_NONE
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.sslsocket_class = _ChainVerifiedSocket
        context.sslobject_class = _UncheckedObject
        return context


def ensure_certificate(
    account: LocalAccount, org_id: int, endpoint: str, cert_file: Path, key_file: Path
) -> None:
    """Issue the node's certificate for its endpoint's host when it has none (one put there by
    an operator is kept as it is: clients check it against the chain)."""
    if cert_file.is_file() and key_file.is_file():
        return
    host = urlsplit(endpoint).hostname or ""
    certificate = issue_certificate(account, org_id, host, cert_file, key_file)
    logger.info("issued a TLS certificate for %s (serial %x)", host, certificate.serial_number)
