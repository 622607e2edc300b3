-- Load history per minute for dashboards: each connector's average over the minute,
-- summed per station and per zone (one connector counts once per minute).

-- What each station drew, minute by minute.
CREATE MATERIALIZED VIEW station_load_minute AS
SELECT
    station_id,
    window_start,
    window_end,
    SUM(avg_kw) AS load_kw
FROM (
    SELECT
        station_id,
        connector_id,
        window_start,
        window_end,
        AVG(power_kw) AS avg_kw
    FROM TUMBLE(meter_values, event_ts, INTERVAL '1 MINUTE')
    WHERE power_kw IS NOT NULL
        -- the last history_hours only: older minutes leave the state (and the view)
        AND event_ts > NOW() - INTERVAL '${history_hours} HOURS'
    GROUP BY station_id, connector_id, window_start, window_end
) AS per_connector
GROUP BY station_id, window_start, window_end;

-- What each zone drew, minute by minute (stations in their current zone).
CREATE MATERIALIZED VIEW zone_load_minute AS
SELECT
    z.zone_id,
    h.window_start,
    h.window_end,
    SUM(h.load_kw) AS load_kw
FROM station_load_minute AS h
JOIN station_zones AS z
    ON z.station_id = h.station_id
WHERE h.window_start > NOW() - INTERVAL '${history_hours} HOURS'
GROUP BY z.zone_id, h.window_start, h.window_end;
