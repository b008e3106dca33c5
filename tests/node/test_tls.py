"""Certificates bound to on-chain identities (node/tls.py), against a real chain: the server of
an endpoint is accepted only with a key endorsed for the organisation that published it, by an
account that is that organisation's admin now."""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from eth_account import Account

from privledger.evm.accounts import dev_account
from privledger.evm.contracts import Role
from privledger.evm.ledger import Ledger
from privledger.node.tls import (
    ChainTrust,
    ChainVerifiedContext,
    TlsIdentityError,
    endorser,
    issue_certificate,
)

HOST, PORT = "10.9.8.7", 8000
ENDPOINT = f"https://{HOST}:{PORT}"


def _der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


@pytest.fixture
def org(ledger: Ledger) -> int:
    return ledger.orgs.register_org("tls-bank", dev_account(7).address, ENDPOINT, bytes(32))


def test_the_admins_endorsement_is_accepted_at_the_published_endpoint(
    ledger: Ledger, org: int, tmp_path: Path
) -> None:
    certificate = issue_certificate(
        dev_account(7), org, HOST, tmp_path / "cert.pem", tmp_path / "key.pem"
    )
    assert endorser(certificate) == (org, dev_account(7).address)
    assert ChainTrust(ledger.orgs).check(_der(certificate), HOST, PORT) == org
    assert (tmp_path / "key.pem").stat().st_mode & 0o777 == 0o600
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == [HOST]


@pytest.mark.parametrize(
    ("who", "why"),
    [
        ("stranger", "endorsed by"),  # no member of any organisation
        ("other-org", "endorsed by"),  # an admin, of another organisation
        ("copied", "endorsed by"),  # the admin's endorsement pasted onto another key
        ("none", "no privledger endorsement"),
    ],
)
def test_a_certificate_the_chain_does_not_vouch_for_is_refused(
    ledger: Ledger, org: int, tmp_path: Path, who: str, why: str
) -> None:
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    if who == "stranger":
        certificate = issue_certificate(Account.create(), org, HOST, cert_file, key_file)
    elif who == "other-org":
        other = ledger.orgs.register_org("tls-other", dev_account(8).address, "", bytes(32))
        certificate = issue_certificate(dev_account(8), other, HOST, cert_file, key_file)
    else:
        genuine = issue_certificate(dev_account(7), org, HOST, cert_file, key_file)
        certificate = _self_signed(genuine.extensions if who == "copied" else None)
    with pytest.raises(TlsIdentityError, match=why):
        ChainTrust(ledger.orgs).check(_der(certificate), HOST, PORT)


def test_unpublished_endpoint_and_revoked_admin_are_refused(
    ledger: Ledger, org: int, tmp_path: Path
) -> None:
    certificate = issue_certificate(
        dev_account(7), org, HOST, tmp_path / "cert.pem", tmp_path / "key.pem"
    )
    with pytest.raises(TlsIdentityError, match="no organisation publishes"):
        ChainTrust(ledger.orgs).check(_der(certificate), HOST, PORT + 1)
    ledger.orgs.revoke_roles(org, dev_account(7).address, Role.ORG_ADMIN)
    with pytest.raises(TlsIdentityError, match="endorsed by"):  # retired at once
        ChainTrust(ledger.orgs).check(_der(certificate), HOST, PORT)


def test_an_asyncio_handshake_is_refused_not_left_unchecked(ledger: Ledger) -> None:
    context = ChainVerifiedContext(ChainTrust(ledger.orgs))
    unchecked = context.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname=HOST)
    with pytest.raises(TlsIdentityError):
        unchecked.do_handshake()


def _self_signed(extensions: x509.Extensions | None) -> x509.Certificate:
    """A fresh key's certificate, carrying ``extensions`` (another certificate's) if given."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "impostor")])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    for extension in extensions or ():
        builder = builder.add_extension(extension.value, extension.critical)
    return builder.sign(key, hashes.SHA256())
