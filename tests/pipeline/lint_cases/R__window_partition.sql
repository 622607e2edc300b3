-- Statement 1 is clean: fresh samples only (a temporal filter in WHERE is fine).
CREATE MATERIALIZED VIEW fresh_samples AS
SELECT
    station_id,
    power_kw
FROM meter_values
WHERE event_ts > NOW() - INTERVAL '120 SECONDS';

-- Bad: a window function without PARTITION BY.
CREATE MATERIALIZED VIEW ranked AS
SELECT
    station_id,
    ROW_NUMBER() OVER (ORDER BY event_ts DESC) AS rn
FROM meter_values;
