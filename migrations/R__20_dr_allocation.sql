-- Demand response: the cap of each zone under its active signals, shared among its
-- stations. The law, argued: ../docs/control-law.md.

-- Signals in force now: started, not ended, not restored. event_key is the utility event
-- (the OpenADR event of several intervals), else the signal itself.
CREATE MATERIALIZED VIEW dr_active_signals AS
SELECT
    signal_id,
    modification,
    COALESCE(event_id, signal_id) AS event_key,
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

-- The same, and signals ended less than freshness_seconds ago: the compliance verdict of an
-- event's last minute is given after the event ended (R__30).
CREATE MATERIALIZED VIEW dr_recent_signals AS
SELECT
    signal_id,
    COALESCE(event_id, signal_id) AS event_key,
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
    AND end_ts > NOW() - INTERVAL '${freshness_seconds} SECONDS';

-- Utility events holding a baseline: one of their signals is in force, or ended less than
-- freshness_seconds ago (an event starting right after it can still borrow its baseline).
CREATE MATERIALIZED VIEW dr_events AS
SELECT
    COALESCE(event_id, signal_id) AS event_key,
    zone_id,
    MIN(start_ts) AS start_ts,
    MAX(end_ts) AS end_ts,
    MIN(received_ts) AS received_ts
FROM dr_signals
WHERE signal_type <> 'RESTORE'
    AND start_ts <= NOW()
    AND end_ts > NOW() - INTERVAL '${freshness_seconds} SECONDS'
GROUP BY COALESCE(event_id, signal_id), zone_id;

-- -- Baselines ---------------------------------------------------------------------------

-- Each station's load just before its event started: the latest sample at or before
-- start_ts of each connector, if it was fresh then. Kept for baseline_history_seconds, so
-- an event heard after it started still finds the load from before it.
CREATE MATERIALIZED VIEW dr_prestart_load AS
SELECT
    event_key,
    zone_id,
    station_id,
    SUM(power_kw) AS load_kw
