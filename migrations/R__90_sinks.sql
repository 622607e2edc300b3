-- Sinks: what the pipeline tells the rest of gridctl.

-- Each capped station's limit, keyed by station; a vanished row (signal ended, expired or
-- restored) becomes a tombstone and the gateway clears the profile. KEY ENCODE TEXT writes
-- the bare station id as the Kafka key (by default RisingWave writes {"station_id": ...}),
-- which is the key the gateway and compaction expect.
CREATE SINK set_charging_profile_sink FROM dr_commands
WITH (
    connector = 'kafka',
    properties.bootstrap.server = '${kafka_bootstrap}',
    topic = '${topic_prefix}ocpp.commands.set_charging_profile',
    primary_key = 'station_id'
)
FORMAT UPSERT ENCODE JSON
KEY ENCODE TEXT;

-- Baseline candidates, read back by dr_baselines (first row per key wins): the feedback
-- that freezes each event's baseline once. A vanished candidate (event over) is a
-- tombstone that removes the frozen row.
CREATE SINK dr_baselines_sink FROM dr_baseline_candidates
WITH (
    connector = 'kafka',
    properties.bootstrap.server = '${kafka_bootstrap}',
    topic = '${topic_prefix}pipeline.dr_baselines',
    primary_key = 'baseline_id'
)
FORMAT UPSERT ENCODE JSON
KEY ENCODE TEXT;

-- Alert episodes, read back by dr_alert_episodes (first row per key wins): the feedback
-- that makes an alert on changing state one alert per episode. A vanished candidate (the
-- condition ended) is a tombstone that ends the episode.
CREATE SINK dr_alert_episodes_sink FROM dr_alert_candidates
WITH (
    connector = 'kafka',
    properties.bootstrap.server = '${kafka_bootstrap}',
    topic = '${topic_prefix}pipeline.dr_alert_episodes',
    primary_key = 'alert_id'
)
FORMAT UPSERT ENCODE JSON
KEY ENCODE TEXT;

-- The state of every active signal, keyed by signal: the bridge answers GET /v1/signals/{id}
-- with it. A signal that ended leaves the view: a tombstone.
CREATE SINK dr_signal_states_sink FROM dr_signal_state_records
WITH (
    connector = 'kafka',
    properties.bootstrap.server = '${kafka_bootstrap}',
    topic = '${topic_prefix}pipeline.dr_signal_states',
    primary_key = 'signal_id'
)
FORMAT UPSERT ENCODE JSON
KEY ENCODE TEXT;

-- Station contract overloads, one per station and window.
CREATE SINK overload_alerts_sink FROM station_overload_alerts
WITH (
    connector = 'kafka',
    properties.bootstrap.server = '${kafka_bootstrap}',
    topic = '${topic_prefix}alerts.grid.overload',
    -- re-created (an edited R file), it must not send past alerts again
    snapshot = 'false',
    primary_key = 'alert_type,station_id,window_start'
)
FORMAT PLAIN ENCODE JSON (
    force_append_only = 'true'
);

-- DR compliance alerts (zone above cap after grace, low acknowledgement rate, signals not
-- enforced). The key names the episode (detected_at: when it began).
CREATE SINK dr_alerts_sink FROM dr_alerts
WITH (
    connector = 'kafka',
    properties.bootstrap.server = '${kafka_bootstrap}',
    topic = '${topic_prefix}alerts.grid.dr',
    -- re-created (an edited R file), it must not send past alerts again
    snapshot = 'false',
    primary_key = 'alert_type,zone_id,signal_id,window_start,detected_at'
)
FORMAT PLAIN ENCODE JSON (
    force_append_only = 'true'
);

-- Stations that do not follow their limits, one alert per station, signal and episode.
CREATE SINK station_dr_alerts_sink FROM station_uncontrollable_alerts
WITH (
    connector = 'kafka',
    properties.bootstrap.server = '${kafka_bootstrap}',
    topic = '${topic_prefix}alerts.grid.dr',
    -- re-created (an edited R file), it must not send past alerts again
    snapshot = 'false',
    primary_key = 'alert_type,station_id,signal_id,window_start,detected_at'
)
FORMAT PLAIN ENCODE JSON (
    force_append_only = 'true'
);
