#!/usr/bin/env bash
# Local single-node Apache Kafka broker (KRaft mode, no ZooKeeper) for
# development, tests and the by-hand distributed mode.
#
#   scripts/kafka.sh start       fetch jars (first run), format storage (first run), start, wait until ready
#   scripts/kafka.sh stop        SIGTERM, wait for a clean shutdown, SIGKILL after a timeout
#   scripts/kafka.sh status      exit 0 if running and accepting requests, 3 if not
#   scripts/kafka.sh bootstrap   print the bootstrap server address (127.0.0.1:59092)
#   scripts/kafka.sh kill        SIGKILL the broker (fault-injection tests)
#
# Environment:
#   JIESU_VAR                   state directory (default: <repo>/var)
#   JIESU_KAFKA_PORT            client port on 127.0.0.1 (default: 59092); the
#                               KRaft controller listens on JIESU_KAFKA_PORT + 1
#   JIESU_KAFKA_HEAP_OPTS       JVM heap options (default: -Xms128m -Xmx512m)
#   JIESU_KAFKA_JAVA_OPTS       extra JVM options
#   JIESU_KAFKA_START_TIMEOUT   seconds to wait for readiness (default: 120)
#   JIESU_KAFKA_STOP_TIMEOUT    seconds to wait for a clean shutdown (default: 60)
#   JIESU_PYTHON                Python interpreter with aiokafka for the readiness
#                               check (default: <repo>/.venv/bin/python, then python3)
#   JIESU_KAFKA_SECURITY        plaintext (default): no authentication, everyone
#                               may do everything; sasl: SCRAM-SHA-512 clients and
#                               ACLs (deploy/kafka/sasl.properties), chosen when
#                               the storage is first formatted
#   JIESU_KAFKA_ADMIN_USER      sasl mode: the broker's and administrator's
#                               principal (default: admin)
#   JIESU_KAFKA_ADMIN_PASSWORD  sasl mode: its password (required; letters,
#                               digits and . _ ~ + = / - only)
#
# The broker runs from the jars declared in deploy/kafka/pom.xml, copied by
# Maven into $JIESU_VAR/kafka/libs. Layout under $JIESU_VAR/kafka:
#   libs/               runtime classpath (re-fetched when the pom changes)
#   server.properties   rendered from deploy/kafka/server.properties
#   data/               topic data and KRaft metadata (formatted once)
#   logs/server.log     broker log (log4j2, rolled at 20 MB)
#   logs/kafka.out      JVM stdout/stderr
#   kafka.pid           pid of the running broker
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
JIESU_VAR="${JIESU_VAR:-$REPO_ROOT/var}"
KAFKA_PORT="${JIESU_KAFKA_PORT:-59092}"
START_TIMEOUT="${JIESU_KAFKA_START_TIMEOUT:-120}"
STOP_TIMEOUT="${JIESU_KAFKA_STOP_TIMEOUT:-60}"
HEAP_OPTS="${JIESU_KAFKA_HEAP_OPTS:--Xms128m -Xmx512m}"
EXTRA_JAVA_OPTS="${JIESU_KAFKA_JAVA_OPTS:-}"
SECURITY="${JIESU_KAFKA_SECURITY:-plaintext}"
ADMIN_USER="${JIESU_KAFKA_ADMIN_USER:-admin}"
ADMIN_PASSWORD="${JIESU_KAFKA_ADMIN_PASSWORD:-}"

POM="$REPO_ROOT/deploy/kafka/pom.xml"
TEMPLATE="$REPO_ROOT/deploy/kafka/server.properties"
SASL_TEMPLATE="$REPO_ROOT/deploy/kafka/sasl.properties"
LOG4J_CONFIG="$REPO_ROOT/deploy/kafka/log4j2.xml"

log() { printf '[kafka] %s\n' "$*" >&2; }
die() { printf '[kafka] ERROR: %s\n' "$*" >&2; exit 1; }

