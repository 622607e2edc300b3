-- The latest alerts: station contract overloads and DR compliance (zone over cap, low
-- acknowledgement rate), newest first.
SELECT
    detected_at,
    alert_type,
    zone_id,
    station_id,
    signal_id,
    observed_kw,
    limit_kw,
    ack_rate
FROM (
    SELECT detected_at, alert_type, zone_id, station_id, signal_id, observed_kw, limit_kw,
        ack_rate
    FROM station_overload_alerts
    UNION ALL
    SELECT detected_at, alert_type, zone_id, station_id, signal_id, observed_kw, limit_kw,
        ack_rate
    FROM dr_alerts
) AS alerts
ORDER BY detected_at DESC, alert_type, zone_id, station_id
LIMIT 100;
