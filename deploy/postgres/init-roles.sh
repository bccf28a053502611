#!/bin/sh
# Runs once, when the postgres container initializes its data directory
# (/docker-entrypoint-initdb.d). payd uses two roles, neither a superuser:
#   payd_owner  owns database payd and schema public; runs `payd migrate`
#               (PAYD_MIGRATE_DATABASE_URL)
#   payd_app    what intake, worker, scheduler and monitor connect as
#               (DATABASE_URL); owns nothing; `payd migrate` grants it
#               SELECT/INSERT/UPDATE/DELETE on the tables and USAGE/SELECT on
#               the sequences (PAYD_APP_DB_ROLE), and nothing else.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
	-v owner_pw="$PAYD_OWNER_DB_PASSWORD" -v app_pw="$PAYD_APP_DB_PASSWORD" <<'SQL'
CREATE ROLE payd_owner LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB PASSWORD :'owner_pw';
CREATE ROLE payd_app LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB PASSWORD :'app_pw';
ALTER DATABASE payd OWNER TO payd_owner;
ALTER SCHEMA public OWNER TO payd_owner;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
SQL
