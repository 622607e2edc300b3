-- Statement 1 is clean: fresh samples only (a temporal filter in WHERE is fine).
CREATE MATERIALIZED VIEW fresh_samples AS
SELECT
    station_id,
    power_kw
FROM meter_values
WHERE event_ts > NOW() - INTERVAL '120 SECONDS';

-- Bad: ROUND(double, n) does not exist in RisingWave.
CREATE MATERIALIZED VIEW rounded AS
SELECT
    station_id,
    ROUND(power_kw, 1) AS kw
FROM meter_values;