case "$KAFKA_PORT" in '' | *[!0-9]*) die "JIESU_KAFKA_PORT must be a number, got '$KAFKA_PORT'" ;; esac
CONTROLLER_PORT=$((KAFKA_PORT + 1))
case "$SECURITY" in plaintext | sasl) ;; *) die "JIESU_KAFKA_SECURITY must be plaintext or sasl, got '$SECURITY'" ;; esac

check_sasl_settings() { # start and status need the admin credential; stop and kill do not
    [ "$SECURITY" = sasl ] || return 0
    # The values end up inside JAAS strings and sed replacements: keep them plain.
    case "$ADMIN_USER" in '' | *[!A-Za-z0-9._-]*) die "JIESU_KAFKA_ADMIN_USER may hold only letters, digits and . _ -" ;; esac
    case "$ADMIN_PASSWORD" in
        '') die "JIESU_KAFKA_SECURITY=sasl needs JIESU_KAFKA_ADMIN_PASSWORD" ;;
        *[!A-Za-z0-9._~+=/-]*) die "JIESU_KAFKA_ADMIN_PASSWORD may hold only letters, digits and . _ ~ + = / -" ;;
    esac
}

mkdir -p "$JIESU_VAR"
JIESU_VAR="$(cd "$JIESU_VAR" && pwd -P)"
KDIR="$JIESU_VAR/kafka"
LIBS="$KDIR/libs"
DATA="$KDIR/data"
LOGS="$KDIR/logs"
PROPS="$KDIR/server.properties"
PIDFILE="$KDIR/kafka.pid"
OUT="$LOGS/kafka.out"
SERVER_LOG="$LOGS/server.log"

# --- prerequisites -------------------------------------------------------------

apt_install() { # $1 = description, rest = packages
    local what="$1"
    shift
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        die "$what not found; install it (Debian: sudo apt-get install -y $*) and retry"
    fi
    log "$what not found: installing $* with apt-get (takes a minute)..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2 || die "apt-get update failed"
    apt-get install -y -q --no-install-recommends "$@" >&2 || die "apt-get install $* failed"
}

java_major() {
    "$JAVA" -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2; exit}'
}

ensure_java() {
    if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then
        JAVA="$JAVA_HOME/bin/java"
    elif command -v java >/dev/null 2>&1; then
        JAVA="$(command -v java)"
    else
        apt_install "Java" openjdk-17-jre-headless
        JAVA="$(command -v java)" || die "java is still not on PATH after installing openjdk-17-jre-headless"
    fi
    local major
    major="$(java_major)"
    case "$major" in '' | *[!0-9]*) die "could not determine the Java version of $JAVA" ;; esac
    [ "$major" -ge 17 ] || die "Kafka 4 needs Java 17 or newer, $JAVA is Java $major; set JAVA_HOME to a newer JDK"
}

ensure_maven() {
    command -v mvn >/dev/null 2>&1 || apt_install "Maven" maven
}

pom_stamp() {
    sha256sum "$POM" | cut -d' ' -f1
}

libs_current() { # $1 = libs directory
    [ -f "$1/.pom.sha256" ] && [ "$(cat "$1/.pom.sha256")" = "$(pom_stamp)" ] &&
        compgen -G "$1/kafka_2.13-*.jar" >/dev/null
}

