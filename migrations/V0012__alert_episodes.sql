-- Alerts once per episode on both engines (docs/engines.md, "Alerts once"). An alert that
-- reads state that changes (a signal's state record, a station's load and results) would
-- be sent again by a force_append_only sink on RisingWave each time its row changes. The
-- pipeline writes each episode to the compacted topic pipeline.dr_alert_episodes (sink in
-- R__90); this table reads it back and keeps the first row per key (ON CONFLICT DO
-- NOTHING), which the alert sinks send: an insert once, never an update. The episode's
-- candidate vanishes when the condition ends and the tombstone removes the row (state
-- stays bounded; a later episode is a new row and a new alert).
CREATE TABLE dr_alert_episodes (
    alert_id VARCHAR,
    alert_type VARCHAR,
    detected_at TIMESTAMPTZ,
    zone_id VARCHAR,
    station_id VARCHAR,
    signal_id VARCHAR,
    observed_kw DOUBLE PRECISION,
    limit_kw DOUBLE PRECISION,
    ack_rate DOUBLE PRECISION,
    window_start TIMESTAMPTZ,
    window_end TIMESTAMPTZ,
    PRIMARY KEY (kafka_key)
)
ON CONFLICT DO NOTHING
INCLUDE KEY AS kafka_key
WITH (
    connector = 'kafka',
    topic = '${topic_prefix}pipeline.dr_alert_episodes',
    properties.bootstrap.server = '${kafka_bootstrap}',
    scan.startup.mode = 'earliest'
)
FORMAT UPSERT ENCODE JSON;

-- Lookups by the candidate's id (the Kafka key is its bytes).
CREATE INDEX dr_alert_episodes_by_id ON dr_alert_episodes (alert_id);
