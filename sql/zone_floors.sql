-- What a CURTAIL signal would hold each zone's stations at now: the sum of their floors
-- (idle stations hold 0), and how many are held for which reason. The bridge compares a
-- zone limit with it before the engine has evaluated the signal.
SELECT
    zone_id,
    COUNT(*) AS stations,
    ROUND(SUM(floor_kw)::NUMERIC, 3)::DOUBLE PRECISION AS floors_kw,
    SUM(CASE WHEN held_for = 'charging' THEN 1 ELSE 0 END) AS charging,
    SUM(CASE WHEN held_for = 'no_fresh_load' THEN 1 ELSE 0 END) AS no_fresh_load,
    SUM(CASE WHEN held_for = 'plugged' THEN 1 ELSE 0 END) AS plugged,
    SUM(CASE WHEN held_for IS NULL THEN 1 ELSE 0 END) AS not_held
FROM station_curtail_floors
GROUP BY zone_id
ORDER BY zone_id;