ensure_libs() {
    if libs_current "$LIBS"; then
        return
    fi
    local tmp="$KDIR/libs.tmp" mvnlog="$KDIR/mvn.log" started=$SECONDS pid rc
    local shared="$REPO_ROOT/var/kafka/libs"
    rm -rf "$tmp"
    mkdir -p "$KDIR"
    # A broker with its own JIESU_VAR (for example one per test) reuses the
    # jars already fetched for the checkout's default var/ directory.
    if [ "$shared" != "$LIBS" ] && libs_current "$shared"; then
        cp -a "$shared" "$tmp"
        rm -rf "$LIBS"
        mv "$tmp" "$LIBS"
        return
    fi
    ensure_maven
    log "fetching the Kafka broker jars with Maven (deploy/kafka/pom.xml -> $LIBS)."
    log "The first run downloads about 45 MB into the local Maven repository; later runs reuse it."
    mvn -q -B -f "$POM" dependency:copy-dependencies -DoutputDirectory="$tmp" >"$mvnlog" 2>&1 9>&- &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        sleep 1
        if [ $(((SECONDS - started) % 15)) -eq 0 ] && kill -0 "$pid" 2>/dev/null; then
            log "  still fetching... ($((SECONDS - started))s, $(find "$tmp" -name '*.jar' 2>/dev/null | wc -l) jars so far)"
        fi
    done
    rc=0
    wait "$pid" || rc=$?
    if [ "$rc" -ne 0 ] || ! compgen -G "$tmp/kafka_2.13-*.jar" >/dev/null; then
        tail -n 40 "$mvnlog" >&2 || true
        die "Maven could not fetch the Kafka jars (exit $rc, full output in $mvnlog). Check network access to the Maven repository and retry: scripts/kafka.sh start"
    fi
    pom_stamp >"$tmp/.pom.sha256"
    rm -rf "$LIBS"
    mv "$tmp" "$LIBS"
    log "fetched $(find "$LIBS" -name '*.jar' | wc -l) jars in $((SECONDS - started))s"
}

broker_jvm_args() { # fills BROKER_JVM with the java command line, without the main class
    # shellcheck disable=SC2206  # word splitting of the *_OPTS variables is intended
    BROKER_JVM=("$JAVA" $HEAP_OPTS
        -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
        -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true
        -Dkafka.logs.dir="$LOGS" -Dlog4j2.configurationFile="$LOG4J_CONFIG"
        $EXTRA_JAVA_OPTS -cp "$LIBS/*")
}

tool_cmd() { # short-lived JVM for the storage tool: small heap, logs to server.log
    "$JAVA" -Xmx256m -Djava.awt.headless=true -Dkafka.logs.dir="$LOGS" \
        -Dlog4j2.configurationFile="$LOG4J_CONFIG" -cp "$LIBS/*" "$@"
}

render_config() {
    mkdir -p "$DATA" "$LOGS"
    local templates=("$TEMPLATE")
    [ "$SECURITY" = sasl ] && templates+=("$SASL_TEMPLATE")
    # The SASL rendering holds the admin password: readable by the owner only.
    (
        umask 077
        cat "${templates[@]}" | sed -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" \
            -e "s|@CONTROLLER_PORT@|$CONTROLLER_PORT|g" \
            -e "s|@LOG_DIR@|$DATA|g" \
            -e "s|@ADMIN_USER@|$ADMIN_USER|g" \
            -e "s|@ADMIN_PASSWORD@|$ADMIN_PASSWORD|g" >"$PROPS.tmp"
    )
    mv "$PROPS.tmp" "$PROPS"
}

# The security mode is fixed when the storage is formatted (the admin's SCRAM
# credential lives in the metadata log), so a later start must not switch it.
check_security_mode() {
    local formatted
    [ -f "$DATA/meta.properties" ] || return 0
    formatted="$(cat "$KDIR/security" 2>/dev/null || echo plaintext)"
    [ "$formatted" = "$SECURITY" ] ||
        die "$DATA was formatted for JIESU_KAFKA_SECURITY=$formatted, not $SECURITY; use another JIESU_VAR or remove $DATA"
}

