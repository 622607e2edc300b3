-- Statement 1 is clean: fresh samples only (a temporal filter in WHERE is fine).
CREATE MATERIALIZED VIEW fresh_samples AS
SELECT
    station_id,
    power_kw
FROM meter_values
WHERE event_ts > NOW() - INTERVAL '120 SECONDS';

-- Bad: FOR TIMESTAMP AS OF is what sqlglot writes back, not RisingWave.
CREATE MATERIALIZED VIEW zoned AS
SELECT
    m.station_id,
    z.zone_id
FROM meter_values AS m
JOIN station_zones FOR TIMESTAMP AS OF PROCTIME() AS z
    ON m.station_id = z.station_id;
