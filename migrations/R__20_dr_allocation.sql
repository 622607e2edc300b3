-- Demand response: the cap of each zone under its active signals, shared among its
-- stations. Control law in ../shared/docs/architecture.md.

-- What each station of a signal's zone drew just before the signal started: the sum of
-- its connectors' averages over the last whole minute before start_ts. Closed minutes
-- never change, so once the signal has started its baseline is frozen: chargers that
-- comply and report less cannot lower the cap again (no runaway to zero). Until that
-- minute has closed (a few seconds after start) the baseline is unknown.
CREATE MATERIALIZED VIEW dr_station_baseline AS
SELECT
    s.signal_id,
    h.station_id,
    SUM(h.avg_kw) AS baseline_kw
FROM dr_signals AS s
JOIN station_zones AS z
    ON z.zone_id = s.zone_id
JOIN connector_load_minute AS h
    ON h.station_id = z.station_id
    AND h.window_end <= s.start_ts
    AND h.window_end > s.start_ts - INTERVAL '1 MINUTE'
WHERE s.signal_type <> 'RESTORE'
    AND s.end_ts > NOW()
GROUP BY s.signal_id, h.station_id;

-- The zone's load when the signal starts (frozen, as above).
CREATE MATERIALIZED VIEW dr_signal_baseline AS
SELECT
    signal_id,
    SUM(baseline_kw) AS baseline_kw
FROM dr_station_baseline
GROUP BY signal_id;

-- Signals in force now: started, not ended, not restored.
CREATE MATERIALIZED VIEW dr_active_signals AS
SELECT
    signal_id,
    modification,
    zone_id,
    signal_type,
    target_reduction_kw,
    target_reduction_pct,
    zone_limit_kw,
    start_ts,
    end_ts,
    priority,
    received_ts
FROM dr_signals
WHERE signal_type <> 'RESTORE'
    AND start_ts <= NOW()
    AND end_ts > NOW();

-- The load each active signal allows its zone: the utility's zone limit, or the frozen
-- baseline minus the reduction (kW or %), never below zero. A reduction whose baseline
-- minute has not closed yet (or had no samples) has no cap and is not enforced.
CREATE MATERIALIZED VIEW dr_signal_caps AS
SELECT
    a.signal_id,
    a.zone_id,
    a.signal_type,
    a.priority,
    a.start_ts,
    a.end_ts,
    a.received_ts,
    b.baseline_kw,
    CASE
        WHEN a.zone_limit_kw IS NOT NULL THEN GREATEST(0.0, a.zone_limit_kw)
        WHEN b.baseline_kw IS NULL THEN NULL
        WHEN a.target_reduction_kw IS NOT NULL
            THEN GREATEST(0.0, b.baseline_kw - a.target_reduction_kw)
        ELSE GREATEST(0.0, b.baseline_kw * (1.0 - a.target_reduction_pct / 100.0))
    END AS cap_kw
FROM dr_active_signals AS a
LEFT JOIN dr_signal_baseline AS b
    ON b.signal_id = a.signal_id;

-- The cap of each zone: the lowest cap among its active signals wins (ties: the more
-- urgent priority, then signal_id), and that signal's type, priority and end apply.
CREATE MATERIALIZED VIEW dr_zone_caps AS
SELECT
    zone_id,
    signal_id,
    signal_type,
    priority,
    start_ts,
    end_ts,
    received_ts,
    baseline_kw,
    cap_kw
FROM (
    SELECT
        zone_id,
        signal_id,
        signal_type,
        priority,
        start_ts,
        end_ts,
        received_ts,
        baseline_kw,
        cap_kw,
        ROW_NUMBER() OVER (
            PARTITION BY zone_id
            ORDER BY cap_kw ASC, priority ASC, signal_id ASC
        ) AS rn
    FROM dr_signal_caps
    WHERE cap_kw IS NOT NULL
) AS ranked
WHERE rn = 1;

-- Every station of a capped zone with its load now (NULL: no fresh sample), its floor
-- and its ceiling. Floor: min_active_kw under CURTAIL for a station charging a session,
-- and for a station without fresh load (held there so a session starting mid-event
-- cannot blow the cap); 0 under SHED. Ceiling: min(max_station_kw, contract_max_kw).
CREATE MATERIALIZED VIEW dr_station_bounds AS
SELECT
    z.station_id,
    z.zone_id,
    c.signal_id,
    c.signal_type,
    c.priority,
    c.start_ts,
    c.end_ts,
    c.received_ts,
    c.cap_kw,
    l.load_kw,
    sb.baseline_kw,
    LEAST(z.max_station_kw, z.contract_max_kw) AS ceiling_kw,
    CASE
        WHEN c.signal_type = 'SHED' THEN 0.0
        WHEN l.station_id IS NULL OR l.active_sessions > 0
            THEN LEAST(COALESCE(z.min_active_kw, 0.0), z.max_station_kw, z.contract_max_kw)
        ELSE 0.0
    END AS floor_kw
FROM station_zones AS z
JOIN dr_zone_caps AS c
    ON c.zone_id = z.zone_id
LEFT JOIN station_load AS l
    ON l.station_id = z.station_id
LEFT JOIN dr_station_baseline AS sb
    ON sb.signal_id = c.signal_id
    AND sb.station_id = z.station_id;

-- Per zone: the floors reserved and the load of the stations that report one.
CREATE MATERIALIZED VIEW dr_zone_shares AS
SELECT
    zone_id,
    SUM(floor_kw) AS floors_kw,
    SUM(COALESCE(load_kw, 0.0)) AS load_kw
FROM dr_station_bounds
GROUP BY zone_id;

-- Each station's limit: its floor, plus a share of what the cap leaves above all floors
-- in proportion to its current load, at most its ceiling, quantised down to quantum_kw
-- (never below the floor). Floors first keeps the sum under the cap whenever the floors
-- fit; stations without fresh load keep their floor only.
CREATE MATERIALIZED VIEW dr_station_targets AS
SELECT
    b.station_id,
    b.zone_id,
    b.signal_id,
    b.signal_type,
    b.priority,
    b.start_ts,
    b.end_ts,
    b.received_ts,
    b.cap_kw,
    b.load_kw,
    b.baseline_kw,
    b.floor_kw,
    b.ceiling_kw,
    GREATEST(
        b.floor_kw,
        FLOOR(
            LEAST(
                b.ceiling_kw,
                b.floor_kw + COALESCE(
                    GREATEST(0.0, b.cap_kw - s.floors_kw) * b.load_kw / NULLIF(s.load_kw, 0.0),
                    0.0
                )
            ) / ${quantum_kw} + 0.000001
        ) * ${quantum_kw}
    ) AS target_kw
FROM dr_station_bounds AS b
JOIN dr_zone_shares AS s
    ON s.zone_id = b.zone_id;

-- The command each capped station gets: its limit, what it sheds against its load at the
-- signal's start (stable while the event lasts, so commands do not churn with meter
-- noise), and when the limit lapses on the charger (validTo). A row vanishes when its
-- signal ends or is restored.
CREATE MATERIALIZED VIEW dr_commands AS
SELECT
    station_id,
    ROUND(target_kw::NUMERIC, 3)::DOUBLE PRECISION AS target_power_kw,
    ROUND(GREATEST(0.0, COALESCE(baseline_kw, 0.0) - target_kw)::NUMERIC, 3)::DOUBLE PRECISION
        AS station_shed_kw,
    signal_id,
    priority,
    end_ts AS dr_end_ts,
    GREATEST(start_ts, received_ts) AS command_ts
FROM dr_station_targets;
