-- Alerts: one record per episode window, never one per barrier. Windows are emitted once
-- closed (EMIT ON WINDOW CLOSE), so a closed window's alert never changes afterwards.

-- A station whose average load over a minute exceeded its contract: one alert per station
-- and minute. The process-time temporal join keeps the samples' watermark.
CREATE MATERIALIZED VIEW station_overload_alerts AS
SELECT
    'station_over_contract' AS alert_type,
    window_end AS detected_at,
    zone_id,
    station_id,
    CAST(NULL AS VARCHAR) AS signal_id,
    ROUND(SUM(avg_kw)::NUMERIC, 3)::DOUBLE PRECISION AS observed_kw,
    contract_max_kw AS limit_kw,
    CAST(NULL AS DOUBLE PRECISION) AS ack_rate,
    window_start,
    window_end
FROM (
    SELECT
        m.station_id,
        m.connector_id,
        z.zone_id,
        z.contract_max_kw,
        m.window_start,
        m.window_end,
        AVG(m.power_kw) AS avg_kw
    FROM TUMBLE(meter_values, event_ts, INTERVAL '${overload_grace_seconds} SECONDS') AS m
    JOIN station_zones FOR SYSTEM_TIME AS OF PROCTIME() AS z
        ON m.station_id = z.station_id
    WHERE m.power_kw IS NOT NULL
    GROUP BY m.station_id, m.connector_id, z.zone_id, z.contract_max_kw, m.window_start, m.window_end
) AS per_connector
GROUP BY station_id, zone_id, contract_max_kw, window_start, window_end
HAVING SUM(avg_kw) > contract_max_kw
EMIT ON WINDOW CLOSE;

-- Each zone's average load per minute, once the minute has closed.
CREATE MATERIALIZED VIEW zone_load_minute_closed AS
SELECT
    zone_id,
    window_start,
    window_end,
    SUM(avg_kw) AS load_kw
FROM (
    SELECT
        m.station_id,
        m.connector_id,
        z.zone_id,
        m.window_start,
        m.window_end,
        AVG(m.power_kw) AS avg_kw
    FROM TUMBLE(meter_values, event_ts, INTERVAL '1 MINUTE') AS m
    JOIN station_zones FOR SYSTEM_TIME AS OF PROCTIME() AS z
        ON m.station_id = z.station_id
    WHERE m.power_kw IS NOT NULL
    GROUP BY m.station_id, m.connector_id, z.zone_id, m.window_start, m.window_end
) AS per_connector
GROUP BY zone_id, window_start, window_end
EMIT ON WINDOW CLOSE;

-- A zone still above a signal's cap once cap_grace_seconds have passed since the signal
-- started: one alert per signal and closed minute while it lasts. Signals linger in
-- dr_signal_caps for freshness_seconds after their end, so the event's last minute, which
-- closes after the end, gets its verdict too. The caps are looked up when the minute
-- closes (a process-time temporal join, index dr_signal_caps_by_zone): a revision
-- afterwards neither retracts nor repeats an alert (a regular join would re-emit every
-- joined minute on each revision, and force_append_only would send them again).
CREATE MATERIALIZED VIEW zone_cap_alerts AS
SELECT
    'zone_over_cap' AS alert_type,
    w.window_end AS detected_at,
    w.zone_id,
    CAST(NULL AS VARCHAR) AS station_id,
    c.signal_id,
    ROUND(w.load_kw::NUMERIC, 3)::DOUBLE PRECISION AS observed_kw,
    ROUND(c.cap_kw::NUMERIC, 3)::DOUBLE PRECISION AS limit_kw,
    CAST(NULL AS DOUBLE PRECISION) AS ack_rate,
    w.window_start,
    w.window_end
FROM zone_load_minute_closed AS w
JOIN dr_signal_caps FOR SYSTEM_TIME AS OF PROCTIME() AS c
    ON c.zone_id = w.zone_id
