#!/bin/sh
# The consortium admin's one-shot job (docker-compose service `deployer`): compile, deploy the
# ledger (or reuse the deployment recorded for this chain), then admit every organisation listed in
# PRIVLEDGER_ORGS ("name=0xACCOUNT,..."): register it with its node account as admin, grant it the
# data-owner and operator roles and fund the account for task fees. Each step is skipped when the
# chain already shows it, so running the job again changes nothing.
#
# Environment: PRIVLEDGER_ADMIN_KEY (the consortium admin's key), PRIVLEDGER_RPC_URL,
# PRIVLEDGER_DEPLOYMENTS_PATH (where the deployment record goes), PRIVLEDGER_ORGS.
set -eu
: "${PRIVLEDGER_ADMIN_KEY:?the consortium admin key (an env file or a secret)}"
: "${PRIVLEDGER_RPC_URL:?the chain's JSON-RPC URL}"

privledger compile
privledger deploy

orgs=$(printf '%s' "${PRIVLEDGER_ORGS:-}" | tr ',' ' ')
for entry in $orgs; do
    privledger consortium admit --org "${entry%%=*}" --account "${entry#*=}"
done
