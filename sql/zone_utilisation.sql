-- How hard each zone is drawing now: load of fresh samples against what all of its
-- stations could draw (min of hardware and contract per station).
SELECT
    zone_id,
    stations,
    reporting_stations,
    ROUND(load_kw::NUMERIC, 1)::DOUBLE PRECISION AS load_kw,
    ROUND(capacity_kw::NUMERIC, 1)::DOUBLE PRECISION AS capacity_kw,
    utilisation_pct
FROM zone_load
ORDER BY utilisation_pct DESC NULLS LAST, zone_id;
