-- Reference data and DR signals: tables with a key, updated in place.

-- Which zone each station feeds and what it may draw. The topic is compacted and a null
-- value removes a station, so the table is FORMAT UPSERT keyed by the Kafka key.
CREATE TABLE station_zones (
    station_id VARCHAR,
    zone_id VARCHAR,
    max_station_kw DOUBLE PRECISION,
    contract_max_kw DOUBLE PRECISION,
    min_active_kw DOUBLE PRECISION,
    charging_rate_unit VARCHAR,
    phases INT,
    voltage_v DOUBLE PRECISION,
    PRIMARY KEY (kafka_key)
)
INCLUDE KEY AS kafka_key
WITH (
    connector = 'kafka',
    topic = '${topic_prefix}config.station_zones',
    properties.bootstrap.server = '${kafka_bootstrap}',
    scan.startup.mode = 'earliest'
)
FORMAT UPSERT ENCODE JSON;

-- Joins and temporal joins look stations up by station_id, not by the raw Kafka key.
CREATE INDEX station_zones_by_station ON station_zones (station_id);

-- Zone lookups of stations, for allocation over every station of a zone.
CREATE INDEX station_zones_by_zone ON station_zones (zone_id);

-- One row per DR signal: a later modification replaces an earlier one even when the
-- revisions arrive out of order; RESTORE is a modification that ends the signal.
CREATE TABLE dr_signals (
    signal_id VARCHAR PRIMARY KEY,
    modification BIGINT,
    zone_id VARCHAR,
    signal_type VARCHAR,
    target_reduction_kw DOUBLE PRECISION,
    target_reduction_pct DOUBLE PRECISION,
    zone_limit_kw DOUBLE PRECISION,
    start_ts TIMESTAMPTZ,
    end_ts TIMESTAMPTZ,
    priority INT,
    source VARCHAR,
    received_ts TIMESTAMPTZ
)
ON CONFLICT OVERWRITE WITH VERSION COLUMN(modification)
WITH (
    connector = 'kafka',
    topic = '${topic_prefix}grid.demand_response',
    properties.bootstrap.server = '${kafka_bootstrap}',
    scan.startup.mode = 'earliest'
)
FORMAT PLAIN ENCODE JSON;

-- Signals of a zone, for the zone's caps.
CREATE INDEX dr_signals_by_zone ON dr_signals (zone_id);
