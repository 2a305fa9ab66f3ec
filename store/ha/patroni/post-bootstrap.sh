#!/bin/sh
# Patroni runs this once, on the node that initialises the cluster, with a
# superuser connection string as its argument: it creates the application's
# role and database. Replicas copy them with everything else.
set -eu
psql "$1" -v ON_ERROR_STOP=1 --no-psqlrc -v pw="$BANKWIRE_DB_PASSWORD" <<'SQL'
CREATE ROLE bankwire LOGIN PASSWORD :'pw';
CREATE DATABASE bankwire OWNER bankwire;
SQL
