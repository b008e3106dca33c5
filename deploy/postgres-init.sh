#!/bin/sh
# One PostgreSQL role and one database per organisation, each role owning only its own database
# and no other role (PUBLIC included) allowed to connect to it. The postgres image runs this once,
# on an empty data volume (docker-entrypoint-initdb.d), as the superuser POSTGRES_USER.
#
# Environment: PRIVLEDGER_DB_ROLES ("bank_a:PASSWORD,..."; role and database privledger_bank_a),
# POSTGRES_USER, POSTGRES_DB; psql reaches the server as PGHOST/PGPORT/PGPASSWORD say (the
# image's init phase: the local socket).
set -eu
: "${PRIVLEDGER_DB_ROLES:?org:password pairs}"

for entry in $(printf '%s' "$PRIVLEDGER_DB_ROLES" | tr ',' ' '); do
    name="privledger_${entry%%:*}"
    psql -v ON_ERROR_STOP=1 -q --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
        -v name="$name" -v password="${entry#*:}" <<'SQL'
CREATE ROLE :"name" LOGIN PASSWORD :'password';
CREATE DATABASE :"name" OWNER :"name";
REVOKE ALL ON DATABASE :"name" FROM PUBLIC;
SQL
done
