-- Control law v2 (docs/control-law.md): one baseline per utility event, frozen once.

-- The utility event a signal belongs to. The intervals and revisions of one OpenADR event
-- (several signal_ids) carry the same event_id and share one baseline; NULL: the signal is
-- its own event.
ALTER TABLE dr_signals ADD COLUMN event_id VARCHAR;

-- Frozen baselines. The pipeline writes a candidate per (event, zone, station) and one for
-- the zone's total ('*') to the compacted topic pipeline.dr_baselines (sink in R__90); this
-- table reads them back and keeps the first row per key (ON CONFLICT DO NOTHING), so a
-- baseline never moves once written, whatever the load does afterwards. The candidate
-- vanishes when the event is over and the tombstone removes the row (state stays bounded).
CREATE TABLE dr_baselines (
    baseline_id VARCHAR,
    event_key VARCHAR,
    zone_id VARCHAR,
    station_id VARCHAR,
    baseline_kw DOUBLE PRECISION,
    basis VARCHAR,
    lent_from VARCHAR,
    effective_ts TIMESTAMPTZ,
    PRIMARY KEY (kafka_key)
)
ON CONFLICT DO NOTHING
INCLUDE KEY AS kafka_key
WITH (
    connector = 'kafka',
    topic = '${topic_prefix}pipeline.dr_baselines',
    properties.bootstrap.server = '${kafka_bootstrap}',
    scan.startup.mode = 'earliest'
)
FORMAT UPSERT ENCODE JSON;

-- Lookups of an event's baselines.
CREATE INDEX dr_baselines_by_event ON dr_baselines (event_key, zone_id);

-- Lookups by the candidate's id (the Kafka key is its bytes).
CREATE INDEX dr_baselines_by_id ON dr_baselines (baseline_id);