ensure_formatted() {
    if [ -f "$DATA/meta.properties" ]; then
        return
    fi
    local cluster_id
    if [ -n "$(ls -A "$DATA" 2>/dev/null)" ]; then
        die "$DATA is not empty but has no meta.properties (interrupted format?); remove $DATA and retry"
    fi
    cluster_id="$(tool_cmd kafka.tools.StorageTool random-uuid 2>>"$LOGS/format.log" | tail -n1)"
    [ -n "$cluster_id" ] || die "could not generate a cluster id (see $LOGS/format.log)"
    log "formatting storage in $DATA (cluster id $cluster_id, security $SECURITY)"
    local scram=()
    [ "$SECURITY" = sasl ] && scram=(--add-scram "SCRAM-SHA-512=[name=$ADMIN_USER,password=$ADMIN_PASSWORD]")
    if ! tool_cmd kafka.tools.StorageTool format -t "$cluster_id" -c "$PROPS" "${scram[@]}" >>"$LOGS/format.log" 2>&1; then
        tail -n 20 "$LOGS/format.log" >&2 || true
        rm -rf "$DATA"
        die "formatting the Kafka storage failed (output above, full log in $LOGS/format.log)"
    fi
    printf '%s\n' "$cluster_id" >"$KDIR/cluster.id"
    printf '%s\n' "$SECURITY" >"$KDIR/security"
}

# --- process handling ----------------------------------------------------------

# True if $1 is a live (not zombie) Kafka broker JVM. `kill -0` alone also
# succeeds for a zombie, which lingers until its parent or init reaps it.
pid_is_live_broker() {
    local stat state
    [ -n "${1:-}" ] || return 1
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    state="${stat##*) }"
    state="${state%% *}"
    case "$state" in Z | X | x | '') return 1 ;; esac
    tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka '
}

broker_pid() {
    [ -f "$PIDFILE" ] && tr -dc '0-9' <"$PIDFILE"
}

is_running() {
    local pid
    pid="$(broker_pid || true)"
    pid_is_live_broker "$pid"
}

port_open() { # $1 = port
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

log_tail() {
    local f
    for f in "$SERVER_LOG" "$OUT"; do
        if [ -s "$f" ]; then
            printf '[kafka] ---- last 25 lines of %s ----\n' "$f" >&2
            tail -n 25 "$f" >&2 || true
        fi
    done
    printf '[kafka] ----\n' >&2
}

# ApiVersions (api key 18, v0) over a raw socket: proves that the broker's
# request handling is up without needing any Kafka client installed.
api_versions_ok() {
    local reply
    reply="$(
        exec 3<>"/dev/tcp/127.0.0.1/$KAFKA_PORT" || exit 1
        # size=15 | api_key=18 | api_version=0 | correlation_id=7 | client_id="jiesu"
        printf '\x00\x00\x00\x0f\x00\x12\x00\x00\x00\x00\x00\x07\x00\x05jiesu' >&3
        timeout 5 head -c 10 <&3 | od -An -tx1 | tr -d ' \n'
    )" 2>/dev/null || return 1
    # size (4 bytes, any) | correlation_id=7 | error_code=0
    [ "${reply:8:12}" = "000000070000" ]
}

find_python_with_aiokafka() {
    local py
    for py in "${JIESU_PYTHON:-}" "$REPO_ROOT/.venv/bin/python" python3; do
        [ -n "$py" ] || continue
        command -v "$py" >/dev/null 2>&1 || continue
        if "$py" -c 'import aiokafka' >/dev/null 2>&1; then
            printf '%s' "$py"
            return 0
        fi
    done
    return 1
}

# Full metadata round trip with the same client library the services use.
metadata_ok() { # $1 = python
    JIESU_KAFKA_CHECK_SECURITY="$SECURITY" JIESU_KAFKA_CHECK_USER="$ADMIN_USER" \
        JIESU_KAFKA_CHECK_PASSWORD="$ADMIN_PASSWORD" "$1" - "127.0.0.1:$KAFKA_PORT" <<'PY' >/dev/null 2>&1
import asyncio
import os
import sys

from aiokafka.client import AIOKafkaClient


async def main() -> int:
    sasl = {}
    if os.environ["JIESU_KAFKA_CHECK_SECURITY"] == "sasl":
        sasl = {
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": os.environ["JIESU_KAFKA_CHECK_USER"],
            "sasl_plain_password": os.environ["JIESU_KAFKA_CHECK_PASSWORD"],
        }
    client = AIOKafkaClient(bootstrap_servers=sys.argv[1], request_timeout_ms=5000, **sasl)
    try:
        await client.bootstrap()
        metadata = await client.fetch_all_metadata()
        return 0 if metadata.brokers() else 1
    finally:
        await client.close()


sys.exit(asyncio.run(asyncio.wait_for(main(), 15)))
PY
}

