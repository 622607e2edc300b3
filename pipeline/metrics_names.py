"""Names of the Prometheus metrics a grid NOC alarms on.

The gateway, the bridge and the engine create their metrics with these names, and
deploy/prometheus/alerts.yml and the Grafana dashboard refer to them, so they are spelled
once, here.
"""

METER_DATA_AGE_SECONDS = "gridctl_meter_data_age_seconds"  # histogram: event_ts -> ingest
READINGS_INGESTED = "gridctl_readings_ingested_total"  # counter
READINGS_REFUSED = "gridctl_readings_refused_total"  # counter {reason}
#: counter {reason}: readings acknowledged but not published (closed or unplaceable transaction)
READINGS_IGNORED = "gridctl_readings_ignored_total"
INGEST_LATENCY_SECONDS = "gridctl_ingest_latency_seconds"  # histogram: bus -> engine table
ENGINE_LAG_RECORDS = "gridctl_engine_lag_records"  # gauge: records on the bus not yet ingested
ENGINE_TICK_SECONDS = "gridctl_engine_tick_seconds"  # histogram
ENGINE_STAGE_SECONDS = "gridctl_engine_stage_seconds"  # counter{stage}: wall s
ENGINE_STAGE_CPU_SECONDS = "gridctl_engine_stage_cpu_seconds"  # counter{stage}: thread CPU
ENGINE_LAST_TICK = "gridctl_engine_last_tick_timestamp_seconds"  # gauge: unix time
COMMAND_RESULTS = "gridctl_command_results_total"  # counter {status}
COMMAND_ACK_RATE = "gridctl_command_ack_rate"  # gauge {signal_id}
COMMAND_LATENCY_SECONDS = "gridctl_command_latency_seconds"  # histogram
OCPP_CONNECTED_STATIONS = "gridctl_ocpp_connected_stations"  # gauge
OCPP_MESSAGES = "gridctl_ocpp_messages_total"  # counter {action, version}
BUS_PUBLISH_SECONDS = "gridctl_bus_publish_seconds"  # histogram
OCPP_ACKS_REFUSED = "gridctl_ocpp_acks_refused_total"  # counter: CallError because not durable
OCPP_ACK_SECONDS = "gridctl_ocpp_ack_seconds"  # histogram {action}: Call in -> CallResult out
OCPP_CLOCK_SKEW = "gridctl_ocpp_clock_skew_readings_total"  # counter {station_id}
OCPP_BUDGET_EXCEEDED = "gridctl_ocpp_budget_exceeded_total"  # counter {outcome}
OCPP_CALL_ERRORS = "gridctl_ocpp_frame_errors_total"  # counter {code}: CallErrors we answered
DR_SIGNALS = "gridctl_dr_signals_total"  # counter {source, signal_type}
DR_PUBLISH_RETRIES = "gridctl_dr_publish_retries_total"  # counter: failed publishes, retried
DR_CONFIRM_SECONDS = "gridctl_dr_confirm_seconds"  # histogram: signal accepted -> on the bus
ENGINE_RECORDS_INGESTED = "gridctl_engine_records_ingested_total"  # counter {topic}
#: counter {topic, reason}: records not ingested, each published to ``ingest.rejected``
ENGINE_RECORDS_REJECTED = "gridctl_engine_records_rejected_total"
ENGINE_SINK_RECORDS = "gridctl_engine_sink_records_total"  # counter {sink}
BUS_OFFSETS_BEYOND_LOG = "gridctl_bus_offsets_beyond_log_records_total"  # counter {topic, reader}
