-- Statement 1 is clean: fresh samples only (a temporal filter in WHERE is fine).
CREATE MATERIALIZED VIEW fresh_samples AS
SELECT
    station_id,
    power_kw
FROM meter_values
WHERE event_ts > NOW() - INTERVAL '120 SECONDS';

-- Bad: NOW() in the SELECT list is not a temporal filter.
CREATE MATERIALIZED VIEW sample_age AS
SELECT
    station_id,
    NOW() - event_ts AS age
FROM meter_values;
