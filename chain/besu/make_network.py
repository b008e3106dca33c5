"""Generate the DEVELOPMENT 4-validator Besu QBFT network in this directory.

The keys written here are development keys for a local test network: never use them on a network
that holds anything of value.

    .venv/bin/python chain/besu/make_network.py                  # keep keys, rewrite derived files
    .venv/bin/python chain/besu/make_network.py --new-keys       # fresh keys from `secrets`
    .venv/bin/python chain/besu/make_network.py --allow-account 0xORG...   # extend the allowlist

Only the private keys are random (`secrets`). Everything else -- key.pub, addresses, the genesis
extraData, enode URLs, static-nodes.json, permissions_config.toml, network.json -- is derived from
them deterministically, so a run without --new-keys reproduces the committed files byte for byte.
"""

from __future__ import annotations

import argparse
import json
import secrets
import tomllib
from pathlib import Path

import rlp
from eth_keys.datatypes import PrivateKey
from eth_utils.address import to_checksum_address
from eth_utils.exceptions import ValidationError

HERE = Path(__file__).resolve().parent
CHAIN_ID = 1337  # anvil (the embedded default) is 31337
VALIDATORS = 4
IP_PREFIX = "172.30.37."  # must match the `default` network in docker-compose.yml
P2P_PORT = 30303
ADMIN_BALANCE = 10**27  # wei; gas is free, this only funds value transfers (fees, escrow)


def new_key() -> PrivateKey:
    while True:
        try:
            return PrivateKey(secrets.token_bytes(32))
        except ValidationError:  # 0 or >= the curve order: astronomically rare, draw again
            continue


def load_or_create(path: Path, fresh: bool) -> PrivateKey:
    if fresh or not path.is_file():
        key = new_key()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(key.to_hex() + "\n")
        return key
    return PrivateKey(bytes.fromhex(path.read_text().strip().removeprefix("0x")))


def read_admin(path: Path, fresh: bool) -> PrivateKey:
    """``admin.env`` holds PRIVLEDGER_ADMIN_KEY for the compose deployer."""
    if not fresh and path.is_file():
        for line in path.read_text().splitlines():
            if line.startswith("PRIVLEDGER_ADMIN_KEY="):
                value = line.split("=", 1)[1].strip().removeprefix("0x")
                return PrivateKey(bytes.fromhex(value))
    key = new_key()
    path.write_text(
        "# DEVELOPMENT consortium-admin key for the local compose network (make_network.py).\n"
        f"PRIVLEDGER_ADMIN_KEY={key.to_hex()}\n"
    )
    return key


def qbft_extra_data(addresses: list[bytes]) -> str:
    """Besu QBFT extraData: RLP([32-byte vanity, [validators], vote [], round 0, seals []])."""
    encoded: bytes = rlp.encode([b"\x00" * 32, addresses, [], 0, []])
    return "0x" + encoded.hex()


def genesis(validators: list[bytes], admin: str) -> dict[str, object]:
    milestones = ["homestead", "eip150", "eip155", "eip158", "byzantium", "constantinople"]
    milestones += ["petersburg", "istanbul", "muirGlacier", "berlin", "london"]
    config: dict[str, object] = {"chainId": CHAIN_ID}
    config |= {f"{name}Block": 0 for name in milestones}
    config |= {
        "shanghaiTime": 0,
        "cancunTime": 0,  # contracts are compiled for evmVersion cancun (MCOPY, TSTORE)
        "zeroBaseFee": True,
        "contractSizeLimit": 2147483647,
        "qbft": {"blockperiodseconds": 2, "epochlength": 30000, "requesttimeoutseconds": 4},
    }
    return {
        "config": config,
        "nonce": "0x0",
        "timestamp": "0x58ee40ba",
        "gasLimit": "0x1fffffffffffff",
        "baseFeePerGas": "0x0",
        "difficulty": "0x1",
        "mixHash": "0x63746963616c2062797a616e74696e65206661756c7420746f6c6572616e6365",
        "coinbase": "0x0000000000000000000000000000000000000000",
        "extraData": qbft_extra_data(validators),
        "alloc": {
            admin[2:].lower(): {"balance": hex(ADMIN_BALANCE), "comment": "consortium admin"}
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new-keys", action="store_true", help="replace every key (new chain)")
    parser.add_argument(
        "--allow-account",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="add an account (e.g. an organisation's) to the accounts allowlist",
    )
    args = parser.parse_args()

    nodes = []
    for i in range(1, VALIDATORS + 1):
        key = load_or_create(HERE / f"validator{i}" / "key", args.new_keys)
        pub = key.public_key
        (HERE / f"validator{i}" / "key.pub").write_text(pub.to_hex() + "\n")
        enode = f"enode://{pub.to_hex()[2:]}@{IP_PREFIX}{10 + i}:{P2P_PORT}"
        nodes.append(
            {"name": f"validator{i}", "address": pub.to_checksum_address(), "enode": enode}
        )
    admin = read_admin(HERE / "admin.env", args.new_keys).public_key.to_checksum_address()

    validators = sorted(bytes.fromhex(n["address"][2:]) for n in nodes)
    decoded = rlp.decode(bytes.fromhex(qbft_extra_data(validators)[2:]))
    assert decoded[1] == validators, "extraData does not round-trip"

    perms = HERE / "permissions_config.toml"
    accounts = [admin.lower()]
    if perms.is_file() and not args.new_keys:
        accounts += tomllib.loads(perms.read_text()).get("accounts-allowlist", [])
    accounts += [to_checksum_address(a).lower() for a in args.allow_account]
    accounts = list(dict.fromkeys(accounts))  # de-duplicate, keep order
    enodes = [n["enode"] for n in nodes]

    def toml_list(items: list[str]) -> str:
        return "[\n" + ",\n".join(f'  "{item}"' for item in items) + "\n]\n"

    perms.write_text(
        "# DEVELOPMENT network permissions, generated by make_network.py.\n"
        "accounts-allowlist=" + toml_list(accounts) + "nodes-allowlist=" + toml_list(enodes)
    )
    (HERE / "static-nodes.json").write_text(json.dumps(enodes, indent=2) + "\n")
    (HERE / "genesis.json").write_text(json.dumps(genesis(validators, admin), indent=2) + "\n")
    summary = {"chainId": CHAIN_ID, "admin": admin, "validators": nodes, "allowlist": accounts}
    (HERE / "network.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
