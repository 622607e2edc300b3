-- Statement 1 is clean: per-station totals (updated in place as samples arrive).
CREATE MATERIALIZED VIEW station_totals AS
SELECT
    station_id,
    SUM(power_kw) AS total_kw
FROM readings
GROUP BY station_id;
-- A PLAIN sink cannot carry the updates of that view: RisingWave refuses this one.

CREATE SINK station_totals_sink FROM station_totals
WITH (
    connector = 'kafka',
    properties.bootstrap.server = '${kafka_bootstrap}',
    topic = 'totals'
)
FORMAT PLAIN ENCODE JSON;
