"""Topic names shared by every service.

The gateway, the bridge and the engine meet only on these topics, so their names live
in one place. Upsert topics are compacted on Kafka and replayed "latest value per key"
to new subscribers by the in-process bus; a null value on them is a tombstone.
"""

from __future__ import annotations

METER_VALUES = "ocpp.meter_values"
STATION_STATUS = "ocpp.station_status"
COMMAND_RESULTS = "ocpp.command_results"
SET_CHARGING_PROFILE = "ocpp.commands.set_charging_profile"
#: the gateway's own memory: which transaction runs on which connector/EVSE of a station,
#: and which ended (read back by a restarted gateway, or the worker a charger moves to)
OCPP_SESSIONS = "ocpp.sessions"
DEMAND_RESPONSE = "grid.demand_response"
STATION_ZONES = "config.station_zones"
STATION_CREDENTIALS = "config.station_credentials"
ALERTS_OVERLOAD = "alerts.grid.overload"
ALERTS_DR = "alerts.grid.dr"
#: the pipeline's own feedback topic: baseline candidates, read back first-row-wins
DR_BASELINES = "pipeline.dr_baselines"
#: the pipeline's own feedback topic: alert episodes, read back first-row-wins, so an alert
#: reading state that changes (a signal's state, a station's results) is sent once
DR_ALERT_EPISODES = "pipeline.dr_alert_episodes"
#: the state of each active signal (enforced, waiting_for_load, infeasible, no_stations)
DR_SIGNAL_STATES = "pipeline.dr_signal_states"
#: Dead letters: records the engine could not ingest, with the reason and where they came
#: from, so that an acknowledged reading is in the engine or here, never nowhere.
INGEST_REJECTED = "ingest.rejected"

#: Topics whose records replace earlier ones with the same key (Kafka: cleanup.policy=compact).
UPSERT_TOPICS: frozenset[str] = frozenset(
    {
        SET_CHARGING_PROFILE,
        OCPP_SESSIONS,
        STATION_ZONES,
        STATION_CREDENTIALS,
        DEMAND_RESPONSE,
        DR_BASELINES,
        DR_ALERT_EPISODES,
        DR_SIGNAL_STATES,
    }
)

ALL_TOPICS: tuple[str, ...] = (
    METER_VALUES,
    STATION_STATUS,
    COMMAND_RESULTS,
    SET_CHARGING_PROFILE,
    OCPP_SESSIONS,
    DEMAND_RESPONSE,
    STATION_ZONES,
    STATION_CREDENTIALS,
    ALERTS_OVERLOAD,
    ALERTS_DR,
    DR_BASELINES,
    DR_ALERT_EPISODES,
    DR_SIGNAL_STATES,
    INGEST_REJECTED,
)


def is_upsert(topic: str) -> bool:
    """Whether a topic keeps only the latest value per key (compacted); a deployment's
    ``${topic_prefix}`` before the name does not change that."""
    return topic in UPSERT_TOPICS or any(topic.endswith(t) for t in UPSERT_TOPICS)
