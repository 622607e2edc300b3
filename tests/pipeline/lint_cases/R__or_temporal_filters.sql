-- Statement 1 is clean: fresh samples only (a temporal filter in WHERE is fine).
CREATE MATERIALIZED VIEW fresh_samples AS
SELECT
    station_id,
    power_kw
FROM meter_values
WHERE event_ts > NOW() - INTERVAL '120 SECONDS';

-- Bad: two temporal filters joined by OR.
CREATE MATERIALIZED VIEW active_or_recent AS
SELECT signal_id
FROM dr_signals
WHERE start_ts <= NOW()
    OR end_ts > NOW() - INTERVAL '5 MINUTES';
