-- The limit each capped station gets now, with the bounds it was clamped to.
SELECT
    station_id,
    zone_id,
    signal_id,
    signal_type,
    ROUND(load_kw::NUMERIC, 2)::DOUBLE PRECISION AS load_kw,
    floor_kw,
    ceiling_kw,
    target_kw,
    end_ts
FROM dr_station_targets
ORDER BY zone_id, station_id;
