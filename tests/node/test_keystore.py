from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from privledger.node.keystore import Keystore, KeystoreError, node_public_key

FAST_SCRYPT = 2**10


def test_accounts_round_trip_encrypted(tmp_path: Path) -> None:
    store = Keystore(tmp_path, "correct horse", scrypt_n=FAST_SCRYPT)
    account = store.create_account()
    path = tmp_path / f"{account.address}.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert account.key.hex() not in path.read_text()  # encrypted at rest
    assert json.loads(path.read_text())["crypto"]["kdf"] == "scrypt"
    reopened = Keystore(tmp_path, "correct horse")
    assert reopened.addresses() == [account.address]
    assert reopened.account(account.address).key == account.key


def test_wrong_password_unknown_address_and_empty_password(tmp_path: Path) -> None:
    account = Keystore(tmp_path, "right", scrypt_n=FAST_SCRYPT).create_account()
    with pytest.raises(KeystoreError, match="cannot open"):
        Keystore(tmp_path, "wrong").account(account.address)
    with pytest.raises(KeystoreError, match="no key"):
        Keystore(tmp_path, "right").account("0x" + "11" * 20)
    with pytest.raises(KeystoreError, match="empty"):
        Keystore(tmp_path, "")


def test_tampered_keyfile_is_refused(tmp_path: Path) -> None:
    account = Keystore(tmp_path, "pw", scrypt_n=FAST_SCRYPT).create_account()
    path = tmp_path / f"{account.address}.json"
    document = json.loads(path.read_text())
    ciphertext = document["crypto"]["ciphertext"]
    document["crypto"]["ciphertext"] = ("0" if ciphertext[0] != "0" else "1") + ciphertext[1:]
    path.write_text(json.dumps(document))
    with pytest.raises(KeystoreError):
        Keystore(tmp_path, "pw").account(account.address)


def test_node_key_is_stable_and_password_protected(tmp_path: Path) -> None:
    first = Keystore(tmp_path, "pw").node_key()
    again = Keystore(tmp_path, "pw").node_key()
    assert node_public_key(first) == node_public_key(again)
    assert len(node_public_key(first)) == 32
    with pytest.raises(KeystoreError):
        Keystore(tmp_path, "other").node_key()
