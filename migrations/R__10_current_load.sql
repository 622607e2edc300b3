-- Current load: the latest fresh sample of each connector, summed per station and zone.
-- Summing every sample of a window would count a connector once per sample; taking the
-- latest sample per connector counts it once.

-- The latest sample of each connector, if it is fresh (newer than freshness_seconds).
CREATE MATERIALIZED VIEW connector_latest AS
SELECT
    station_id,
    connector_id,
    session_id,
    power_kw,
    event_ts
FROM (
    SELECT
        station_id,
        connector_id,
        session_id,
        power_kw,
        event_ts,
        ROW_NUMBER() OVER (
            PARTITION BY station_id, connector_id
            ORDER BY event_ts DESC
        ) AS rn
    FROM meter_values
    WHERE power_kw IS NOT NULL
        AND event_ts > NOW() - INTERVAL '${freshness_seconds} SECONDS'
) AS fresh
WHERE rn = 1;

-- What each station draws now, and whether a session is charging on it.
CREATE MATERIALIZED VIEW station_load AS
SELECT
    station_id,
    SUM(power_kw) AS load_kw,
    COUNT(*) AS connectors,
    -- A session is active while it draws power: an ended session (0 kW, session id still
    -- set) reserves nothing.
    SUM(CASE WHEN power_kw > ${active_kw} THEN 1 ELSE 0 END) AS active_sessions,
    MAX(event_ts) AS last_event_ts
FROM connector_latest
GROUP BY station_id;

-- What each zone draws now against what all of its stations could draw.
CREATE MATERIALIZED VIEW zone_load AS
SELECT
    z.zone_id,
    COUNT(*) AS stations,
    COUNT(l.station_id) AS reporting_stations,
    COALESCE(SUM(l.load_kw), 0.0) AS load_kw,
    SUM(LEAST(z.max_station_kw, z.contract_max_kw)) AS capacity_kw,
    ROUND(
        (100.0 * COALESCE(SUM(l.load_kw), 0.0)
            / NULLIF(SUM(LEAST(z.max_station_kw, z.contract_max_kw)), 0.0))::NUMERIC,
        1
    )::DOUBLE PRECISION AS utilisation_pct
FROM station_zones AS z
LEFT JOIN station_load AS l
    ON l.station_id = z.station_id
GROUP BY z.zone_id;

-- Every sample of the last baseline_history_seconds: what a DR signal heard after its
-- start takes its pre-start baseline from. The temporal filter bounds the state.
CREATE MATERIALIZED VIEW connector_recent AS
SELECT
    station_id,
    connector_id,
    power_kw,
    event_ts
FROM meter_values
WHERE power_kw IS NOT NULL
    AND event_ts > NOW() - INTERVAL '${baseline_history_seconds} SECONDS';