broker_ready() {
    api_versions_ok || return 1
    if [ -n "${PY_AIOKAFKA:-}" ]; then
        metadata_ok "$PY_AIOKAFKA" || return 1
    fi
    return 0
}

wait_ready() { # $1 = line count of server.log before this start
    local deadline=$((SECONDS + START_TIMEOUT)) pid started=""
    pid="$(broker_pid)"
    PY_AIOKAFKA="$(find_python_with_aiokafka || true)"
    while :; do
        if ! pid_is_live_broker "$pid"; then
            log_tail
            die "the broker exited during startup (see the logs above). Fix the cause, then run: scripts/kafka.sh start"
        fi
        if [ -z "$started" ] && tail -n +"$(($1 + 1))" "$SERVER_LOG" 2>/dev/null |
            grep -q 'Kafka Server started\|started (kafka.server.KafkaRaftServer)'; then
            started=1
        fi
        if [ -n "$started" ] && broker_ready; then
            return 0
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            log_tail
            die "the broker did not become ready within ${START_TIMEOUT}s. Check $SERVER_LOG; run 'scripts/kafka.sh stop' and then 'scripts/kafka.sh start' to retry, or raise JIESU_KAFKA_START_TIMEOUT on a slow machine"
        fi
        sleep 0.5
    done
}

# --- commands ------------------------------------------------------------------

cmd_start() {
    mkdir -p "$KDIR" "$LOGS"
    check_sasl_settings
    if is_running; then
        local running_port
        running_port="$(cat "$KDIR/kafka.port" 2>/dev/null || true)"
        if [ -n "$running_port" ] && [ "$running_port" != "$KAFKA_PORT" ]; then
            die "already running on port $running_port, not on JIESU_KAFKA_PORT=$KAFKA_PORT; run 'scripts/kafka.sh stop' before changing the port"
        fi
        PY_AIOKAFKA="$(find_python_with_aiokafka || true)"
        if broker_ready; then
            log "already running (pid $(broker_pid)) on 127.0.0.1:$KAFKA_PORT"
            return 0
        fi
        log "process $(broker_pid) is running but not ready yet; waiting"
        wait_ready 0
        log "ready: 127.0.0.1:$KAFKA_PORT"
        return 0
    fi
    if [ -f "$PIDFILE" ]; then
        log "removing stale pid file (pid $(broker_pid || true) is not running)"
        rm -f "$PIDFILE"
    fi
    local p
    for p in "$KAFKA_PORT" "$CONTROLLER_PORT"; do
        if port_open "$p"; then
            die "port $p on 127.0.0.1 is already in use by another process; stop it or set JIESU_KAFKA_PORT (the controller uses JIESU_KAFKA_PORT + 1)"
        fi
    done

    ensure_java
    ensure_libs
    check_security_mode
    render_config
    ensure_formatted

    [ -f "$OUT" ] && mv -f "$OUT" "$OUT.1"
    local before=0 started=$SECONDS
    [ -f "$SERVER_LOG" ] && before="$(wc -l <"$SERVER_LOG")"
    local jar version
    jar="$(compgen -G "$LIBS/kafka_2.13-*.jar" | head -n1)"
    version="${jar##*/kafka_2.13-}"
    version="${version%.jar}"
    log "starting Kafka $version on 127.0.0.1:$KAFKA_PORT (controller :$CONTROLLER_PORT), data in $DATA"
    # setsid: the broker gets its own session, so it outlives the calling shell
    # and is not hit by a Ctrl-C sent to the caller's process group. fd 9 (the
    # command lock) is closed so the broker does not keep holding it.
    printf '%s\n' "$KAFKA_PORT" >"$KDIR/kafka.port"
    broker_jvm_args
    (
        cd "$KDIR"
        # shellcheck disable=SC2016  # $$ and $1 expand in the child shell
        exec setsid "$BASH" -c 'echo $$ >"$1"; shift; exec "$@"' _ "$PIDFILE" \
            "${BROKER_JVM[@]}" kafka.Kafka "$PROPS"
    ) </dev/null >>"$OUT" 2>&1 9>&- &
    local _
    for _ in $(seq 1 50); do
        [ -s "$PIDFILE" ] && break
        sleep 0.1
    done
    [ -s "$PIDFILE" ] || die "the broker process did not start (see $OUT)"
    wait_ready "$before"
    log "ready: 127.0.0.1:$KAFKA_PORT (pid $(broker_pid), started in $((SECONDS - started))s)"
}

