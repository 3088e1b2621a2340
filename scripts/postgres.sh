#!/usr/bin/env bash
# Private PostgreSQL server for local development, tests and the by-hand
# distributed mode.
#
#   scripts/postgres.sh start         start (initialise on first use), wait until ready
#   scripts/postgres.sh stop          fast shutdown (pg_ctl stop -m fast)
#   scripts/postgres.sh status        exit 0 if running, 3 if not
#   scripts/postgres.sh url [DB]      print the SQLAlchemy URL (default database: jiesu)
#   scripts/postgres.sh kill          SIGKILL the server processes (fault-injection tests)
#
# Environment:
#   JIESU_VAR                 state directory (default: <repo>/var)
#   JIESU_PG_PORT             TCP port on 127.0.0.1 (default: 55432)
#   JIESU_PG_START_TIMEOUT    seconds to wait for readiness (default: 90)
#
# Layout: $JIESU_VAR/pg/{data,run,log}. The server process runs as the
# `postgres` OS user when this script runs as root (PostgreSQL refuses to run
# as root), otherwise as the invoking user. When the postgres user cannot
# reach $JIESU_VAR (for example a checkout below a 0700 root-owned directory),
# the cluster lives in /tmp/jiesu-pg-<hash of $JIESU_VAR> instead.
#
# Besides the `jiesu` database, the per-service databases jiesu_intake,
# jiesu_dispatch and jiesu_evaluation are created, matching docker-compose.yml.
# Role `jiesu` (password `jiesu`) is a superuser; this server only listens on
# 127.0.0.1 and is for development use.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
JIESU_VAR="${JIESU_VAR:-$REPO_ROOT/var}"
PG_PORT="${JIESU_PG_PORT:-55432}"
START_TIMEOUT="${JIESU_PG_START_TIMEOUT:-90}"
DB_USER=jiesu
DB_PASSWORD=jiesu
DATABASES=(jiesu jiesu_intake jiesu_dispatch jiesu_evaluation)

log() { printf '[postgres] %s\n' "$*" >&2; }
die() { printf '[postgres] ERROR: %s\n' "$*" >&2; exit 1; }

case "$PG_PORT" in '' | *[!0-9]*) die "JIESU_PG_PORT must be a number, got '$PG_PORT'" ;; esac

mkdir -p "$JIESU_VAR"
JIESU_VAR="$(cd "$JIESU_VAR" && pwd -P)"

# --- who runs the server -----------------------------------------------------

if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || NEED_INSTALL_USER=1
    PG_OS_USER=postgres
else
    PG_OS_USER="$(id -un)"
fi

# Run a command as the server's OS user, from a directory it can read. fd 9
# (the command lock, see take_lock) is closed so the server does not inherit it.
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        (cd / && runuser -u "$PG_OS_USER" -- "$@") 9>&-
    else
        (cd / && "$@") 9>&-
    fi
}

# --- server binaries -----------------------------------------------------------

find_bindir() {
    local d best=""
    # Debian/Ubuntu layout: /usr/lib/postgresql/<major>/bin; take the newest major.
    for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -t/ -k5 -V); do
        [ -x "$d/postgres" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && best="$d"
    done
    if [ -z "$best" ] && command -v pg_config >/dev/null 2>&1; then
        d="$(pg_config --bindir 2>/dev/null || true)"
        [ -n "$d" ] && [ -x "$d/postgres" ] && [ -x "$d/initdb" ] && best="$d"
    fi
    if [ -z "$best" ] && command -v postgres >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
        best="$(dirname "$(command -v postgres)")"
    fi
    printf '%s' "$best"
}

ensure_binaries() {
    PG_BIN="$(find_bindir)"
    if [ -n "$PG_BIN" ] && [ -z "${NEED_INSTALL_USER:-}" ]; then
        return
    fi
    if [ "$(id -u)" -ne 0 ]; then
        die "no PostgreSQL server binaries found; install them (Debian: sudo apt-get install -y postgresql) and retry"
    fi
    command -v apt-get >/dev/null 2>&1 || die "no PostgreSQL server binaries found and apt-get is not available; install PostgreSQL server and retry"
    log "PostgreSQL server binaries not found: installing the Debian 'postgresql' package (apt-get, takes a minute)..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2 || die "apt-get update failed"
    apt-get install -y -q --no-install-recommends postgresql >&2 || die "apt-get install postgresql failed"
    unset NEED_INSTALL_USER
    PG_BIN="$(find_bindir)"
    [ -n "$PG_BIN" ] || die "postgresql was installed but no server binaries were found under /usr/lib/postgresql/*/bin"
    id postgres >/dev/null 2>&1 || die "postgresql was installed but there is no 'postgres' OS user"
    log "installed PostgreSQL server binaries in $PG_BIN"
}

