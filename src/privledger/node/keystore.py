"""The node's encrypted keystore: the organisation's Ethereum accounts and its X25519 node key.

Accounts are stored one file each in the standard Ethereum keystore v3 format (scrypt + AES-128-CTR,
``eth-account``); the node key as a password-encrypted PKCS#8 PEM (``cryptography``). Files are
written with mode 0600. The password never touches disk.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

NODE_KEY_FILE = "node-key.pem"
STANDARD_SCRYPT_N = 2**18  # the keystore v3 standard's cost: ~0.5 s of CPU here per key, each way
# the cost for a home under the public development password (config.DEV_KEYSTORE_PASSWORD): the
# password is no secret, so no scrypt cost protects its keys (anvil's well-known accounts in the
# demo); the standard cost made each dev home and each node start ~1 s of CPU (2 s on a loaded
# CI machine) per key, for nothing. Any other password keeps the standard cost.
DEV_SCRYPT_N = 2**10


class KeystoreError(RuntimeError):
    """A key is missing, or the password does not open it."""


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


class Keystore:
    """Keys under ``directory``, opened with one password.

    ``scrypt_n`` is the scrypt cost of the keys it writes (the standard's by default; a key is
    read at the cost its file records).
    """

    def __init__(
        self, directory: Path, password: str, *, scrypt_n: int = STANDARD_SCRYPT_N
    ) -> None:
        if not password:
            raise KeystoreError("an empty keystore password is refused")
        self.directory = directory
        self._password = password
        self._scrypt_n = scrypt_n
        self._unlocked: dict[str, LocalAccount] = {}

    def _account_path(self, address: str) -> Path:
        return self.directory / f"{to_checksum_address(address)}.json"

    def import_key(self, private_key: bytes | str) -> LocalAccount:
        """Store an existing account key, encrypted; returns the account."""
        account: LocalAccount = Account.from_key(private_key)
        encrypted = Account.encrypt(
            account.key, self._password, kdf="scrypt", iterations=self._scrypt_n
        )
        _write_private(self._account_path(account.address), json.dumps(encrypted).encode())
        self._unlocked[account.address] = account
        return account

    def create_account(self) -> LocalAccount:
        """A new account from 32 bytes of ``secrets``."""
        return self.import_key(secrets.token_bytes(32))

    def addresses(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(path.stem for path in self.directory.glob("0x*.json"))

    def account(self, address: str) -> LocalAccount:
        """The decrypted account; raises KeystoreError for an unknown address or a bad password."""
        checksum = to_checksum_address(address)
        if checksum in self._unlocked:
            return self._unlocked[checksum]
        path = self._account_path(checksum)
        if not path.is_file():
            raise KeystoreError(f"no key for {checksum} in the keystore")
        try:
            key = Account.decrypt(json.loads(path.read_text()), self._password)
        except ValueError as exc:
            raise KeystoreError(f"cannot open the key of {checksum}: {exc}") from exc
        account: LocalAccount = Account.from_key(key)
        self._unlocked[checksum] = account
        return account

    def node_key(self) -> X25519PrivateKey:
        """The node's X25519 key, created on first use."""
        path = self.directory / NODE_KEY_FILE
        password = self._password.encode()
        if not path.is_file():
            key = X25519PrivateKey.generate()
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(password),
            )
            _write_private(path, pem)
            return key
        try:
            loaded = serialization.load_pem_private_key(path.read_bytes(), password)
        except (ValueError, TypeError) as exc:
            raise KeystoreError(f"cannot open the node key: {exc}") from exc
        if not isinstance(loaded, X25519PrivateKey):
            raise KeystoreError("the node key file does not hold an X25519 key")
        return loaded


def node_public_key(key: X25519PrivateKey) -> bytes:
    """The 32 raw bytes registered on chain."""
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
