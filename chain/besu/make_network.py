"""Generate the DEVELOPMENT 4-validator Besu QBFT network in this directory.

The keys written here are development keys for a local test network: never use them on a network
that holds anything of value.

    .venv/bin/python chain/besu/make_network.py                  # keep keys, rewrite derived files
    .venv/bin/python chain/besu/make_network.py --new-keys       # fresh keys from `secrets`
    .venv/bin/python chain/besu/make_network.py --allow-account 0xORG...   # extend the allowlist

Only the private keys and passwords are random (`secrets`). Everything else -- key.pub, addresses,
the genesis extraData, enode URLs, static-nodes.json, permissions_config.toml, network.json,
orgs.env, postgres.env -- is derived from them deterministically, so a run without --new-keys
reproduces the committed files byte for byte.

The organisations' files (orgs/NAME.env: node account key, keystore password, database URL) stand
in, for the single-machine compose network, for what each organisation makes on its own machine
(docs/operations.md): only their addresses are public (orgs.env, the allowlist).
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
ORGS = ("bank-a", "bank-b", "telecom")  # the compose network's organisation nodes


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


def read_env(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines() if path.is_file() else []
    pairs = (line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))
    return {name: value for name, value in pairs}


def org_secrets(org: str, fresh: bool) -> tuple[str, str]:
    """orgs/ORG.env: the node's account key, keystore password and database URL (with its role's
    password); kept unless ``fresh``. Its account address and database password."""
    path = HERE / "orgs" / f"{org}.env"
    env = {} if fresh else read_env(path)
    if "PRIVLEDGER_NODE_KEY" not in env:
        role = "privledger_" + org.replace("-", "_")
        password = secrets.token_hex(16)
        env = {
            "PRIVLEDGER_NODE_KEY": new_key().to_hex(),
            "PRIVLEDGER_KEYSTORE_PASSWORD": secrets.token_hex(16),
            "PRIVLEDGER_DATABASE_URL": f"postgresql+psycopg://{role}:{password}@postgres:5432/{role}",
        }
        path.parent.mkdir(exist_ok=True)
        path.write_text(
            f"# DEVELOPMENT secrets of {org}'s node for the local compose network "
            "(make_network.py).\n" + "".join(f"{name}={value}\n" for name, value in env.items())
        )
    key = PrivateKey(bytes.fromhex(env["PRIVLEDGER_NODE_KEY"].removeprefix("0x")))
    password = env["PRIVLEDGER_DATABASE_URL"].split("@", 1)[0].rsplit(":", 1)[1]
    return key.public_key.to_checksum_address(), password


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
        # a block every 2 s while there are transactions, an empty one only every 60 s
        "qbft": {
            "blockperiodseconds": 2,
            "emptyblockperiodseconds": 60,
            "epochlength": 30000,
            "requesttimeoutseconds": 4,
        },
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
    orgs = {org: org_secrets(org, args.new_keys) for org in ORGS}

    validators = sorted(bytes.fromhex(n["address"][2:]) for n in nodes)
    decoded = rlp.decode(bytes.fromhex(qbft_extra_data(validators)[2:]))
    assert decoded[1] == validators, "extraData does not round-trip"

    perms = HERE / "permissions_config.toml"
    accounts = [admin.lower(), *(address.lower() for address, _ in orgs.values())]
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
    (HERE / "orgs.env").write_text(
        "# The compose network's organisations and their node accounts (make_network.py).\n"
        "PRIVLEDGER_ORGS="
        + ",".join(f"{org}={address}" for org, (address, _) in orgs.items())
        + "\n"
    )
    (HERE / "postgres.env").write_text(
        "# DEVELOPMENT passwords of the organisations' database roles (make_network.py).\n"
        "PRIVLEDGER_DB_ROLES="
        + ",".join(f"{org.replace('-', '_')}:{password}" for org, (_, password) in orgs.items())
        + "\n"
    )
    summary = {
        "chainId": CHAIN_ID,
        "admin": admin,
        "validators": nodes,
        "orgs": {org: address for org, (address, _) in orgs.items()},
        "allowlist": accounts,
    }
    (HERE / "network.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