# --- where the cluster lives ---------------------------------------------------

# Can the server's OS user create and use files below directory $1?
pg_user_can_use() {
    as_pg test -d "$1" -a -x "$1" -a -w "$1" 2>/dev/null
}

prepare_owned_dir() { # $1 = directory that must belong to the server user, mode 0700
    mkdir -p "$1"
    if [ "$(id -u)" -eq 0 ]; then
        chown "$PG_OS_USER": "$1"
    fi
    chmod 700 "$1"
}

resolve_pgroot() {
    local primary="$JIESU_VAR/pg" fallback hash
    hash="$(printf '%s' "$JIESU_VAR" | sha256sum | cut -c1-12)"
    fallback="/tmp/jiesu-pg-$hash"

    if [ "$(id -u)" -ne 0 ]; then
        PGROOT="$primary"
        mkdir -p "$PGROOT"
        return
    fi
    mkdir -p "$primary"
    chown "$PG_OS_USER": "$primary"
    chmod 700 "$primary"
    if pg_user_can_use "$primary"; then
        PGROOT="$primary"
        return
    fi
    if [ -e "$fallback" ] && [ "$(stat -c %U "$fallback")" != "$PG_OS_USER" ]; then
        die "fallback directory $fallback exists but is not owned by $PG_OS_USER; remove it and retry"
    fi
    if [ "${1:-}" = start ]; then
        log "the '$PG_OS_USER' OS user cannot reach $primary (a parent directory is not traversable);"
        log "using $fallback for the cluster instead"
    fi
    prepare_owned_dir "$fallback"
    PGROOT="$fallback"
}

set_paths() {
    PGDATA="$PGROOT/data"
    PGRUN="$PGROOT/run"
    PGLOGDIR="$PGROOT/log"
    PGLOG="$PGLOGDIR/postgres.log"
}

# --- helpers -------------------------------------------------------------------

db_url() { printf 'postgresql+asyncpg://%s:%s@127.0.0.1:%s/%s\n' "$DB_USER" "$DB_PASSWORD" "$PG_PORT" "${1:-jiesu}"; }

postmaster_pid() {
    [ -f "$PGDATA/postmaster.pid" ] && head -n1 "$PGDATA/postmaster.pid" 2>/dev/null | tr -dc '0-9'
}

# True if $1 is a live (not zombie) postgres process. `kill -0` alone also
# succeeds for a zombie, which lingers until its parent or init reaps it.
pid_is_live_postgres() {
    local stat state comm
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    comm="${stat#*(}"; comm="${comm%%)*}"
    state="${stat##*) }"; state="${state%% *}"
    case "$state" in Z | X | x | '') return 1 ;; esac
    case "$comm" in postgres | postmaster) return 0 ;; *) return 1 ;; esac
}

is_running() {
    local pid
    pid="$(postmaster_pid || true)"
    [ -n "$pid" ] && pid_is_live_postgres "$pid"
}

# A postmaster.pid whose process is gone (or a zombie) is left over from a
# crash or SIGKILL. PostgreSQL removes it itself unless the old pid is still a
# zombie, so remove it here once the process is known to be dead.
# The same holds for the unix socket's lock file, which also records the pid.
clear_stale_lockfiles() {
    local pid lock="$PGRUN/.s.PGSQL.$PG_PORT.lock"
    pid="$(postmaster_pid || true)"
    if [ -n "$pid" ] && ! pid_is_live_postgres "$pid"; then
        log "removing stale postmaster.pid (pid $pid is not running)"
        rm -f "$PGDATA/postmaster.pid"
    fi
    if [ -f "$lock" ]; then
        pid="$(head -n1 "$lock" 2>/dev/null | tr -dc '0-9')"
        if [ -z "$pid" ] || ! pid_is_live_postgres "$pid"; then
            rm -f "$lock" "$PGRUN/.s.PGSQL.$PG_PORT"
        fi
    fi
}

