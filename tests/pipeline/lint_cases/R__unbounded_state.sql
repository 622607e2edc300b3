-- Statement 1 is clean: an append-only source (no state of its own).
CREATE SOURCE samples (station_id VARCHAR, power_kw DOUBLE PRECISION, event_ts TIMESTAMPTZ)
WITH (
    connector = 'kafka',
    topic = 'samples',
    properties.bootstrap.server = '${kafka_bootstrap}'
)
FORMAT PLAIN ENCODE JSON;
-- Bad: a range join to every sample ever seen (no temporal filter, no watermark).
CREATE MATERIALIZED VIEW signal_baseline AS
SELECT
    s.signal_id,
    SUM(m.power_kw) AS baseline_kw
FROM signals AS s
JOIN samples AS m
    ON m.station_id = s.station_id
    AND m.event_ts <= s.start_ts
    AND m.event_ts > s.start_ts - INTERVAL '1 MINUTE'
GROUP BY s.signal_id;