WHERE w.window_start >= c.start_ts + INTERVAL '${cap_grace_seconds} SECONDS'
    AND w.window_end <= c.end_ts
    AND w.load_kw > c.cap_kw + ${cap_tolerance_kw}
    -- Only minutes just closed are judged (each once); older ones leave the join's state.
    AND w.window_end > NOW() - INTERVAL '${alert_lookback_seconds} SECONDS';

-- -- Alerts on state that changes: once per episode ------------------------------------
-- A signal's state and a station's results change underneath these alerts (revisions,
-- meter noise on reserved load, retries). Each episode is frozen through the feedback
-- topic pipeline.dr_alert_episodes (table dr_alert_episodes, V0012, first row per key
-- wins) and the alerts are sent from the frozen rows: an insert once per episode, which a
-- force_append_only sink sends once on RisingWave as on the embedded engine.

-- What holds now, keyed by alert_id: a signal not enforced (waiting for load data,
-- infeasible: observed_kw the floors and reserved load, limit_kw the cap; or without
-- stations); a station that does not follow its limits (its last command for the signal
-- was rejected, not supported, timed out or found it offline: detected at that result; or
-- it overdraws the limit it accepted: detected a grace period after it accepted it).
-- new_after: before then the condition opens no episode (a signal gets
-- enforce_bound_seconds after it applies, started and heard, to be enforced); an episode
-- already open stays open while its condition holds, whatever a revision moves.
CREATE MATERIALIZED VIEW dr_alert_conditions AS
SELECT
    'signal_' || state || '|' || signal_id || '|*' AS alert_id,
    'signal_' || state AS alert_type,
    GREATEST(start_ts, received_ts) + INTERVAL '${enforce_bound_seconds} SECONDS' AS detected_at,
    zone_id,
    CAST(NULL AS VARCHAR) AS station_id,
    signal_id,
    ROUND((floors_kw + reserved_kw)::NUMERIC, 3)::DOUBLE PRECISION AS observed_kw,
    ROUND(cap_kw::NUMERIC, 3)::DOUBLE PRECISION AS limit_kw,
    CAST(NULL AS DOUBLE PRECISION) AS ack_rate,
    start_ts AS window_start,
    end_ts AS window_end,
    GREATEST(start_ts, received_ts) + INTERVAL '${enforce_bound_seconds} SECONDS' AS new_after
FROM dr_signal_states
WHERE state <> 'enforced'
UNION ALL
SELECT
    'station_uncontrollable|' || signal_id || '|' || station_id AS alert_id,
    'station_uncontrollable' AS alert_type,
    CASE
        WHEN overdrawn_limit_kw IS NOT NULL
            THEN last_result_ts + INTERVAL '${uncontrolled_grace_seconds} SECONDS'
        ELSE last_result_ts
    END AS detected_at,
    zone_id,
    station_id,
    signal_id,
    ROUND(load_kw::NUMERIC, 3)::DOUBLE PRECISION AS observed_kw,
    overdrawn_limit_kw AS limit_kw,
    CAST(NULL AS DOUBLE PRECISION) AS ack_rate,
    start_ts AS window_start,
    end_ts AS window_end,
    start_ts AS new_after
FROM dr_station_targets
WHERE uncontrollable;

-- The episodes: frozen rows whose condition still holds, and new ones past new_after
-- (written back to dr_alert_episodes by the sink; the first row per key wins). Once
-- frozen, a candidate is the frozen row itself, so nothing is re-sent while it lasts.
CREATE MATERIALIZED VIEW dr_alert_candidates AS
SELECT
    e.alert_id,
    e.alert_type,
    e.detected_at,
    e.zone_id,
    e.station_id,
    e.signal_id,
    e.observed_kw,
    e.limit_kw,
    e.ack_rate,
    e.window_start,
    e.window_end
