-- Stations online and offline per zone ('never seen' counts as offline).
SELECT
    zone_id,
    COUNT(*) AS stations,
    SUM(CASE WHEN connection = 'online' THEN 1 ELSE 0 END) AS online,
    SUM(CASE WHEN connection = 'online' THEN 0 ELSE 1 END) AS offline
FROM station_overview
GROUP BY zone_id
ORDER BY zone_id;
