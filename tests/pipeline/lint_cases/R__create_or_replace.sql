-- Statement 1 is clean: fresh samples only (a temporal filter in WHERE is fine).
CREATE MATERIALIZED VIEW fresh_samples AS
SELECT
    station_id,
    power_kw
FROM meter_values
WHERE event_ts > NOW() - INTERVAL '120 SECONDS';

-- Bad: RisingWave has no CREATE OR REPLACE for views.
CREATE OR REPLACE MATERIALIZED VIEW replaced AS
SELECT station_id
FROM meter_values;
