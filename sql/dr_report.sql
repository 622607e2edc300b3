-- DR event report, the record a utility settles on: per signal (one zone each) and minute,
-- the baseline and how it was taken, the cap, the zone's measured load and the reduction
-- achieved; on every row, the totals over the event (energy, kWh reduced, average and peak
-- reduction, share of time under the cap) and what became of the commands sent for it.
-- `GET /v1/signals/{id}/report` and `gridctl dr report ID` read it for one signal.
--
-- Baseline: the zone's average load over the last whole minute before the signal started
-- (what the control law freezes). A cancelled signal (RESTORE) ends at its cancellation
-- and has no cap any more (dr_signals keeps only the latest revision). Minutes are the
-- closed history of zone_load_minute; a minute cut by the event's start or end counts for
-- the seconds inside the event only. Minutes without any sample are not in the report.

WITH signals AS (
    SELECT
        signal_id,
        zone_id,
        signal_type,
        priority,
        source,
        target_reduction_kw,
        target_reduction_pct,
        zone_limit_kw,
        start_ts,
        CASE
            WHEN signal_type = 'RESTORE' THEN LEAST(end_ts, received_ts)
            ELSE end_ts
        END AS end_ts
    FROM dr_signals
),

baselines AS (
    SELECT
        s.signal_id,
        SUM(m.load_kw) AS baseline_kw
    FROM signals AS s
    JOIN zone_load_minute AS m
        ON m.zone_id = s.zone_id
        AND m.window_end <= s.start_ts
        AND m.window_end > s.start_ts - INTERVAL '1 MINUTE'
    GROUP BY s.signal_id
),

-- The cap as the control law computes it: the utility's limit, or the baseline less the
-- reduction, never below zero.
caps AS (
    SELECT
        s.*,
        b.baseline_kw,
        CASE
            WHEN s.zone_limit_kw IS NOT NULL THEN GREATEST(0.0, s.zone_limit_kw)
            WHEN b.baseline_kw IS NULL THEN NULL
            WHEN s.target_reduction_kw IS NOT NULL
                THEN GREATEST(0.0, b.baseline_kw - s.target_reduction_kw)
            WHEN s.target_reduction_pct IS NOT NULL
                THEN GREATEST(0.0, b.baseline_kw * (1.0 - s.target_reduction_pct / 100.0))
        END AS cap_kw
    FROM signals AS s
    LEFT JOIN baselines AS b
        ON b.signal_id = s.signal_id
),

minutes AS (
    SELECT
        c.signal_id,
        m.window_start AS minute_start,
        m.window_end AS minute_end,
        m.load_kw,
        EXTRACT(EPOCH FROM (LEAST(m.window_end, c.end_ts) - GREATEST(m.window_start, c.start_ts)))
            AS covered_s
    FROM caps AS c
    JOIN zone_load_minute AS m
        ON m.zone_id = c.zone_id
        AND m.window_end > c.start_ts
        AND m.window_start < c.end_ts
),

commands AS (
    SELECT
        signal_id,
        COUNT(*) AS commands_sent,
        SUM(CASE WHEN status = 'Accepted' THEN 1 ELSE 0 END) AS commands_accepted,
        SUM(CASE WHEN status = 'NotSupported' THEN 1 ELSE 0 END) AS commands_not_supported,
        SUM(CASE WHEN status = 'Rejected' THEN 1 ELSE 0 END) AS commands_rejected,
        SUM(CASE WHEN status IN ('Timeout', 'Offline') THEN 1 ELSE 0 END) AS commands_failed,
        STRING_AGG(DISTINCT CASE WHEN status <> 'Accepted' THEN station_id END, ',')
            AS uncontrollable_stations
    FROM command_results
    WHERE signal_id IS NOT NULL
    GROUP BY signal_id
),

report_rows AS (
    SELECT
        c.signal_id,
        c.zone_id,
        c.signal_type,
        c.priority,
        c.source,
        c.start_ts,
        c.end_ts,
        c.baseline_kw,
        'zone load, last whole minute before start' AS baseline_method,
        c.cap_kw,
        m.minute_start,
        m.minute_end,
        m.covered_s,
        m.load_kw,
        c.baseline_kw - m.load_kw AS reduction_kw,
        CASE WHEN c.cap_kw IS NULL OR m.load_kw IS NULL THEN NULL
            WHEN m.load_kw <= c.cap_kw THEN 1 ELSE 0 END AS under_cap
    FROM caps AS c
    LEFT JOIN minutes AS m
        ON m.signal_id = c.signal_id
)

SELECT
    r.signal_id,
    r.zone_id,
    r.signal_type,
    r.priority,
    r.source,
    r.start_ts,
    r.end_ts,
    ROUND(r.baseline_kw::NUMERIC, 3)::DOUBLE PRECISION AS baseline_kw,
    r.baseline_method,
    ROUND(r.cap_kw::NUMERIC, 3)::DOUBLE PRECISION AS cap_kw,
    r.minute_start,
    r.minute_end,
    ROUND(r.load_kw::NUMERIC, 3)::DOUBLE PRECISION AS load_kw,
    ROUND(r.reduction_kw::NUMERIC, 3)::DOUBLE PRECISION AS reduction_kw,
    r.under_cap = 1 AS under_cap,
    -- totals over the event, repeated on each of its rows
    COUNT(r.minute_start) OVER (PARTITION BY r.signal_id) AS minutes_measured,
    ROUND((SUM(r.load_kw * r.covered_s) OVER (PARTITION BY r.signal_id) / 3600.0)::NUMERIC, 4)::DOUBLE PRECISION
        AS energy_kwh,
    ROUND((SUM(r.reduction_kw * r.covered_s) OVER (PARTITION BY r.signal_id) / 3600.0)::NUMERIC, 4)::DOUBLE PRECISION
        AS reduction_kwh,
    ROUND((SUM(r.reduction_kw * r.covered_s) OVER (PARTITION BY r.signal_id)
        / NULLIF(SUM(r.covered_s) OVER (PARTITION BY r.signal_id), 0))::NUMERIC, 3)::DOUBLE PRECISION
        AS avg_reduction_kw,
    ROUND((MAX(r.reduction_kw) OVER (PARTITION BY r.signal_id))::NUMERIC, 3)::DOUBLE PRECISION AS peak_reduction_kw,
    ROUND((100.0 * SUM(r.under_cap * r.covered_s) OVER (PARTITION BY r.signal_id)
        / NULLIF(SUM(CASE WHEN r.under_cap IS NOT NULL THEN r.covered_s END) OVER (PARTITION BY r.signal_id), 0))::NUMERIC,
        1)::DOUBLE PRECISION AS compliance_pct,
    COALESCE(k.commands_sent, 0) AS commands_sent,
    COALESCE(k.commands_accepted, 0) AS commands_accepted,
    COALESCE(k.commands_not_supported, 0) AS commands_not_supported,
    COALESCE(k.commands_rejected, 0) AS commands_rejected,
    COALESCE(k.commands_failed, 0) AS commands_failed,
    k.uncontrollable_stations
FROM report_rows AS r
LEFT JOIN commands AS k
    ON k.signal_id = r.signal_id
ORDER BY r.signal_id, r.minute_start
