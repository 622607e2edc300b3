-- Statement 1 is clean: fresh samples only (a temporal filter in WHERE is fine).
CREATE MATERIALIZED VIEW fresh_samples AS
SELECT
    station_id,
    power_kw
FROM meter_values
WHERE event_ts > NOW() - INTERVAL '120 SECONDS';

-- Bad: a hard-coded broker address instead of ${kafka_bootstrap}.
CREATE SINK alerts_sink
FROM fresh_samples
WITH (
    connector = 'kafka',
    properties.bootstrap.server = 'kafka-1.internal:9092',
    topic = 'alerts.grid.overload'
)
FORMAT PLAIN ENCODE JSON (force_append_only = 'true');
