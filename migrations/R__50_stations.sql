-- Stations as an operator sees them: connected or not, since when, on which OCPP
-- version, what each connector reports (1.6 connector:status, 2.0.1
-- evse/connector:status; connector_status is R__20's, which reads it to tell idle
-- stations), and what the last command did.

-- The last command result of each station: which action, for which signal, and how the
-- charger answered (Accepted, Rejected, NotSupported, Timeout, Offline).
CREATE MATERIALIZED VIEW station_last_command AS
SELECT
    station_id,
    signal_id,
    action,
    status,
    result_ts
FROM (
    SELECT
        station_id,
        signal_id,
        action,
        status,
        result_ts,
        ROW_NUMBER() OVER (
            PARTITION BY station_id
            ORDER BY result_ts DESC
        ) AS rn
    FROM command_results
) AS latest
WHERE rn = 1;

-- Every configured station with its connection state: online when its latest event is
-- anything but a disconnect, 'never seen' when the gateway never reported it. Last seen is
-- its latest status event or fresh meter sample, whichever is newer.
CREATE MATERIALIZED VIEW station_overview AS
SELECT
    z.station_id,
    z.zone_id,
    CASE
        WHEN p.event IS NULL THEN 'never seen'
        WHEN p.event = 'Disconnected' THEN 'offline'
        ELSE 'online'
    END AS connection,
    GREATEST(p.ts, l.last_event_ts) AS last_seen,
    p.ocpp_version,
    c.connectors,
    LEAST(z.max_station_kw, z.contract_max_kw) AS max_kw,
    d.target_power_kw AS limit_kw,
    d.signal_id AS limit_signal_id,
    r.action AS last_command,
    r.status AS last_result,
    r.result_ts AS last_result_ts
FROM station_zones AS z
LEFT JOIN station_presence AS p
    ON p.station_id = z.station_id
LEFT JOIN station_load AS l
    ON l.station_id = z.station_id
LEFT JOIN (
    SELECT
        station_id,
        STRING_AGG(
            connector_id::VARCHAR
                || COALESCE('/' || evse_connector_id::VARCHAR, '')
                || ':' || status,
            ' '
            ORDER BY connector_id, evse_connector_id
        ) AS connectors
    FROM connector_status
    GROUP BY station_id
) AS c
    ON c.station_id = z.station_id
LEFT JOIN dr_commands AS d
    ON d.station_id = z.station_id
LEFT JOIN station_last_command AS r
    ON r.station_id = z.station_id;
