-- DEVELOPMENT database layout for docker-compose.yml: one database per organisation node, owned by
-- the compose POSTGRES_USER (privledger). The postgres image runs this once, on an empty data volume.
CREATE DATABASE privledger_bank_a;
CREATE DATABASE privledger_bank_b;
CREATE DATABASE privledger_telecom;