FROM (
    SELECT
        e.event_key,
        e.zone_id,
        m.station_id,
        m.connector_id,
        m.power_kw,
        ROW_NUMBER() OVER (
            PARTITION BY e.event_key, e.zone_id, m.station_id, m.connector_id
            ORDER BY m.event_ts DESC
        ) AS rn
    FROM dr_events AS e
    JOIN station_zones AS z
        ON z.zone_id = e.zone_id
    -- Only while it can still matter: once the station's baseline and its zone's total are
    -- both frozen, dr_baseline_candidates reads the frozen rows and never this one (a
    -- station added mid-event has no frozen row and still gets its pre-start load). The
    -- steady state then ranks no samples at all (it was half of every tick). Frozen keys
    -- are unique, so the two lookups are equality joins (streaming hash joins on
    -- RisingWave, bounded by dr_baselines) and multiply no rows.
    LEFT JOIN dr_baselines AS fs
        ON fs.event_key = e.event_key
        AND fs.zone_id = e.zone_id
        AND fs.station_id = z.station_id
    LEFT JOIN dr_baselines AS ft
        ON ft.event_key = e.event_key
        AND ft.zone_id = e.zone_id
        AND ft.station_id = '*'
    -- Only the samples that can be some event's pre-start load: between the earliest start
    -- less freshness_seconds and the latest start. The join below says the same per event;
    -- the bounds (dynamic filters on RisingWave) let the embedded engine read 2 minutes of
    -- samples instead of baseline_history_seconds when an event begins (at 10,000
    -- connectors 0.24 s instead of 0.43 s of the event's first tick).
    JOIN (
        SELECT station_id, connector_id, power_kw, event_ts
        FROM connector_recent
        WHERE event_ts > (
                SELECT MIN(start_ts) - INTERVAL '${freshness_seconds} SECONDS' FROM dr_events
            )
            AND event_ts <= (SELECT MAX(start_ts) FROM dr_events)
    ) AS m
        ON m.station_id = z.station_id
        AND m.event_ts <= e.start_ts
        AND m.event_ts > e.start_ts - INTERVAL '${freshness_seconds} SECONDS'
    WHERE fs.baseline_id IS NULL OR ft.baseline_id IS NULL
) AS latest
WHERE rn = 1
GROUP BY event_key, zone_id, station_id;

-- A zone already under a curtailment when an event starts lends that curtailment's frozen
-- baselines (the load now is the curtailed load): the earliest other event of the zone
-- that started first and was still in force (or had just ended) at this one's start.
CREATE MATERIALIZED VIEW dr_lent_baselines AS
SELECT
    event_key,
    zone_id,
    station_id,
    baseline_kw,
    lent_from
FROM (
    SELECT
        e.event_key,
        e.zone_id,
        b.station_id,
        b.baseline_kw,
        o.event_key AS lent_from,
        ROW_NUMBER() OVER (
            PARTITION BY e.event_key, e.zone_id, b.station_id
            ORDER BY o.start_ts ASC, o.event_key ASC
        ) AS rn
    FROM dr_events AS e
    JOIN dr_events AS o
        ON o.zone_id = e.zone_id
        AND o.event_key <> e.event_key
        AND (o.start_ts < e.start_ts OR (o.start_ts = e.start_ts AND o.event_key < e.event_key))
        AND o.end_ts > e.start_ts - INTERVAL '${freshness_seconds} SECONDS'
    JOIN dr_baselines AS b
        ON b.event_key = o.event_key
        AND b.zone_id = o.zone_id
) AS ranked
WHERE rn = 1;

-- What each station's baseline would be if it were frozen now: lent, else its pre-start
-- load, else (heard after start, nothing kept) its load now, else nothing known (0).
CREATE MATERIALIZED VIEW dr_baseline_computed AS
SELECT
    e.event_key || '@' || e.zone_id || '|' || z.station_id AS baseline_id,
    e.event_key,
    e.zone_id,
    z.station_id,
    COALESCE(lb.baseline_kw, p.load_kw, l.load_kw, 0.0) AS baseline_kw,
    CASE
        WHEN lb.baseline_kw IS NOT NULL THEN 'lent'
        WHEN p.load_kw IS NOT NULL THEN 'pre_start'
        WHEN l.load_kw IS NOT NULL THEN 'load_now'
        ELSE 'no_data'
    END AS basis,
    lb.lent_from,
    GREATEST(e.start_ts, e.received_ts) AS effective_ts
FROM dr_events AS e
JOIN station_zones AS z
    ON z.zone_id = e.zone_id
LEFT JOIN dr_lent_baselines AS lb
    ON lb.event_key = e.event_key
    AND lb.zone_id = e.zone_id
    AND lb.station_id = z.station_id
LEFT JOIN dr_prestart_load AS p
    ON p.event_key = e.event_key
    AND p.zone_id = e.zone_id
    AND p.station_id = z.station_id
LEFT JOIN station_load AS l
    ON l.station_id = z.station_id;

-- The zone's total, which the cap is computed from, once some station of the zone has
-- reported (until then the event waits for load data; nothing is frozen).
CREATE MATERIALIZED VIEW dr_baseline_zone_computed AS
SELECT
    event_key || '@' || zone_id || '|*' AS baseline_id,
    event_key,
    zone_id,
    SUM(baseline_kw) AS baseline_kw,
    CASE
        WHEN MAX(lent_from) IS NOT NULL THEN 'lent'
        WHEN SUM(CASE WHEN basis = 'load_now' THEN 1 ELSE 0 END) > 0 THEN 'load_now'
        ELSE 'pre_start'
    END AS basis,
    MAX(lent_from) AS lent_from,
    MAX(effective_ts) AS effective_ts
FROM dr_baseline_computed
GROUP BY event_key, zone_id
HAVING SUM(CASE WHEN basis <> 'no_data' THEN 1 ELSE 0 END) > 0;

-- The baselines in force: frozen rows as they were written (kept while their event holds a
-- baseline), else the candidate computed now. The sink writes these rows back to
-- dr_baselines, where the first per key wins: the baseline is available at the first
-- evaluation and never changes afterwards (removing a station from the zone does not
-- re-sum the zone's total; a station added mid-event gets a weight, not a larger cap).
CREATE MATERIALIZED VIEW dr_baseline_candidates AS
SELECT
    b.baseline_id,
    b.event_key,
    b.zone_id,
    b.station_id,
    b.baseline_kw,
    b.basis,
    b.lent_from,
    b.effective_ts
FROM dr_baselines AS b
JOIN dr_events AS e
    ON e.event_key = b.event_key
    AND e.zone_id = b.zone_id
UNION ALL
SELECT
    c.baseline_id,
    c.event_key,
    c.zone_id,
    c.station_id,
    c.baseline_kw,
    c.basis,
    c.lent_from,
    c.effective_ts
FROM dr_baseline_computed AS c
JOIN dr_baseline_zone_computed AS t
    ON t.event_key = c.event_key
    AND t.zone_id = c.zone_id
WHERE NOT EXISTS (SELECT 1 FROM dr_baselines AS b WHERE b.baseline_id = c.baseline_id)
UNION ALL
SELECT
    t.baseline_id,
    t.event_key,
    t.zone_id,
    '*' AS station_id,
    t.baseline_kw,
    t.basis,
    t.lent_from,
    t.effective_ts
FROM dr_baseline_zone_computed AS t
WHERE NOT EXISTS (SELECT 1 FROM dr_baselines AS b WHERE b.baseline_id = t.baseline_id);

-- -- Caps ---------------------------------------------------------------------------------

-- The load each signal allows its zone (recent signals: ended ones linger for alerts): the utility's zone limit, or its event's
-- baseline minus the reduction (kW or %), never below zero. Without a baseline (no station
-- of the zone reported yet) a reduction has no cap: its state says waiting_for_load.
CREATE MATERIALIZED VIEW dr_signal_caps AS
SELECT
    a.signal_id,
    a.event_key,
    a.zone_id,
    a.signal_type,
    a.priority,
    a.start_ts,
    a.end_ts,
    a.received_ts,
    b.baseline_kw,
    b.basis AS baseline_basis,
    CASE
        WHEN a.zone_limit_kw IS NOT NULL THEN GREATEST(0.0, a.zone_limit_kw)
        WHEN b.baseline_kw IS NULL THEN NULL
        WHEN a.target_reduction_kw IS NOT NULL
            THEN GREATEST(0.0, b.baseline_kw - a.target_reduction_kw)
        ELSE GREATEST(0.0, b.baseline_kw * (1.0 - a.target_reduction_pct / 100.0))
    END AS cap_kw
FROM dr_recent_signals AS a
LEFT JOIN dr_baseline_candidates AS b
    ON b.event_key = a.event_key
    AND b.zone_id = a.zone_id
    AND b.station_id = '*';

-- Alerts look a zone's caps up when a minute closes (temporal join by zone: R__30).
CREATE INDEX dr_signal_caps_by_zone ON dr_signal_caps (zone_id);

-- The cap of each zone: the lowest cap among its active signals wins (ties: the more
-- urgent priority, then signal_id), and that signal's type, priority and end apply.
CREATE MATERIALIZED VIEW dr_zone_caps AS
SELECT
    zone_id,
    signal_id,
    event_key,
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
        event_key,
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
        AND end_ts > NOW()
) AS ranked
WHERE rn = 1;

-- -- Allocation ---------------------------------------------------------------------------

-- What each station can follow: its ceiling min(max_station_kw, contract_max_kw); the
-- step of its charger's unit (0.1 A per phase, or quantum_kw for W); the smallest non-zero
-- limit, min_current_a per phase (IEC 61851) or min_active_kw if larger, rounded up to a
-- step and never above the ceiling.
CREATE MATERIALIZED VIEW station_limits AS
SELECT
    station_id,
    zone_id,
    ceiling_kw,
    step_kw,
    LEAST(ceiling_kw, CEIL(raw_min_kw / step_kw - 0.000001) * step_kw) AS min_kw
FROM (
    SELECT
        station_id,
        zone_id,
        LEAST(max_station_kw, contract_max_kw) AS ceiling_kw,
        CASE
            WHEN charging_rate_unit = 'A'
                THEN 0.1 * COALESCE(phases, 3) * COALESCE(voltage_v, 230.0) / 1000.0
            ELSE ${quantum_kw}
        END AS step_kw,
        GREATEST(
            COALESCE(min_active_kw, 0.0),
            ${min_current_a} * COALESCE(phases, 3) * COALESCE(voltage_v, 230.0) / 1000.0
        ) AS raw_min_kw
    FROM station_zones
) AS s;

-- The latest status each connector reported (StatusNotification), one row per connector:
-- 1.6 connector, or 2.0.1 (EVSE, connector within it); a record without the connector
-- within the EVSE (1.6, or written before V0013) is its connector 1. Read here to tell
-- idle stations and by R__50's station overview. (The partition key is a plain column:
-- RisingWave plans group top-N only for that exact pattern.)
CREATE MATERIALIZED VIEW connector_status AS
SELECT
    station_id,
    connector_id,
    evse_connector_id,
    status,
    error_code,
    ts