FROM dr_alert_episodes AS e
WHERE EXISTS (SELECT 1 FROM dr_alert_conditions AS c WHERE c.alert_id = e.alert_id)
UNION ALL
SELECT
    c.alert_id,
    c.alert_type,
    c.detected_at,
    c.zone_id,
    c.station_id,
    c.signal_id,
    c.observed_kw,
    c.limit_kw,
    c.ack_rate,
    c.window_start,
    c.window_end
FROM dr_alert_conditions AS c
WHERE c.new_after <= NOW()
    AND NOT EXISTS (SELECT 1 FROM dr_alert_episodes AS e WHERE e.alert_id = c.alert_id);

-- A signal not enforced enforce_bound_seconds after it applies: one alert per episode.
CREATE MATERIALIZED VIEW signal_state_alerts AS
SELECT
    alert_type,
    detected_at,
    zone_id,
    station_id,
    signal_id,
    observed_kw,
    limit_kw,
    ack_rate,
    window_start,
    window_end
FROM dr_alert_episodes
WHERE station_id IS NULL;

-- A station that does not follow its limits: its load is reserved out of the cap and the
-- others share the rest. One alert per station, signal and episode.
CREATE MATERIALIZED VIEW station_uncontrollable_alerts AS
SELECT
    alert_type,
    detected_at,
    zone_id,
    station_id,
    signal_id,
    observed_kw,
    limit_kw,
    ack_rate,
    window_start,
    window_end
FROM dr_alert_episodes
WHERE station_id IS NOT NULL;

-- Command results per signal per window, once the window has closed.
CREATE MATERIALIZED VIEW command_ack_windows AS
SELECT
    signal_id,
    window_start,
    window_end,
    COUNT(*) AS results,
    SUM(CASE WHEN status = 'Accepted' THEN 1 ELSE 0 END) AS accepted
FROM TUMBLE(command_results, result_ts, INTERVAL '${ack_window_minutes} MINUTES')
WHERE signal_id IS NOT NULL
GROUP BY signal_id, window_start, window_end
EMIT ON WINDOW CLOSE;

-- A signal whose commands were acknowledged less often than ack_min_rate in a window. The
-- signal is looked up when the window closes (temporal join: a revision repeats nothing).
CREATE MATERIALIZED VIEW ack_rate_alerts AS
SELECT
    'ack_rate_low' AS alert_type,
    a.window_end AS detected_at,
    s.zone_id,
    CAST(NULL AS VARCHAR) AS station_id,
    a.signal_id,
    CAST(NULL AS DOUBLE PRECISION) AS observed_kw,
    CAST(NULL AS DOUBLE PRECISION) AS limit_kw,
    ROUND((a.accepted::NUMERIC / a.results), 3)::DOUBLE PRECISION AS ack_rate,
    a.window_start,
    a.window_end
FROM command_ack_windows AS a
LEFT JOIN dr_signals FOR SYSTEM_TIME AS OF PROCTIME() AS s
    ON s.signal_id = a.signal_id
WHERE a.accepted < ${ack_min_rate} * a.results
    -- Windows just closed; older ones leave the join's state.
    AND a.window_end > NOW() - INTERVAL '${alert_lookback_seconds} SECONDS';

-- Every zone-level DR compliance alert, for the alerts.grid.dr topic (station-level ones
-- have their own sink, keyed by station).
CREATE MATERIALIZED VIEW dr_alerts AS
SELECT
    alert_type,
    detected_at,
    zone_id,
    station_id,
    signal_id,
    observed_kw,
    limit_kw,
    ack_rate,
    window_start,
    window_end
FROM zone_cap_alerts
UNION ALL
SELECT
    alert_type,
    detected_at,
    zone_id,
    station_id,
    signal_id,
    observed_kw,
    limit_kw,
    ack_rate,
    window_start,
    window_end
FROM ack_rate_alerts
UNION ALL
SELECT
    alert_type,
    detected_at,
    zone_id,
    station_id,
    signal_id,
    observed_kw,
    limit_kw,
    ack_rate,
    window_start,
    window_end
FROM signal_state_alerts;
