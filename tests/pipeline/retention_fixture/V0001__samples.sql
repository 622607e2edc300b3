-- Samples, as meter_values: append-only, watermarked 10 s behind the newest.
CREATE SOURCE samples (
    station_id VARCHAR,
    connector_id INT,
    power_kw DOUBLE PRECISION,
    event_ts TIMESTAMPTZ,
    received_ts TIMESTAMPTZ,
    WATERMARK FOR event_ts AS event_ts - INTERVAL '10 SECONDS'
)
WITH (
    connector = 'kafka',
    topic = 'ocpp.meter_values',
    properties.bootstrap.server = '${kafka_bootstrap}'
)
FORMAT PLAIN ENCODE JSON;
