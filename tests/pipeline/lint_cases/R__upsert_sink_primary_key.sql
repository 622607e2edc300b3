-- Statement 1 is clean: fresh samples only (a temporal filter in WHERE is fine).
CREATE MATERIALIZED VIEW fresh_samples AS
SELECT
    station_id,
    power_kw
FROM meter_values
WHERE event_ts > NOW() - INTERVAL '120 SECONDS';

-- Bad: an UPSERT sink must say which column is the key.
CREATE SINK commands_sink
FROM fresh_samples
WITH (
    connector = 'kafka',
    properties.bootstrap.server = '${kafka_bootstrap}',
    topic = 'ocpp.commands.set_charging_profile'
)
FORMAT UPSERT ENCODE JSON;