log_tail() {
    if [ -f "$PGLOG" ]; then
        printf '[postgres] ---- last 30 lines of %s ----\n' "$PGLOG" >&2
        tail -n 30 "$PGLOG" >&2 || true
        printf '[postgres] ----\n' >&2
    fi
}

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$PG_PORT") 2>/dev/null
}

psql_admin() { # run SQL over the private unix socket as the bootstrap superuser
    as_pg "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PGRUN" -p "$PG_PORT" -U postgres -d postgres "$@"
}

init_cluster() {
    prepare_owned_dir "$PGROOT"
    if [ -f "$PGDATA/PG_VERSION" ]; then
        return
    fi
    if [ -d "$PGDATA" ] && [ -n "$(ls -A "$PGDATA" 2>/dev/null)" ]; then
        die "$PGDATA exists, is not empty and is not a PostgreSQL data directory; move it away and retry"
    fi
    prepare_owned_dir "$PGDATA"
    log "initialising a new cluster in $PGDATA"
    local locale_opt=(--locale=C.UTF-8)
    locale -a 2>/dev/null | grep -qix 'c.utf-\?8' || locale_opt=(--no-locale)
    # Local (unix socket) connections are trusted: the socket directory is private
    # to the server's OS user (mode 0700). TCP connections need a password.
    if ! as_pg "$PG_BIN/initdb" -D "$PGDATA" -U postgres -E UTF8 "${locale_opt[@]}" \
        --auth-local=trust --auth-host=scram-sha-256 --no-instructions >"$PGROOT/initdb.log" 2>&1; then
        cat "$PGROOT/initdb.log" >&2
        rm -rf "$PGDATA"
        die "initdb failed (output above)"
    fi
    # Settings owned by this script live in jiesu.conf, rewritten on each start.
    printf "\n# Settings managed by scripts/postgres.sh\ninclude_if_exists = 'jiesu.conf'\n" >>"$PGDATA/postgresql.conf"
}

write_conf() {
    local conf="$PGDATA/jiesu.conf"
    cat >"$conf.tmp" <<EOF
# Generated by scripts/postgres.sh on every start; edits are overwritten.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PGRUN'
unix_socket_permissions = 0700
max_connections = 200
password_encryption = 'scram-sha-256'
timezone = 'UTC'
log_timezone = 'UTC'
log_line_prefix = '%m [%p] %q%u@%d '
EOF
    mv "$conf.tmp" "$conf"
    if [ "$(id -u)" -eq 0 ]; then chown "$PG_OS_USER": "$conf"; fi
}

ensure_role_and_databases() {
    psql_admin <<SQL
DO \$\$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$DB_USER') THEN
        CREATE ROLE $DB_USER LOGIN SUPERUSER PASSWORD '$DB_PASSWORD';
    END IF;
END
\$\$;
SQL
    local db
    for db in "${DATABASES[@]}"; do
        if [ -z "$(psql_admin -At -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" ]; then
            psql_admin -c "CREATE DATABASE $db OWNER $DB_USER"
            log "created database $db"
        fi
    done
}

wait_ready() {
    local deadline=$((SECONDS + START_TIMEOUT)) grace=$((SECONDS + 5))
    while :; do
        if as_pg "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 2; then
            return 0
        fi
        # Allow a few seconds for the postmaster to write its pid file.
        if [ "$SECONDS" -ge "$grace" ] && ! is_running; then
            log_tail
            die "the server exited during startup (see the log above). Fix the cause, then run: scripts/postgres.sh start"
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            log_tail
            die "server did not become ready within ${START_TIMEOUT}s (crash recovery can take a while). Check $PGLOG, then either wait and run 'scripts/postgres.sh start' again, or raise JIESU_PG_START_TIMEOUT, or run 'scripts/postgres.sh stop' and retry"
        fi
        sleep 0.5
    done
}

# --- commands ------------------------------------------------------------------