FROM (
    SELECT
        station_id,
        connector_id,
        evse_connector_id,
        status,
        error_code,
        ts,
        ROW_NUMBER() OVER (
            PARTITION BY station_id, connector_id, connector_in_evse
            ORDER BY ts DESC
        ) AS rn
    FROM (
        SELECT
            station_id,
            connector_id,
            evse_connector_id,
            COALESCE(evse_connector_id, 1) AS connector_in_evse,
            status,
            error_code,
            ts
        FROM station_status
        WHERE event = 'StatusNotification'
            AND connector_id IS NOT NULL
    ) AS reported
) AS latest
WHERE rn = 1;

-- What the connectors of each connected station say of vehicles, from each connector's
-- latest StatusNotification (connector_status) sent since the station's current
-- connection. OCPP makes a connected charger report every status change, so such a status
-- is current however old; one from before the connection (the gateway or the charger
-- restarted and it was not re-sent), a disconnected station, or a station that never
-- reported says nothing.
-- idle: every connector Available (no vehicle). plugged: some connector has a vehicle
-- (Preparing, Charging, SuspendedEVSE, SuspendedEV; 2.0.1 Occupied). A 2.0.1 connector is
-- (EVSE, connector within it): an EVSE with two connectors reports each, and one Occupied
-- makes the station plugged, never idle, whatever the other says.
CREATE MATERIALIZED VIEW station_vehicle_status AS
SELECT
    s.station_id,
    SUM(CASE WHEN s.status = 'Available' AND s.ts >= c.connected_ts THEN 0 ELSE 1 END) = 0
        AND SUM(CASE WHEN s.connector_id > 0 THEN 1 ELSE 0 END) > 0 AS idle,
    SUM(
        CASE
            WHEN s.ts >= c.connected_ts
                AND s.status IN ('Preparing', 'Charging', 'SuspendedEVSE', 'SuspendedEV', 'Occupied')
                THEN 1
            ELSE 0
        END
    ) > 0 AS plugged
