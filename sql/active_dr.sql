-- Zones under demand response now: the winning signal, its frozen baseline, the cap,
-- the zone's load and whether the zone complies.
SELECT
    c.zone_id,
    c.signal_id,
    c.signal_type,
    c.priority,
    c.start_ts,
    c.end_ts,
    ROUND(c.baseline_kw::NUMERIC, 1)::DOUBLE PRECISION AS baseline_kw,
    ROUND(c.cap_kw::NUMERIC, 1)::DOUBLE PRECISION AS cap_kw,
    ROUND(COALESCE(l.load_kw, 0.0)::NUMERIC, 1)::DOUBLE PRECISION AS load_kw,
    CASE
        WHEN COALESCE(l.load_kw, 0.0) <= c.cap_kw THEN 'compliant'
        ELSE 'over cap'
    END AS compliance,
    ROUND(GREATEST(0.0, COALESCE(l.load_kw, 0.0) - c.cap_kw)::NUMERIC, 1)::DOUBLE PRECISION
        AS over_kw
FROM dr_zone_caps AS c
LEFT JOIN zone_load AS l
    ON l.zone_id = c.zone_id
ORDER BY c.priority, c.zone_id;
