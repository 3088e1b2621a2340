#!/usr/bin/env bash
# Entrypoint of the compose `kafka` service (apache/kafka image): render the
# SASL configuration, format the storage once with the admin's SCRAM
# credential, then run the broker. Needs JIESU_KAFKA_ADMIN_PASSWORD and
# CLUSTER_ID.
set -euo pipefail

: "${JIESU_KAFKA_ADMIN_PASSWORD:?set JIESU_KAFKA_ADMIN_PASSWORD}"
: "${CLUSTER_ID:?set CLUSTER_ID}"
case "$JIESU_KAFKA_ADMIN_PASSWORD" in
    *[!A-Za-z0-9._~+=/-]*) echo "JIESU_KAFKA_ADMIN_PASSWORD may hold only letters, digits and . _ ~ + = / -" >&2; exit 1 ;;
esac

umask 077
conf=/tmp/jiesu-kafka
mkdir -p "$conf"
sed "s|@ADMIN_PASSWORD@|$JIESU_KAFKA_ADMIN_PASSWORD|g" /opt/jiesu/server.properties >"$conf/server.properties"
# For the healthcheck and for kafka-*.sh tools run inside the container.
cat >"$conf/admin.properties" <<PROPS
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$JIESU_KAFKA_ADMIN_PASSWORD";
PROPS

/opt/kafka/bin/kafka-storage.sh format --ignore-formatted --cluster-id "$CLUSTER_ID" \
    --config "$conf/server.properties" \
    --add-scram "SCRAM-SHA-512=[name=admin,password=$JIESU_KAFKA_ADMIN_PASSWORD]"
exec /opt/kafka/bin/kafka-server-start.sh "$conf/server.properties"
