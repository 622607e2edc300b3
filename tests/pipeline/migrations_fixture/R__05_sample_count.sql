-- Samples per station: independent of the load views.
CREATE MATERIALIZED VIEW sample_count AS
SELECT
    station_id,
    COUNT(*) AS samples
FROM meter
GROUP BY station_id;
