#!/usr/bin/env bash
# docker-entrypoint.sh for bankwire-ci/postgres:15, a PostgreSQL image built
# offline from Debian packages because CI cannot pull the official image.
#
# It follows the contract of the official postgres image's entrypoint, because
# docker-compose.yml and testcontainers-go's postgres module rely on it:
#   - POSTGRES_USER (default postgres), POSTGRES_PASSWORD, POSTGRES_DB (default
#     $POSTGRES_USER), POSTGRES_INITDB_ARGS, POSTGRES_HOST_AUTH_METHOD;
#   - PGDATA (default /var/lib/postgresql/data) is initialised on first start;
#   - /docker-entrypoint-initdb.d/*.sh, *.sql, *.sql.gz run once, after initdb;
#   - a temporary server (no TCP) creates the database, is stopped, and then the
#     real server is exec'd listening on all addresses. Both servers log
#     "database system is ready to accept connections", which is what
#     testcontainers-go's postgres module waits for (twice).
#   - it starts as root only to fix directory ownership and then drops to the
#     postgres user; the server never runs as root.
set -Eeuo pipefail

log() { printf '%s [entrypoint] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Allow "docker run image -c fsync=off" like the official image.
if [ "$#" -eq 0 ] || [ "${1:0:1}" = '-' ]; then
	set -- postgres "$@"
fi

export PGDATA="${PGDATA:-/var/lib/postgresql/data}"
export POSTGRES_USER="${POSTGRES_USER:-postgres}"
export POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"

if [ "$1" != 'postgres' ]; then
	# Any other command (psql, pg_isready, bash ...) runs as given.
	exec "$@"
fi

if [ "$(id -u)" = '0' ]; then
	mkdir -p "$PGDATA" /var/run/postgresql
	chown -R postgres:postgres "$PGDATA"
	chmod 0700 "$PGDATA"
	chown postgres:postgres /var/run/postgresql
	chmod 3777 /var/run/postgresql
	exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
	auth_method="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
	if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth_method" != 'trust' ]; then
		die 'the database is uninitialized and POSTGRES_PASSWORD is not set; set POSTGRES_PASSWORD (or POSTGRES_HOST_AUTH_METHOD=trust for throwaway use)'
	fi
	[ "${#POSTGRES_USER}" -le 63 ] || die 'POSTGRES_USER is longer than 63 characters'

	log "initialising $PGDATA for user $POSTGRES_USER"
	# The password travels through a pipe, never argv, so ps cannot see it.
	# shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a word list on purpose.
	initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "${POSTGRES_PASSWORD:-}") \
		--encoding=UTF8 --locale=C.UTF-8 ${POSTGRES_INITDB_ARGS:-}

	# Local socket connections are trusted (as in the official image); every
	# network client must authenticate.
	printf '\nhost all all all %s\n' "$auth_method" >>"$PGDATA/pg_hba.conf"
	sed -ri "s/^#?(listen_addresses\s*=\s*)\S+/\1'*'/" "$PGDATA/postgresql.conf"

	# Temporary server: Unix socket only, so no client can connect before
	# the database and init scripts are in place.
	pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w -t 60 start

	psql_cmd=(psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname postgres)
	if [ "$POSTGRES_DB" != 'postgres' ]; then
		exists="$("${psql_cmd[@]}" -tA --set db="$POSTGRES_DB" <<<"SELECT 1 FROM pg_database WHERE datname = :'db';")"
		if [ -z "$exists" ]; then
			log "creating database $POSTGRES_DB"
			"${psql_cmd[@]}" --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
		fi
	fi

	shopt -s nullglob
	for f in /docker-entrypoint-initdb.d/*; do
		case "$f" in
		*.sh)
			if [ -x "$f" ]; then
				log "running $f"
				"$f"
			else
				log "sourcing $f"
				# shellcheck disable=SC1090
				. "$f"
			fi
			;;
		*.sql) log "running $f"; "${psql_cmd[@]}" --dbname "$POSTGRES_DB" -f "$f" ;;
		*.sql.gz) log "running $f"; gunzip -c "$f" | "${psql_cmd[@]}" --dbname "$POSTGRES_DB" ;;
		*) log "ignoring $f" ;;
		esac
	done
	shopt -u nullglob

	pg_ctl -D "$PGDATA" -m fast -w -t 60 stop
	log 'PostgreSQL init process complete; ready for start up.'
else
	log "PostgreSQL database directory appears to contain a database; skipping initialization"
fi

exec "$@"