cmd_start() {
    ensure_binaries
    resolve_pgroot start
    set_paths
    init_cluster
    prepare_owned_dir "$PGRUN"
    prepare_owned_dir "$PGLOGDIR"

    if is_running; then
        local running_port
        running_port="$(sed -n 4p "$PGDATA/postmaster.pid" 2>/dev/null | tr -dc '0-9')"
        if [ -n "$running_port" ] && [ "$running_port" != "$PG_PORT" ]; then
            die "already running on port $running_port, not on JIESU_PG_PORT=$PG_PORT; run 'scripts/postgres.sh stop' (with the old port setting) before changing the port"
        fi
        log "already running (pid $(postmaster_pid)) on 127.0.0.1:$PG_PORT"
    else
        if port_in_use; then
            die "port $PG_PORT on 127.0.0.1 is already in use by another process; stop it or set JIESU_PG_PORT to a free port"
        fi
        clear_stale_lockfiles
        write_conf
        log "starting PostgreSQL ($("$PG_BIN/postgres" --version | awk '{print $3}')) on 127.0.0.1:$PG_PORT, data in $PGDATA"
        # -W: do not wait here; readiness is checked below with pg_isready.
        if ! as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$PGLOG" -W start >/dev/null; then
            log_tail
            die "pg_ctl start failed; see the log above"
        fi
        # After a SIGKILL of the postmaster alone, its orphaned child processes
        # may still hold the old shared memory segment for a moment, and the new
        # postmaster refuses to start. Retry for a few seconds in that case.
        local attempt
        for attempt in 1 2 3 4 5 6 7 8 9 10; do
            sleep 0.5
            is_running && break
            tail -n 5 "$PGLOG" 2>/dev/null | grep -q 'pre-existing shared memory block' || break
            log "old server processes are still exiting; retrying start ($attempt)"
            as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$PGLOG" -W start >/dev/null || true
        done
    fi
    wait_ready
    ensure_role_and_databases
    log "ready: $(db_url)"
}

cmd_stop() {
    PG_BIN="$(find_bindir)"
    [ -n "$PG_BIN" ] || { log "not installed, nothing to stop"; return 0; }
    resolve_pgroot
    set_paths
    if ! is_running; then
        log "not running"
        return 0
    fi
    log "stopping (fast shutdown)"
    if ! as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w -t 60 stop >/dev/null; then
        log_tail
        die "pg_ctl stop failed; use 'scripts/postgres.sh kill' to force it"
    fi
    log "stopped"
}

cmd_status() {
    PG_BIN="$(find_bindir)"
    [ -n "$PG_BIN" ] || { echo "postgres: not installed"; return 3; }
    resolve_pgroot
    set_paths
    if is_running; then
        local running_port
        running_port="$(sed -n 4p "$PGDATA/postmaster.pid" 2>/dev/null | tr -dc '0-9')"
        if [ -n "$running_port" ] && [ "$running_port" != "$PG_PORT" ]; then
            echo "postgres: running (pid $(postmaster_pid)) on port $running_port, not on JIESU_PG_PORT=$PG_PORT"
            return 3
        fi
        if as_pg "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 2; then
            echo "postgres: running (pid $(postmaster_pid)), $(db_url)"
            return 0
        fi
        echo "postgres: process running (pid $(postmaster_pid)) but not accepting connections yet"
        return 3
    fi
    echo "postgres: stopped (data: $PGDATA)"
    return 3
}

cmd_kill() {
    PG_BIN="$(find_bindir)"
    [ -n "$PG_BIN" ] || { log "not installed, nothing to kill"; return 0; }
    resolve_pgroot
    set_paths
    local pid children
    pid="$(postmaster_pid || true)"
    if [ -z "$pid" ] || ! pid_is_live_postgres "$pid"; then
        log "not running"
        return 0
    fi
    children="$(ps -o pid= --ppid "$pid" 2>/dev/null | tr -s ' \n' ' ' || true)"
    log "sending SIGKILL to postmaster $pid and its children"
    # shellcheck disable=SC2086
    kill -9 "$pid" $children 2>/dev/null || true
    local _
    for _ in $(seq 1 50); do
        pid_is_live_postgres "$pid" || break
        sleep 0.1
    done
    log "killed (postmaster.pid left behind, as after a crash)"
}

# Serialise start/stop/kill: parallel callers (for example several test
# processes) must not initialise or start the server twice.
take_lock() {
    exec 9>"$JIESU_VAR/.postgres.lock"
    if ! flock -w 300 9; then
        die "another scripts/postgres.sh command has held $JIESU_VAR/.postgres.lock for 5 minutes; is one stuck?"
    fi
}

usage() {
    echo "usage: $0 {start|stop|status|url [DB]|kill}" >&2
    exit 2
}

case "${1:-}" in
    start) take_lock; cmd_start ;;
    stop) take_lock; cmd_stop ;;
    status) cmd_status ;;
    url) db_url "${2:-jiesu}" ;;
    kill) take_lock; cmd_kill ;;
    *) usage ;;
esac
