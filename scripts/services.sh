#!/usr/bin/env bash
# scripts/services.sh — private PostgreSQL + Redis instances for payd.
#
#   scripts/services.sh up   [NAME]   start (or reuse) instances; prints the env file path
#   scripts/services.sh down [NAME]   stop them and remove their state (idempotent)
#   scripts/services.sh env  [NAME]   print the env file path of a running instance
#   scripts/services.sh prune         tear down .run/test-<pid> instances whose script died
#
# NAME defaults to $PAYD_RUN_NAME, then "dev". State lives in $PAYD_RUN_DIR,
# default <repo>/.run/<NAME>. Nothing here touches the system services on
# 5432/6379: each instance listens on 127.0.0.1 on ports picked at start.
#
# Typical use:   source "$(scripts/services.sh up)"
#
# Logs go to stderr; stdout carries only the env file path.
set -euo pipefail

# runuser/useradd live in sbin, which a minimal CI PATH may lack.
for _d in /usr/local/sbin /usr/sbin /sbin; do
	case ":$PATH:" in *":$_d:"*) ;; *) PATH="$PATH:$_d" ;; esac
done
export PATH

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# libpq/redis-cli environment that could redirect or break our own commands.
unset PGHOST PGHOSTADDR PGPORT PGUSER PGDATABASE PGPASSWORD PGSERVICE PGOPTIONS PGSSLMODE PGDATA || true

