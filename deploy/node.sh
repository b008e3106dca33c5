#!/bin/sh
# One organisation's node (docker-compose services `node-*`): make its home on first start, bring
# its database to the newest schema, run it.
#
# First start: the node account's key is loaded from PRIVLEDGER_NODE_KEY into the encrypted
# keystore in PRIVLEDGER_HOME, or, without it, drawn here (`--new-key`): then give the printed
# account to the consortium admin, who admits it (deploy/deployer.sh) before the node can run.
# Later starts use the keystore; the key is never passed on to the running node.
#
# Environment: PRIVLEDGER_ORG, PRIVLEDGER_HOME, PRIVLEDGER_KEYSTORE_PASSWORD,
# PRIVLEDGER_DATABASE_URL, PRIVLEDGER_RPC_URL, PRIVLEDGER_PUBLIC_URL, PRIVLEDGER_HOST,
# PRIVLEDGER_PORT, PRIVLEDGER_DEPLOYMENTS_PATH; PRIVLEDGER_NODE_KEY on first start.
set -eu
: "${PRIVLEDGER_ORG:?the organisation's name}"
: "${PRIVLEDGER_HOME:?the node's home directory}"
: "${PRIVLEDGER_KEYSTORE_PASSWORD:?the keystore password (an env file or a secret)}"

if [ ! -f "$PRIVLEDGER_HOME/node.json" ]; then
    if [ -n "${PRIVLEDGER_NODE_KEY:-}" ]; then
        privledger node init --org "$PRIVLEDGER_ORG" --home "$PRIVLEDGER_HOME"
    else
        privledger node init --org "$PRIVLEDGER_ORG" --home "$PRIVLEDGER_HOME" --new-key
    fi
fi
unset PRIVLEDGER_NODE_KEY

privledger node migrate --org "$PRIVLEDGER_ORG" --home "$PRIVLEDGER_HOME"
exec privledger -v node run --org "$PRIVLEDGER_ORG" --home "$PRIVLEDGER_HOME"
