-- What each zone drew per closed minute over the last hour (the status page's plots).
SELECT
    zone_id,
    window_start,
    ROUND(load_kw::NUMERIC, 2)::DOUBLE PRECISION AS load_kw
FROM zone_load_minute
WHERE window_start >= NOW() - INTERVAL '1 HOUR'
ORDER BY zone_id, window_start;
