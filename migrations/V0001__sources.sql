-- Append-only event streams from the OCPP gateway. A SOURCE stores nothing in RisingWave;
-- Kafka retention is the history. The watermark lets per-minute windows close.

-- One row per connector sample, as the gateway normalised it (kW, kWh, A, V).
-- The "gridctl: index" comment inside is a hint for the embedded engine; RisingWave ignores it.
CREATE SOURCE meter_values (
    station_id VARCHAR,
    connector_id INT,
    session_id VARCHAR,
    connector_type VARCHAR,
    power_kw DOUBLE PRECISION,
    current_a DOUBLE PRECISION,
    voltage_v DOUBLE PRECISION,
    energy_kwh DOUBLE PRECISION,
    soc_percent DOUBLE PRECISION,
    event_ts TIMESTAMPTZ,
    received_ts TIMESTAMPTZ,
    ocpp_version VARCHAR,
    -- gridctl: index (station_id, connector_id, event_ts)
    WATERMARK FOR event_ts AS event_ts - INTERVAL '${watermark_seconds} SECONDS'
)
WITH (
    connector = 'kafka',
    topic = '${topic_prefix}ocpp.meter_values',
    properties.bootstrap.server = '${kafka_bootstrap}',
    scan.startup.mode = 'earliest'
)
FORMAT PLAIN ENCODE JSON;

-- What happened to each command the gateway sent a charger (for acknowledgement rates).
CREATE SOURCE command_results (
    station_id VARCHAR,
    signal_id VARCHAR,
    action VARCHAR,
    status VARCHAR,
    sent_ts TIMESTAMPTZ,
    result_ts TIMESTAMPTZ,
    latency_ms DOUBLE PRECISION,
    WATERMARK FOR result_ts AS result_ts - INTERVAL '${watermark_seconds} SECONDS'
)
WITH (
    connector = 'kafka',
    topic = '${topic_prefix}ocpp.command_results',
    properties.bootstrap.server = '${kafka_bootstrap}',
    scan.startup.mode = 'earliest'
)
FORMAT PLAIN ENCODE JSON;