log() { printf 'services.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
	sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

cmd="${1:-}"
[[ -n "$cmd" ]] || usage
shift || true
NAME="${1:-${PAYD_RUN_NAME:-dev}}"
[[ "$NAME" =~ ^[A-Za-z0-9._-]+$ ]] || die "bad instance name: $NAME"
RUN_DIR="${PAYD_RUN_DIR:-$REPO_ROOT/.run/$NAME}"

IS_ROOT=0
[[ "$(id -u)" -eq 0 ]] && IS_ROOT=1

# ---------------------------------------------------------------- binaries

find_pg_bin() {
	# Newest Debian versioned bindir that has a server (a newer client-only
	# package, e.g. postgresql-client-16, has psql but no initdb/postgres).
	local d
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
		if [[ -x "$d/initdb" && -x "$d/pg_ctl" && -x "$d/postgres" ]]; then
			printf '%s\n' "$d"
			return 0
		fi
	done
	# Non-Debian layout: binaries on PATH.
	if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
		dirname "$(command -v initdb)"
		return 0
	fi
	return 1
}

ensure_binaries() {
	local missing=()
	find_pg_bin >/dev/null || missing+=(postgresql)
	{ command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; } || missing+=(redis-server)
	[[ ${#missing[@]} -eq 0 ]] && return 0

	log "missing: ${missing[*]}; installing from Debian packages"
	local sudo=()
	if [[ $IS_ROOT -eq 0 ]]; then
		command -v sudo >/dev/null 2>&1 || die "need root (or sudo) to apt-get install ${missing[*]}"
		sudo=(sudo -n)
	fi
	command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install PostgreSQL and Redis server binaries by hand"
	# Always install both: redis-server brings redis-cli (redis-tools), postgresql
	# brings the versioned server package. The packages' own system clusters and
	# services are not used by this script.
	export DEBIAN_FRONTEND=noninteractive
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 </dev/null
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
		postgresql redis-server >&2 </dev/null
	find_pg_bin >/dev/null || die "PostgreSQL binaries still not found after install"
	command -v redis-server >/dev/null 2>&1 || die "redis-server still not found after install"
}

# ---------------------------------------------------------------- helpers

# User that runs postgres (it refuses to run as root).
pg_user() {
	if [[ $IS_ROOT -eq 0 ]]; then
		id -un
		return
	fi
	if id -u postgres >/dev/null 2>&1; then
		echo postgres
		return
	fi
	if ! id -u payd-pg >/dev/null 2>&1; then
		log "creating system user payd-pg"
		useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin payd-pg
	fi
	echo payd-pg
}

# Run a command as the postgres-running user, from a directory it can enter.
as_pg() {
	if [[ $IS_ROOT -eq 1 ]]; then
		(cd / && runuser -u "$PG_USER" -- "$@")
	else
		(cd / && "$@")
	fi
}

# Can the postgres user reach (traverse + write) directory $1?
pg_can_use_dir() {
	as_pg test -w "$1" -a -x "$1" 2>/dev/null
}

free_port() {
	# Ask the kernel for a free port; fall back to probing with ss.
	local p
	if command -v python3 >/dev/null 2>&1 &&
		p="$(python3 -c 'import socket
s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()' 2>/dev/null)" &&
		[[ "$p" =~ ^[0-9]+$ ]]; then
		echo "$p"
		return
	fi
	local _
	for _ in $(seq 1 200); do
		p=$((20000 + RANDOM % 20000))
		if ! ss -Hltn "sport = :$p" 2>/dev/null | grep -q .; then
			echo "$p"
			return
		fi
	done
	die "could not find a free TCP port"
}

pid_alive() {
	[[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null
}

# ---------------------------------------------------------------- state

# Files in $RUN_DIR:
#   env          export lines (the only public file)
#   pg_root      directory holding data/, sock/ and postgres.log (usually $RUN_DIR/pg)
#   pg_bin       bindir used
#   redis.pid    redis-server pid;  redis.port
#   owner_pid    pid of the script that asked for the instance (test runs), optional

read_state() {
	PG_ROOT="$(cat "$RUN_DIR/pg_root" 2>/dev/null || true)"
	PG_BIN_STATE="$(cat "$RUN_DIR/pg_bin" 2>/dev/null || true)"
	REDIS_PORT_STATE="$(cat "$RUN_DIR/redis.port" 2>/dev/null || true)"
	REDIS_PID_STATE="$(cat "$RUN_DIR/redis.pid" 2>/dev/null || true)"
}

pg_postmaster_pid() {
	local f="$1/data/postmaster.pid"
	if [[ -r "$f" ]]; then head -1 "$f" 2>/dev/null || true; fi
}

is_running() {
	[[ -f "$RUN_DIR/env" ]] || return 1
	read_state
	[[ -n "$PG_ROOT" ]] || return 1
	local ppid
	ppid="$(pg_postmaster_pid "$PG_ROOT")"
	pid_alive "$ppid" || return 1
	pid_alive "$REDIS_PID_STATE" || return 1
	"$PG_BIN_STATE/pg_isready" -q -h 127.0.0.1 -p "$(. "$RUN_DIR/env" && echo "$PAYD_PG_PORT")" -U postgres </dev/null || return 1
	[[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT_STATE" ping 2>/dev/null </dev/null)" == PONG ]] || return 1
}

wait_gone() { # pid timeout_seconds
	local pid="$1" n=$(($2 * 10))
	while pid_alive "$pid" && ((n-- > 0)); do sleep 0.1; done
	! pid_alive "$pid"
}

# ---------------------------------------------------------------- down

do_down() {
	if [[ ! -d "$RUN_DIR" ]]; then
		log "nothing to stop in $RUN_DIR"
		return 0
	fi
	read_state
	local rc=0

	# Redis.
	if pid_alive "$REDIS_PID_STATE"; then
		log "stopping redis (pid $REDIS_PID_STATE, port $REDIS_PORT_STATE)"
		redis-cli -h 127.0.0.1 -p "$REDIS_PORT_STATE" shutdown nosave >/dev/null 2>&1 </dev/null || true
		if ! wait_gone "$REDIS_PID_STATE" 10; then
			log "redis did not stop; killing pid $REDIS_PID_STATE"
			kill -KILL "$REDIS_PID_STATE" 2>/dev/null || true
			wait_gone "$REDIS_PID_STATE" 5 || rc=1
		fi
	fi

	# PostgreSQL.
	if [[ -n "$PG_ROOT" && -d "$PG_ROOT/data" ]]; then
		local ppid
		ppid="$(pg_postmaster_pid "$PG_ROOT")"
		if pid_alive "$ppid"; then
			PG_USER="$(stat -c %U "$PG_ROOT/data")"
			log "stopping postgres (pid $ppid)"
			local pgctl="${PG_BIN_STATE:-$(find_pg_bin || true)}/pg_ctl"
			as_pg "$pgctl" -D "$PG_ROOT/data" -m fast -w -t 30 stop >/dev/null 2>&1 || true
			if ! wait_gone "$ppid" 30; then
				log "postgres did not stop; sending SIGQUIT to pid $ppid"
				kill -QUIT "$ppid" 2>/dev/null || true
				if ! wait_gone "$ppid" 10; then
					kill -KILL "$ppid" 2>/dev/null || true
					wait_gone "$ppid" 5 || rc=1
				fi
			fi
		fi
	fi

	[[ $rc -eq 0 ]] || die "could not stop every process; left $RUN_DIR in place"

	if [[ -n "$PG_ROOT" && "$PG_ROOT" != "$RUN_DIR/pg" && -d "$PG_ROOT" ]]; then
		rm -rf -- "$PG_ROOT"
	fi
	rm -rf -- "$RUN_DIR"
	log "stopped and removed $RUN_DIR"
}

# ---------------------------------------------------------------- up

UP_DONE=0
up_cleanup() {
	local rc=$?
	if [[ $UP_DONE -eq 0 ]]; then
		log "start failed (exit $rc); cleaning up $RUN_DIR"
		if [[ -n "${PG_ROOT:-}" && -r "$PG_ROOT/postgres.log" ]]; then
			log "--- tail of postgres.log"
			tail -20 "$PG_ROOT/postgres.log" >&2 || true
		fi
		if [[ -r "$RUN_DIR/redis.log" ]]; then
			log "--- tail of redis.log"
			tail -20 "$RUN_DIR/redis.log" >&2 || true
		fi
		(do_down) || true
	fi
}

start_postgres() {
	local port attempt
	for attempt in 1 2 3 4 5; do
		port="$(free_port)"
		# Write the port into the config so a later `pg_ctl restart` keeps it
		# (postgresql.auto.conf is rewritten as the postgres user to keep ownership.)
		as_pg sh -c 'printf "port = %s\n" "$1" >"$2"' sh "$port" "$PG_ROOT/data/postgresql.auto.conf"
		log "starting postgres on 127.0.0.1:$port (attempt $attempt)"
		if as_pg "$PG_BIN/pg_ctl" -D "$PG_ROOT/data" -l "$PG_ROOT/postgres.log" -w -t 60 start >/dev/null 2>&1 </dev/null; then
			PG_PORT="$port"
			return 0
		fi
		if grep -q -e 'could not bind' -e 'Address already in use' "$PG_ROOT/postgres.log" 2>/dev/null; then
			log "port $port was taken; retrying"
			: >"$PG_ROOT/postgres.log"
			continue
		fi
		return 1
	done
	return 1
}

start_redis() {
	local port attempt
	for attempt in 1 2 3 4 5; do
		port="$(free_port)"
		log "starting redis on 127.0.0.1:$port (attempt $attempt)"
		rm -f "$RUN_DIR/redis.pid"
		redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
			--databases 256 --daemonize yes \
			--pidfile "$RUN_DIR/redis.pid" --logfile "$RUN_DIR/redis.log" \
			--dir "$RUN_DIR" </dev/null >&2 || return 1
		echo "$port" >"$RUN_DIR/redis.port"
		local n=100
		while ((n-- > 0)); do
			if [[ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null </dev/null)" == PONG ]] &&
				[[ -s "$RUN_DIR/redis.pid" ]]; then
				REDIS_PORT="$port"
				return 0
			fi
			# Daemonized child gone and the log says the port was taken: retry.
			if grep -q -e 'Address already in use' -e 'Could not create server TCP' "$RUN_DIR/redis.log" 2>/dev/null; then
				break
			fi
			sleep 0.1
		done
		if grep -q -e 'Address already in use' -e 'Could not create server TCP' "$RUN_DIR/redis.log" 2>/dev/null; then
			log "port $port was taken; retrying"
			: >"$RUN_DIR/redis.log"
			continue
		fi
		return 1
	done
	return 1
}

do_up() {
	if is_running; then
		log "already running ($RUN_DIR)"
		echo "$RUN_DIR/env"
		return 0
	fi
	if [[ -d "$RUN_DIR" ]]; then
		log "stale state in $RUN_DIR; cleaning it first"
		do_down
	fi

	ensure_binaries
	PG_BIN="$(find_pg_bin)"
	PG_USER="$(pg_user)"

	mkdir -p "$RUN_DIR"
	UP_DONE=0
	trap up_cleanup EXIT
	[[ -n "${PAYD_OWNER_PID:-}" ]] && echo "$PAYD_OWNER_PID" >"$RUN_DIR/owner_pid"

	# Where postgres keeps data and its socket: $RUN_DIR/pg, unless the
	# postgres user cannot reach it (e.g. a repo under a 0700 home) or the
	# socket path would be too long for a Unix socket (107 bytes).
	PG_ROOT="$RUN_DIR/pg"
	mkdir -p "$PG_ROOT"
	[[ $IS_ROOT -eq 1 ]] && chown "$PG_USER:" "$PG_ROOT"
	if ! pg_can_use_dir "$PG_ROOT" || ((${#PG_ROOT} + 20 > 100)); then
		rmdir "$PG_ROOT" 2>/dev/null || true
		PG_ROOT="$(mktemp -d "${TMPDIR:-/tmp}/payd-pg-$NAME.XXXXXX")"
		[[ $IS_ROOT -eq 1 ]] && chown "$PG_USER:" "$PG_ROOT"
		log "using $PG_ROOT for postgres data (run dir not reachable by $PG_USER)"
	fi
	echo "$PG_ROOT" >"$RUN_DIR/pg_root"
	echo "$PG_BIN" >"$RUN_DIR/pg_bin"
	as_pg mkdir -p "$PG_ROOT/sock"

	log "initdb in $PG_ROOT/data ($PG_BIN, user $PG_USER)"
	as_pg "$PG_BIN/initdb" -D "$PG_ROOT/data" -A trust -U postgres -E UTF8 --locale=C >"$RUN_DIR/initdb.log" 2>&1 </dev/null ||
		{ cat "$RUN_DIR/initdb.log" >&2; die "initdb failed"; }

	# Server settings live in postgresql.conf so `pg_ctl restart` (used by
	# fault-injection tests) keeps them. fsync stays on: durability is what
	# the tests exercise; synchronous_commit is left at its default (on).
	as_pg tee -a "$PG_ROOT/data/postgresql.conf" >/dev/null <<EOF

# --- payd private test/dev instance (scripts/services.sh)
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PG_ROOT/sock'
max_connections = 300
shared_buffers = 256MB
fsync = on
EOF

	start_postgres || die "postgres did not start"
	local n=100
	until "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres </dev/null; do
		((n-- > 0)) || die "postgres not accepting connections on $PG_PORT"
		sleep 0.1
	done
	# Two roles, as in production: payd_owner owns database payd and runs the
	# migrations (PAYD_MIGRATE_DATABASE_URL); payd_app is what payd's roles
	# connect as (DATABASE_URL): it owns nothing and gets only DML rights,
	# granted by `payd migrate` (PAYD_APP_DB_ROLE). Tests create their own
	# databases as postgres (PAYD_TEST_DATABASE_URL) and their own app role.
	"$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 \
		-c 'CREATE ROLE payd_owner LOGIN NOSUPERUSER NOCREATEROLE' \
		-c 'CREATE ROLE payd_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE' \
		-c 'CREATE DATABASE payd OWNER payd_owner' </dev/null >&2 ||
		die "could not create database payd and its roles"
	"$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d payd -v ON_ERROR_STOP=1 \
		-c 'REVOKE CREATE ON SCHEMA public FROM PUBLIC' -c 'ALTER SCHEMA public OWNER TO payd_owner' </dev/null >&2 ||
		die "could not hand schema public to payd_owner"

	start_redis || die "redis did not start"

	local tmp="$RUN_DIR/env.tmp"
	cat >"$tmp" <<EOF
# generated by scripts/services.sh up ($NAME) — source this file
export DATABASE_URL='postgres://payd_app@127.0.0.1:$PG_PORT/payd?sslmode=disable'
export PAYD_MIGRATE_DATABASE_URL='postgres://payd_owner@127.0.0.1:$PG_PORT/payd?sslmode=disable'
export PAYD_APP_DB_ROLE='payd_app'
export REDIS_URL='redis://127.0.0.1:$REDIS_PORT/0'
export PAYD_TEST_DATABASE_URL='postgres://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=disable'
export PAYD_TEST_REDIS_URL='redis://127.0.0.1:$REDIS_PORT/0'
export PAYD_PG_BIN='$PG_BIN'
export PAYD_PG_DATA='$PG_ROOT/data'
export PAYD_PG_PORT='$PG_PORT'
export PAYD_PG_USER='$PG_USER'
export PAYD_REDIS_PORT='$REDIS_PORT'
EOF
	mv "$tmp" "$RUN_DIR/env"
	UP_DONE=1
	trap - EXIT
	log "postgres 127.0.0.1:$PG_PORT, redis 127.0.0.1:$REDIS_PORT; env in $RUN_DIR/env"
	echo "$RUN_DIR/env"
}

# ---------------------------------------------------------------- prune

do_prune() {
	local d name pid
	for d in "$REPO_ROOT"/.run/test-*; do
		[[ -d "$d" ]] || continue
		name="$(basename "$d")"
		pid="$(cat "$d/owner_pid" 2>/dev/null || echo "${name#test-}")"
		[[ "$pid" =~ ^[0-9]+$ ]] || continue
		if ! pid_alive "$pid"; then
			log "pruning $d (owner $pid is gone)"
			PAYD_RUN_DIR="$d" bash "${BASH_SOURCE[0]}" down "$name" || true
		fi
	done
}

case "$cmd" in
up) do_up ;;
down) do_down ;;
env)
	if is_running; then
		echo "$RUN_DIR/env"
	else
		die "no running instance in $RUN_DIR (run: scripts/services.sh up $NAME)"
	fi
	;;
prune) do_prune ;;
-h | --help | help) usage ;;
*) usage ;;
esac
