-- Load per station: what each charger draws.
CREATE MATERIALIZED VIEW station_load AS
SELECT
    station_id,
    SUM(power_kw) AS kw
FROM meter
WHERE power_kw >= ${min_kw}
GROUP BY station_id;