cmd_stop() {
    local pid
    pid="$(broker_pid || true)"
    if ! pid_is_live_broker "$pid"; then
        [ -f "$PIDFILE" ] && rm -f "$PIDFILE"
        log "not running"
        return 0
    fi
    log "stopping (SIGTERM to pid $pid, up to ${STOP_TIMEOUT}s)"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + STOP_TIMEOUT))
    while pid_is_live_broker "$pid"; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "no clean shutdown after ${STOP_TIMEOUT}s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.5
            break
        fi
        sleep 0.2
    done
    rm -f "$PIDFILE"
    log "stopped"
}

cmd_kill() {
    local pid
    pid="$(broker_pid || true)"
    if ! pid_is_live_broker "$pid"; then
        log "not running"
        return 0
    fi
    log "sending SIGKILL to pid $pid"
    kill -KILL "$pid" 2>/dev/null || true
    local _
    for _ in $(seq 1 50); do
        pid_is_live_broker "$pid" || break
        sleep 0.1
    done
    log "killed (pid file left behind, as after a crash)"
}

cmd_status() {
    check_sasl_settings
    if ! is_running; then
        echo "kafka: stopped"
        return 3
    fi
    local running_port
    running_port="$(cat "$KDIR/kafka.port" 2>/dev/null || true)"
    if [ -n "$running_port" ] && [ "$running_port" != "$KAFKA_PORT" ]; then
        echo "kafka: running (pid $(broker_pid)) on port $running_port, not on JIESU_KAFKA_PORT=$KAFKA_PORT"
        return 3
    fi
    PY_AIOKAFKA="$(find_python_with_aiokafka || true)"
    if broker_ready; then
        echo "kafka: running (pid $(broker_pid)), bootstrap 127.0.0.1:$KAFKA_PORT"
        return 0
    fi
    echo "kafka: process running (pid $(broker_pid)) but not accepting requests"
    return 3
}

# Serialise start/stop/kill: parallel callers (for example several test
# processes) must not initialise or start the server twice.
take_lock() {
    exec 9>"$JIESU_VAR/.kafka.lock"
    if ! flock -w 300 9; then
        die "another scripts/kafka.sh command has held $JIESU_VAR/.kafka.lock for 5 minutes; is one stuck?"
    fi
}

usage() {
    echo "usage: $0 {start|stop|status|bootstrap|kill}" >&2
    exit 2
}

case "${1:-}" in
    start) take_lock; cmd_start ;;
    stop) take_lock; cmd_stop ;;
    status) cmd_status ;;
    bootstrap) echo "127.0.0.1:$KAFKA_PORT" ;;
    kill) take_lock; cmd_kill ;;
    *) usage ;;
esac
