#!/usr/bin/env bash
# Create every gridctl topic (pipeline/topics.py ALL_TOPICS) on the compose Kafka.
#
# Idempotent: an existing topic is left in place and only its cleanup policy and retention
# are set again, so a rerun repairs a topic that someone created by hand with the wrong
# policy. Upsert topics (pipeline/topics.py UPSERT_TOPICS) are compacted: a consumer that
# starts late must still see the latest value of every key, and a null value (tombstone)
# must delete it. Append-only topics keep RETENTION_MS of history (default 7 days), which
# is what RisingWave's sources replay from.
#
# tests/deploy/test_compose.py checks the table below against pipeline/topics.py.
set -euo pipefail

BOOTSTRAP="${KAFKA_BOOTSTRAP:-kafka:9092}"
PARTITIONS="${PARTITIONS:-6}"
RETENTION_MS="${RETENTION_MS:-604800000}"
BIN="${KAFKA_BIN:-/opt/kafka/bin}"

# topic                               cleanup.policy
TOPICS=$(cat <<'EOF'
ocpp.meter_values                     delete
ocpp.station_status                   delete
ocpp.command_results                  delete
ocpp.commands.set_charging_profile    compact
ocpp.sessions                         compact
grid.demand_response                  compact
config.station_zones                  compact
config.station_credentials            compact
alerts.grid.overload                  delete
alerts.grid.dr                        delete
pipeline.dr_baselines                 compact
pipeline.dr_alert_episodes            compact
pipeline.dr_signal_states             compact
ingest.rejected                       delete
EOF
)

while read -r topic policy; do
  [ -z "$topic" ] && continue
  if [ "$policy" = "compact" ]; then
    create_args=(--config cleanup.policy=compact)
    configs="cleanup.policy=compact"
  else
    create_args=(--config cleanup.policy=delete --config "retention.ms=${RETENTION_MS}")
    configs="cleanup.policy=delete,retention.ms=${RETENTION_MS}"
  fi
  echo "topic ${topic}: ${configs}"
  "$BIN/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" --create --if-not-exists \
    --topic "$topic" --partitions "$PARTITIONS" --replication-factor 1 "${create_args[@]}"
  "$BIN/kafka-configs.sh" --bootstrap-server "$BOOTSTRAP" --alter \
    --entity-type topics --entity-name "$topic" --add-config "$configs"
done <<< "$TOPICS"

echo "topics ready:"
"$BIN/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" --list
