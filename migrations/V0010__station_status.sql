-- What the OCPP gateway says about each station's connection and connectors
-- (ocpp.station_status): Connected, Disconnected, BootNotification, StatusNotification.

-- Every status event, append-only, for the latest status of each connector. The
-- watermark is on the gateway's own time (ts), never a charger's clock.
CREATE SOURCE station_status (
    station_id VARCHAR,
    event VARCHAR,
    connector_id INT,
    status VARCHAR,
    error_code VARCHAR,
    ocpp_version VARCHAR,
    ts TIMESTAMPTZ,
    -- gridctl: index (station_id, connector_id, ts)
    WATERMARK FOR ts AS ts - INTERVAL '${watermark_seconds} SECONDS'
)
WITH (
    connector = 'kafka',
    topic = '${topic_prefix}ocpp.station_status',
    properties.bootstrap.server = '${kafka_bootstrap}',
    scan.startup.mode = 'earliest'
)
FORMAT PLAIN ENCODE JSON;

-- The latest event of each station, whatever its kind: whether it is connected now and
-- when it was last heard of. A table keyed by station keeps it however old it is (a quiet,
-- connected charger may send nothing for days), while raw events age out.
CREATE TABLE station_presence (
    station_id VARCHAR PRIMARY KEY,
    event VARCHAR,
    connector_id INT,
    status VARCHAR,
    error_code VARCHAR,
    ocpp_version VARCHAR,
    ts TIMESTAMPTZ
)
WITH (
    connector = 'kafka',
    topic = '${topic_prefix}ocpp.station_status',
    properties.bootstrap.server = '${kafka_bootstrap}',
    scan.startup.mode = 'earliest'
)
FORMAT PLAIN ENCODE JSON;