FROM connector_status AS s
JOIN station_presence AS p
    ON p.station_id = s.station_id
JOIN (
    SELECT
        station_id,
        MAX(ts) AS connected_ts
    FROM station_status
    WHERE event IN ('Connected', 'BootNotification')
    GROUP BY station_id
) AS c
    ON c.station_id = s.station_id
WHERE p.event <> 'Disconnected'
GROUP BY s.station_id;

-- The last SetChargingProfile result of each station per signal, and the limit it
-- carried (what the station accepted, when it did).
CREATE MATERIALIZED VIEW station_last_result AS
SELECT
    station_id,
    signal_id,
    status,
    limit_kw,
    result_ts
FROM (
    SELECT
        station_id,
        signal_id,
        status,
        limit_kw,
        result_ts,
        ROW_NUMBER() OVER (
            PARTITION BY station_id, signal_id
            ORDER BY result_ts DESC
        ) AS rn
    FROM command_results
    WHERE signal_id IS NOT NULL
        AND action = 'SetChargingProfile'
        AND result_ts > NOW() - INTERVAL '${command_history_seconds} SECONDS'
) AS ranked
WHERE rn = 1;

-- Stations that accepted a limit more than uncontrolled_grace_seconds ago and drew above
-- it (by more than station_tolerance_kw, or station_tolerance_pct of it if larger) all
-- through the last uncontrolled_grace_seconds: the sum over its connectors of each one's
-- lowest sample in that time (a lower bound of the station's load at every instant of it)
-- still exceeds the limit. A new Accepted result (the gateway re-sends on reconnect)
-- starts the grace period again.
CREATE MATERIALIZED VIEW station_over_limit AS
SELECT
    station_id,
    signal_id,
    limit_kw,
    SUM(lowest_kw) AS lowest_kw
FROM (
    SELECT
        r.station_id,
        r.signal_id,
        r.limit_kw,
        m.connector_id,
        MIN(m.power_kw) AS lowest_kw
    FROM station_last_result AS r
    JOIN meter_values AS m
        ON m.station_id = r.station_id
        AND m.event_ts > NOW() - INTERVAL '${uncontrolled_grace_seconds} SECONDS'
    WHERE r.status = 'Accepted'
        AND r.limit_kw IS NOT NULL
        AND r.result_ts <= NOW() - INTERVAL '${uncontrolled_grace_seconds} SECONDS'
        AND m.power_kw IS NOT NULL
    GROUP BY r.station_id, r.signal_id, r.limit_kw, m.connector_id
) AS per_connector
GROUP BY station_id, signal_id, limit_kw
HAVING SUM(lowest_kw) > limit_kw
    + GREATEST(${station_tolerance_kw}, limit_kw * ${station_tolerance_pct} / 100.0);

-- Every station of a capped zone: its load now (NULL: no fresh sample), its weight, floor
-- and ceiling, and whether it follows its limits. Weight: its frozen baseline, never the
-- load the limits produced, so compliance cannot erode it; a station that drew nothing
-- then but charges a session now (new demand, amount unknown) weighs its ceiling; one
-- without fresh load weighs nothing and is held at its floor. Floor: its minimum under
-- CURTAIL for a station charging a session, and for one without fresh load (held there so
-- a session starting mid-event cannot blow the cap) unless it is idle
-- (station_vehicle_status) and has not refused its limit: it gets 0, a limit of 0 that a
-- session starting on it keeps until its StatusNotification (Preparing, Charging) gives it
-- back its floor; and for a station with a vehicle plugged in and no frozen demand, so the
-- session a limit of 0 holds at 0 kW (not active by its samples) still gets its minimum
-- and can show its demand; 0 under SHED. Uncontrollable: its last command for this signal was not accepted,
-- or it accepted it and keeps drawing above it (station_over_limit).
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
    CASE
        WHEN l.station_id IS NULL THEN 0.0
        WHEN sb.baseline_kw > ${active_kw} THEN sb.baseline_kw
        WHEN l.active_sessions > 0 THEN p.ceiling_kw
        ELSE 0.0
    END AS weight_kw,
    p.ceiling_kw,
    p.step_kw,
    p.min_kw,
    CASE
        WHEN c.signal_type = 'SHED' THEN 0.0
        WHEN l.active_sessions > 0 THEN p.min_kw
        WHEN l.station_id IS NULL
            AND NOT (COALESCE(v.idle, FALSE) AND COALESCE(r.status = 'Accepted', TRUE))
            THEN p.min_kw
        WHEN COALESCE(v.plugged, FALSE) AND COALESCE(sb.baseline_kw, 0.0) <= ${active_kw}
            THEN p.min_kw
        ELSE 0.0
    END AS floor_kw,
    r.status AS last_status,
    r.result_ts AS last_result_ts,
    o.limit_kw AS overdrawn_limit_kw,
    COALESCE(r.status IN ('Rejected', 'NotSupported', 'Timeout', 'Offline'), FALSE)
        OR o.station_id IS NOT NULL AS uncontrollable
FROM station_zones AS z
JOIN station_limits AS p
    ON p.station_id = z.station_id
JOIN dr_zone_caps AS c
    ON c.zone_id = z.zone_id
LEFT JOIN station_load AS l
    ON l.station_id = z.station_id
LEFT JOIN station_vehicle_status AS v
    ON v.station_id = z.station_id
LEFT JOIN dr_baseline_candidates AS sb
    ON sb.event_key = c.event_key
    AND sb.zone_id = c.zone_id
    AND sb.station_id = z.station_id
LEFT JOIN station_last_result AS r
    ON r.station_id = z.station_id
    AND r.signal_id = c.signal_id
LEFT JOIN station_over_limit AS o
    ON o.station_id = z.station_id
    AND o.signal_id = c.signal_id;

-- The floor a CURTAIL signal on its zone would hold each station at now, before the
-- signal has any result or frozen demand: dr_station_bounds' floor with no command result
-- and no frozen demand above active_kw. Its minimum for a station charging a session,
-- without fresh load unless idle, or with a vehicle plugged in; 0 for an idle one. The
-- bridge warns from it that a zone limit is below the floors (sql/zone_floors.sql) before
-- the engine evaluated the signal; keep it equal to dr_station_bounds' rule.
CREATE MATERIALIZED VIEW station_curtail_floors AS
SELECT
    z.station_id,
    z.zone_id,
    p.min_kw,
    CASE
        WHEN l.active_sessions > 0 THEN 'charging'
        WHEN COALESCE(v.plugged, FALSE) THEN 'plugged'
        WHEN l.station_id IS NULL AND NOT COALESCE(v.idle, FALSE) THEN 'no_fresh_load'
    END AS held_for,
    CASE
        WHEN l.active_sessions > 0
            OR COALESCE(v.plugged, FALSE)
            OR (l.station_id IS NULL AND NOT COALESCE(v.idle, FALSE))
            THEN p.min_kw
        ELSE 0.0
    END AS floor_kw
FROM station_zones AS z
JOIN station_limits AS p
    ON p.station_id = z.station_id
LEFT JOIN station_load AS l
    ON l.station_id = z.station_id
LEFT JOIN station_vehicle_status AS v
    ON v.station_id = z.station_id;

-- Per zone: what uncontrollable stations draw (reserved out of the cap; without fresh load
-- their floor), the controllable stations' floors and weights, and what is left to share.
CREATE MATERIALIZED VIEW dr_zone_shares AS
SELECT
    zone_id,
    MAX(cap_kw) AS cap_kw,
    SUM(CASE WHEN uncontrollable THEN COALESCE(load_kw, floor_kw) ELSE 0.0 END) AS reserved_kw,
    SUM(CASE WHEN uncontrollable THEN 0.0 ELSE floor_kw END) AS floors_kw,
    SUM(CASE WHEN uncontrollable THEN 0.0 ELSE weight_kw END) AS weights_kw,
    SUM(CASE WHEN uncontrollable THEN 1 ELSE 0 END) AS uncontrollable_stations,
    COUNT(*) AS stations
FROM dr_station_bounds
GROUP BY zone_id;

-- Which stations without a floor get their minimum: a share below a station's minimum
-- cannot be followed, so instead of shares too small to charge, the stations of largest
-- frozen demand are admitted at their minimum while the minima fit in what the cap leaves
-- above reserved load and floors; the others pause (0). Admitted stations are floored at
-- their minimum from then on, like active ones under CURTAIL. A station that charges
-- (base above 0, controllable) and weighs something then fills its room up to its
-- ceiling; fill_level_kw is the level, in kW per kW of weight, at which it is full.
CREATE MATERIALIZED VIEW dr_station_admission AS
SELECT
    station_id,
    zone_id,
    base_kw,
    CASE WHEN base_kw > 0.0 AND weight_kw > 0.0 THEN weight_kw ELSE 0.0 END AS fill_weight_kw,
    CASE
        WHEN base_kw > 0.0 AND weight_kw > 0.0 THEN GREATEST(0.0, ceiling_kw - base_kw)
        ELSE 0.0
    END AS room_kw,
    CASE
        WHEN base_kw > 0.0 AND weight_kw > 0.0 THEN GREATEST(0.0, ceiling_kw - base_kw) / weight_kw
    END AS full_at_level
FROM (
    SELECT
        b.station_id,
        b.zone_id,
        b.weight_kw,
        b.ceiling_kw,
        CASE
            WHEN b.uncontrollable THEN 0.0
            WHEN b.floor_kw > 0.0 THEN b.floor_kw
            WHEN b.weight_kw <= 0.0 THEN 0.0
            WHEN SUM(
                    CASE
                        WHEN b.uncontrollable OR b.floor_kw > 0.0 OR b.weight_kw <= 0.0 THEN 0.0
                        ELSE b.min_kw
                    END
                ) OVER (
                    PARTITION BY b.zone_id
                    ORDER BY b.weight_kw DESC, b.station_id ASC
                    ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
                ) <= s.cap_kw - s.reserved_kw - s.floors_kw + 0.000001
                THEN b.min_kw
            ELSE 0.0
        END AS base_kw
    FROM dr_station_bounds AS b
    JOIN dr_zone_shares AS s
        ON s.zone_id = b.zone_id
) AS admitted;

-- Per zone: the minima and floors granted, the weights of the stations that charge and
-- the room they have left below their ceilings.
CREATE MATERIALIZED VIEW dr_zone_admitted AS
SELECT
    zone_id,
    SUM(base_kw) AS bases_kw,
    SUM(fill_weight_kw) AS weights_kw,
    SUM(room_kw) AS rooms_kw
FROM dr_station_admission
GROUP BY zone_id;

-- What the cap leaves above reserved load and bases (available_kw) is poured into the
-- charging stations by weight, each up to its ceiling, and what a full station cannot
-- take goes to the others (water-filling): every station gets min(room, level x weight)
-- for the one level at which the parts add up to what is available. Ordered by the level
-- at which each is full, the k first are full and the others share the rest by weight;
-- the level is the largest (available - their rooms) / (the others' weights) over k,
-- the first k included with none full (available / all weights). Saturated: everything
-- fits, every charging station is at its ceiling.
CREATE MATERIALIZED VIEW dr_zone_levels AS
SELECT
    f.zone_id,
    GREATEST(0.0, s.cap_kw - s.reserved_kw - t.bases_kw) AS available_kw,
    GREATEST(0.0, s.cap_kw - s.reserved_kw - t.bases_kw) >= t.rooms_kw - 0.000001 AS saturated,
    GREATEST(
        GREATEST(0.0, s.cap_kw - s.reserved_kw - t.bases_kw) / t.weights_kw,
        MAX(
            CASE
                WHEN t.weights_kw - f.weights_full_kw > 0.000001
                    THEN (GREATEST(0.0, s.cap_kw - s.reserved_kw - t.bases_kw) - f.rooms_full_kw)
                        / (t.weights_kw - f.weights_full_kw)
            END
        )
    ) AS level
FROM (
    SELECT
        zone_id,
        SUM(room_kw) OVER (
            PARTITION BY zone_id
            ORDER BY full_at_level ASC, station_id ASC
            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
        ) AS rooms_full_kw,
        SUM(fill_weight_kw) OVER (
            PARTITION BY zone_id
            ORDER BY full_at_level ASC, station_id ASC
            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
        ) AS weights_full_kw
    FROM dr_station_admission
    WHERE fill_weight_kw > 0.0
) AS f
JOIN dr_zone_admitted AS t
    ON t.zone_id = f.zone_id
JOIN dr_zone_shares AS s
    ON s.zone_id = f.zone_id
GROUP BY f.zone_id, s.cap_kw, s.reserved_kw, t.bases_kw, t.weights_kw, t.rooms_kw;

-- Each station's limit: 0 when paused; else its floor or minimum plus its part of what
-- the cap leaves (water-filled up to its ceiling), quantised down to its charger's step
-- (so 0 or within [min, ceiling]). An uncontrollable station is commanded what it draws
-- (reserved), so a retry that it accepts changes nothing at once; one that accepted its
-- limit and overdraws it keeps that limit (no new command: what it does with it is what
-- shows whether it follows it), while its measured load is reserved. Σ targets ≤ cap
-- whenever the floors and reserved load fit under it.
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
    b.weight_kw,
    b.floor_kw,
    b.min_kw,
    b.ceiling_kw,
    b.uncontrollable,
    b.last_status,
    b.last_result_ts,
    b.overdrawn_limit_kw,
    ROUND((
        CASE
            WHEN b.overdrawn_limit_kw IS NOT NULL THEN LEAST(b.ceiling_kw, b.overdrawn_limit_kw)
            WHEN b.uncontrollable
                THEN LEAST(
                    b.ceiling_kw,
                    FLOOR(COALESCE(b.load_kw, b.floor_kw) / b.step_kw + 0.000001) * b.step_kw
                )
            WHEN a.base_kw <= 0.0 THEN 0.0
            ELSE GREATEST(
                a.base_kw,
                FLOOR(
                    LEAST(
                        b.ceiling_kw,
                        a.base_kw + CASE
                            WHEN a.fill_weight_kw <= 0.0 THEN 0.0
                            WHEN l.saturated THEN a.room_kw
                            ELSE LEAST(a.room_kw, l.level * a.fill_weight_kw)
                        END
                    ) / b.step_kw + 0.000001
                ) * b.step_kw
            )
        END
    )::NUMERIC, 6)::DOUBLE PRECISION AS target_kw
FROM dr_station_bounds AS b
JOIN dr_station_admission AS a
    ON a.station_id = b.station_id
LEFT JOIN dr_zone_levels AS l
    ON l.zone_id = b.zone_id;

-- The command each capped station gets: its limit, what it sheds against its frozen
-- baseline (constant while the event lasts), and when the limit lapses on the charger
-- (validTo). A row vanishes when its signal ends or is restored.
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

-- -- Signal states ------------------------------------------------------------------------

-- Every active signal's state, so none is silently unenforced: enforced (its cap, or a
-- lower one of the same zone, is being commanded), waiting_for_load (a reduction whose
-- zone has not reported any load yet), infeasible (floors and uncontrollable load exceed
-- the cap by shortfall_kw), no_stations (its zone has no stations).
CREATE MATERIALIZED VIEW dr_signal_states AS
SELECT
    a.signal_id,
    a.event_key,
    a.zone_id,
    a.signal_type,
    a.start_ts,
    a.end_ts,
    a.received_ts,
    a.baseline_kw,
    a.baseline_basis,
    a.cap_kw,
    zc.signal_id AS enforced_by,
    zc.cap_kw AS zone_cap_kw,
    s.floors_kw,
    s.reserved_kw,
    s.uncontrollable_stations,
    CASE
        WHEN s.zone_id IS NULL AND zs.zone_id IS NULL THEN 'no_stations'
        WHEN a.cap_kw IS NULL THEN 'waiting_for_load'
        WHEN s.floors_kw + s.reserved_kw > s.cap_kw + 0.001 THEN 'infeasible'
        ELSE 'enforced'
    END AS state,
    CASE
        WHEN s.floors_kw + s.reserved_kw > s.cap_kw + 0.001
            THEN ROUND((s.floors_kw + s.reserved_kw - s.cap_kw)::NUMERIC, 3)::DOUBLE PRECISION
        ELSE 0.0
    END AS shortfall_kw
FROM dr_signal_caps AS a
LEFT JOIN dr_zone_caps AS zc
    ON zc.zone_id = a.zone_id
LEFT JOIN dr_zone_shares AS s
    ON s.zone_id = a.zone_id
LEFT JOIN (SELECT zone_id FROM station_zones GROUP BY zone_id) AS zs
    ON zs.zone_id = a.zone_id
WHERE a.end_ts > NOW();

-- What the bridge shows of each state (numbers rounded to 0.1 kW, so meter noise on
-- reserved load does not rewrite the record every tick).
CREATE MATERIALIZED VIEW dr_signal_state_records AS
SELECT
    signal_id,
    zone_id,
    state,
    enforced_by,
    baseline_basis,
    ROUND(baseline_kw::NUMERIC, 1)::DOUBLE PRECISION AS baseline_kw,
    ROUND(cap_kw::NUMERIC, 1)::DOUBLE PRECISION AS cap_kw,
    ROUND(shortfall_kw::NUMERIC, 1)::DOUBLE PRECISION AS shortfall_kw,
    uncontrollable_stations
FROM dr_signal_states;
