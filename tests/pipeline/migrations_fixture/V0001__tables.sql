-- Meter samples and station zones: the inputs every view reads.
CREATE TABLE meter (
    station_id VARCHAR,
    power_kw DOUBLE PRECISION,
    event_ts TIMESTAMPTZ
);

CREATE TABLE zones (
    station_id VARCHAR PRIMARY KEY,
    zone_id VARCHAR
);
