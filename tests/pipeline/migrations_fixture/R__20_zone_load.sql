-- Load per zone: the sum of its stations.
CREATE MATERIALIZED VIEW zone_load AS
SELECT
    z.zone_id,
    SUM(l.kw) AS kw
FROM station_load AS l
JOIN zones AS z
    ON l.station_id = z.station_id
GROUP BY z.zone_id;
