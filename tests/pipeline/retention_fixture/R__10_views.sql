-- Reads the last hour of samples.
CREATE MATERIALIZED VIEW recent AS
SELECT
    station_id,
    MAX(power_kw) AS max_kw
FROM samples
WHERE event_ts > NOW() - INTERVAL '1 HOUR'
GROUP BY station_id;

-- Per-minute averages once closed: reads only windows not closed yet.
CREATE MATERIALIZED VIEW per_minute AS
SELECT
    station_id,
    window_start,
    window_end,
    AVG(power_kw) AS avg_kw
FROM TUMBLE(samples, event_ts, INTERVAL '1 MINUTE')
GROUP BY station_id, window_start, window_end
EMIT ON WINDOW CLOSE;

-- Reads the closed minutes of the last two hours.
CREATE MATERIALIZED VIEW per_minute_recent AS
SELECT
    station_id,
    window_end,
    avg_kw
FROM per_minute
WHERE window_end > NOW() - INTERVAL '2 HOURS';
