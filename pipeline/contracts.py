"""Typed records for every topic, with one JSON codec and one error type.

Why msgspec rather than pydantic: the gateway encodes one record per connector sample and
the engine decodes every one of them again, so the codec sits on the hottest path we
have. msgspec decodes JSON straight into typed structs (no intermediate dict) several
times faster than pydantic v2, validates constraints declared with ``Meta``, and
generates JSON Schema from the same classes. The HTTP API keeps pydantic for its request
bodies, where collecting every bad field at once matters more than speed.

Rules every record follows (``docs/architecture.md``):

- timestamps are RFC 3339 with an offset; a naive timestamp is refused;
- power in kW, energy in kWh, current in A, voltage in V;
- a measurand that was not measured is ``null``, never 0;
- numbers may arrive as numeric strings (RisingWave writes NUMERIC that way).
"""

from __future__ import annotations

import inspect
import re
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

import msgspec

from pipeline import topics

__all__ = [
    "INT32_MAX",
    "MODELS",
    "STATION_ID_MAX",
    "STATION_ID_PATTERN",
    "Alert",
    "CommandResult",
    "ContractError",
    "DemandResponseSignal",
    "DrAlertEpisode",
    "DrBaseline",
    "DrSignalState",
    "MeterValue",
    "OpenSession",
    "RejectedRecord",
    "SetChargingProfileCommand",
    "StationCredential",
    "StationSessions",
    "StationStatus",
    "StationZone",
    "decode",
    "encode",
    "json_schema",
]

TzDatetime = Annotated[datetime, msgspec.Meta(tz=True)]
#: Every number has the range of its column: a bound also refuses NaN and infinities
#: (a comparison with NaN is false), which JSON cannot carry but numeric strings can.
#: 1e9 kW (a terawatt) is far above any grid value and far below float overflow.
_BIG = 1e9
Finite = Annotated[float, msgspec.Meta(ge=-_BIG, le=_BIG)]
NonNegative = Annotated[float, msgspec.Meta(ge=0, le=_BIG)]
#: 0 ..  2^31 - 1: OCPP's integers are int32, and so is the engine's column
INT32_MAX = 2**31 - 1
Int32Id = Annotated[int, msgspec.Meta(ge=0, le=INT32_MAX)]
#: no control characters (they forge log lines and break CSV and terminals)
_PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=_PRINTABLE)]
#: OCPP's identity: at most 48 characters, the last segment of the charger's URL, so no
#: ``/``; no ``:`` (it separates the Basic-auth username from the password)
STATION_ID_MAX = 48
STATION_ID_PATTERN = r"^[^\x00-\x1f\x7f:/]+$"
StationId = Annotated[
    str, msgspec.Meta(min_length=1, max_length=STATION_ID_MAX, pattern=STATION_ID_PATTERN)
]
#: a short free text from a peer (enum-like OCPP strings, transaction ids, sources)
Text = Annotated[str, msgspec.Meta(max_length=128, pattern=r"^[^\x00-\x1f\x7f]*$")]


class ContractError(ValueError):
    """A record that does not follow its topic's contract.

    ``field`` is a JSON path such as ``$.event_ts`` (``$`` when the whole document is
    wrong, e.g. not JSON at all); ``reason`` says what is wrong with it. The caller
    should refuse the record (CallError, HTTP 422, a logged skip) and keep going.
    """

    def __init__(self, topic: str, field: str, reason: str) -> None:
        self.topic = topic
        self.field = field
        self.reason = reason
        super().__init__(f"{topic}: {field}: {reason}")


class _Record(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """Base of every contract; unknown fields are ignored so producers can add fields."""


class MeterValue(_Record, kw_only=True):
    """One connector sample (``ocpp.meter_values``, key ``station_id``).

    ``event_ts`` is within the gateway's clock-skew bound of ``received_ts``: when the
    charger's own timestamp is further off, ``event_ts`` is the received time and the
    charger's time is kept in ``charger_ts`` (null when the charger's clock was trusted).
    Import power, current, voltage and energy are never negative.
    """

    station_id: StationId
    connector_id: Int32Id
    session_id: Text | None = None
    connector_type: Text | None = None
    power_kw: NonNegative | None = None
    current_a: NonNegative | None = None
    voltage_v: NonNegative | None = None
    energy_kwh: NonNegative | None = None
    soc_percent: Annotated[float, msgspec.Meta(ge=0, le=100)] | None = None
    event_ts: TzDatetime
    received_ts: TzDatetime
    charger_ts: TzDatetime | None = None
    ocpp_version: Literal["1.6", "2.0.1"]


SignalType = Literal["CURTAIL", "SHED", "RESTORE"]


class DemandResponseSignal(_Record, kw_only=True):
    """One revision of a DR signal (``grid.demand_response``, key ``signal_id``).

    CURTAIL and SHED carry exactly one amount; RESTORE carries none and ends the signal.
    """

    signal_id: Id
    modification: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)] = 0
    zone_id: Id
    signal_type: SignalType
    target_reduction_kw: NonNegative | None = None
    target_reduction_pct: Annotated[float, msgspec.Meta(ge=0, le=100)] | None = None
    zone_limit_kw: NonNegative | None = None
    start_ts: TzDatetime
    end_ts: TzDatetime
    priority: Annotated[int, msgspec.Meta(ge=1, le=3)] = 2
    source: Text = "api"
    received_ts: TzDatetime
    #: The utility event this signal is part of, qualified by its source (for example
    #: ``openadr2:evt-7``). Every interval and revision of one event carries the same
    #: id, so the engine takes one baseline per event, not one per interval. Null: the
    #: signal is an event of its own (an API signal).
    event_id: Id | None = None
    #: The event's priority as the utility sent it (OpenADR 3: lower is more urgent;
    #: OpenADR 2.0b: 0 means none). Kept for reports and tie-breaks; ``priority`` is
    #: the program's class in our terms.
    event_priority: Annotated[int, msgspec.Meta(ge=0)] | None = None

    def __post_init__(self) -> None:
        amounts = [
            name
            for name in ("target_reduction_kw", "target_reduction_pct", "zone_limit_kw")
            if getattr(self, name) is not None
        ]
        if self.signal_type == "RESTORE":
            if amounts:
                name = amounts[0]
                raise ValueError(f"RESTORE carries no amount, got {name} - at `$.{name}`")
        elif len(amounts) != 1:
            raise ValueError(
                f"{self.signal_type} needs exactly one of target_reduction_kw, "
                f"target_reduction_pct, zone_limit_kw, got {len(amounts)} - at `$.signal_type`"
            )
        if self.end_ts <= self.start_ts:
            raise ValueError("end_ts must be after start_ts - at `$.end_ts`")


class DrBaseline(_Record, kw_only=True):
    """A frozen baseline candidate (``pipeline.dr_baselines``, upsert by ``baseline_id``).

    Written by the pipeline and read back by it; the first record per key wins. The
    station ``*`` carries the zone's total, which the cap is computed from.
    """

    baseline_id: str
    event_key: str
    zone_id: str
    station_id: str
    baseline_kw: NonNegative
    #: pre_start (latest fresh sample before start), load_now (signal heard after start
    #: with no pre-start data kept), lent (the zone was already curtailed by lent_from),
    #: no_data (a station that reported nothing)
    basis: Literal["pre_start", "load_now", "lent", "no_data", "sum"]
    lent_from: str | None = None
    effective_ts: TzDatetime


SignalState = Literal["enforced", "waiting_for_load", "infeasible", "no_stations"]


class DrSignalState(_Record, kw_only=True):
    """The state of an active signal (``pipeline.dr_signal_states``, upsert by signal).

    Written by the pipeline; a tombstone when the signal is no longer in force.
    """

    signal_id: str
    zone_id: str
    state: SignalState
    #: the signal whose cap the zone follows (the lowest of the zone's active signals)
    enforced_by: str | None = None
    baseline_basis: str | None = None
    baseline_kw: float | None = None
    cap_kw: float | None = None
    #: how far floors and uncontrollable load exceed the cap (infeasible), else 0
    shortfall_kw: float | None = None
    uncontrollable_stations: int | None = None


class StationZone(_Record, kw_only=True):
    """A station's zone and limits (``config.station_zones``, upsert by ``station_id``)."""

    station_id: StationId
    zone_id: Id
    max_station_kw: Annotated[float, msgspec.Meta(gt=0, le=_BIG)]
    contract_max_kw: Annotated[float, msgspec.Meta(gt=0, le=_BIG)]
    min_active_kw: NonNegative = 0.0
    charging_rate_unit: Literal["W", "A"] = "W"
    phases: Literal[1, 3] = 3
    voltage_v: Annotated[float, msgspec.Meta(gt=0, le=_BIG)] = 230.0


class StationCredential(_Record, kw_only=True):
    """Basic-auth secret of a station (``config.station_credentials``, upsert).

    Kept off ``config.station_zones`` so that the engine and dashboards, which read zones,
    never see secrets. ``password_hash`` is ``scrypt$<salt hex>$<hash hex>``.
    """

    station_id: StationId
    password_hash: Annotated[str, msgspec.Meta(max_length=512, pattern=_PRINTABLE)]
    security_profile: Literal[1, 2] = 1


class SetChargingProfileCommand(_Record, kw_only=True):
    """A station's desired limit (``ocpp.commands.set_charging_profile``, upsert).

    A tombstone (null value) on the station's key means: no limit any more.
    """

    station_id: StationId
    target_power_kw: NonNegative
    station_shed_kw: Finite = 0.0
    signal_id: Id
    priority: Annotated[int, msgspec.Meta(ge=1, le=3)] = 2
    dr_end_ts: TzDatetime
    command_ts: TzDatetime


CommandStatus = Literal["Accepted", "Rejected", "NotSupported", "Timeout", "Offline"]


class CommandResult(_Record, kw_only=True):
    """What happened to one command attempt (``ocpp.command_results``)."""

    station_id: StationId
    signal_id: Id | None = None
    action: Text
    status: CommandStatus
    sent_ts: TzDatetime
    result_ts: TzDatetime
    latency_ms: NonNegative | None = None
    #: The limit the command carried (kW), for SetChargingProfile: what the station
    #: accepted, which the pipeline compares its measured load with (a station drawing
    #: above it beyond a grace period does not follow its limits). Null for other actions.
    limit_kw: NonNegative | None = None


class StationStatus(_Record, kw_only=True):
    """Connection and connector status of a station (``ocpp.station_status``)."""

    station_id: StationId
    event: Literal["Connected", "Disconnected", "BootNotification", "StatusNotification"]
    #: 1.6 connectorId; 2.0.1 evseId (as in meter values and sessions)
    connector_id: Int32Id | None = None
    #: 2.0.1 connectorId, the connector within the EVSE (an EVSE with two connectors reports
    #: each); None for 1.6 and in records written before this field existed
    evse_connector_id: Int32Id | None = None
    status: Text | None = None
    error_code: Text | None = None
    ocpp_version: Literal["1.6", "2.0.1"] | None = None
    #: the gateway process holding the connection (``w0``, ``w1``: ``--gateway-workers``)
    gateway: Text | None = None
    ts: TzDatetime


class OpenSession(_Record, kw_only=True):
    """A transaction running on one connector (1.6) or EVSE (2.0.1)."""

    connector_id: Int32Id
    session_id: Text


class StationSessions(_Record, kw_only=True):
    """The gateway's memory of a station's transactions (``ocpp.sessions``, upsert by
    ``station_id``).

    Written by the gateway that holds the station, in the same durable batch as the
    readings that changed it, and read back by a gateway that starts (or that the charger
    reconnects to): a 2.0.1 TransactionEvent names its EVSE only once, a 1.6
    StopTransaction only its transaction, and ``closed`` lists the latest transactions
    that ended, whose late or repeated events are ignored.
    """

    station_id: StationId
    open: list[OpenSession] = []
    closed: list[Text] = []
    ts: TzDatetime


class Alert(_Record, kw_only=True):
    """One alert per episode or window (``alerts.grid.overload``, ``alerts.grid.dr``)."""

    alert_type: Text
    detected_at: TzDatetime
    zone_id: Id | None = None
    station_id: StationId | None = None
    signal_id: Id | None = None
    observed_kw: Finite | None = None
    limit_kw: Finite | None = None
    ack_rate: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    window_start: TzDatetime | None = None
    window_end: TzDatetime | None = None


class RejectedRecord(_Record, kw_only=True):
    """A record the engine could not ingest (``ingest.rejected``, key ``topic:offset``).

    ``value`` is the original record as text (invalid UTF-8 replaced), so that it can be
    inspected, fixed and published again; ``reason`` is a short label (the one the metric
    counts), ``detail`` the full error.
    """

    topic: str
    partition: int = 0
    offset: Annotated[int, msgspec.Meta(ge=0)]
    key: str | None = None
    value: str | None = None
    table: str | None = None
    reason: str
    detail: str
    rejected_ts: TzDatetime


class DrAlertEpisode(Alert, kw_only=True):
    """An alert episode (``pipeline.dr_alert_episodes``, upsert by ``alert_id``).

    Written by the pipeline and read back by it; the first record per key wins, so the
    alert sent from it does not change while the episode lasts (a signal's state, a
    station's load and results change underneath). A tombstone ends the episode.
    """

    #: ``<alert_type>|<signal_id>|<station_id or *>``
    alert_id: str


#: The contract of each topic.
MODELS: dict[str, type[_Record]] = {
    topics.METER_VALUES: MeterValue,
    topics.DEMAND_RESPONSE: DemandResponseSignal,
    topics.STATION_ZONES: StationZone,
    topics.STATION_CREDENTIALS: StationCredential,
    topics.SET_CHARGING_PROFILE: SetChargingProfileCommand,
    topics.OCPP_SESSIONS: StationSessions,
    topics.COMMAND_RESULTS: CommandResult,
    topics.STATION_STATUS: StationStatus,
    topics.ALERTS_OVERLOAD: Alert,
    topics.ALERTS_DR: Alert,
    topics.DR_BASELINES: DrBaseline,
    topics.DR_ALERT_EPISODES: DrAlertEpisode,
    topics.DR_SIGNAL_STATES: DrSignalState,
    topics.INGEST_REJECTED: RejectedRecord,
}

_T = TypeVar("_T", bound=msgspec.Struct)
_ENCODER = msgspec.json.Encoder()
_DECODERS: dict[type, msgspec.json.Decoder[Any]] = {}
_AT = re.compile(r"\s*-\s*at `(?P<path>[^`]+)`\s*$")


def encode(record: msgspec.Struct) -> bytes:
    """Serialise a record to compact UTF-8 JSON (datetimes as RFC 3339)."""
    return _ENCODER.encode(record)


def decode(model: type[_T], data: bytes | str, *, topic: str | None = None) -> _T:
    """Parse and validate one JSON record, or raise :class:`ContractError`.

    Numeric strings are accepted where a number is expected, because RisingWave sinks
    write NUMERIC columns as strings.
    """
    decoder = _DECODERS.get(model)
    if decoder is None:
        decoder = _DECODERS[model] = msgspec.json.Decoder(model, strict=False)
    try:
        return decoder.decode(data)  # type: ignore[no-any-return]
    except msgspec.ValidationError as exc:
        field, reason = _split(str(exc))
        raise ContractError(topic or model.__name__, field, reason) from exc
    except msgspec.DecodeError as exc:
        raise ContractError(topic or model.__name__, "$", f"not valid JSON ({exc})") from exc


def decode_topic(topic: str, data: bytes | str) -> msgspec.Struct:
    """Decode a record of ``topic`` with that topic's contract."""
    return decode(MODELS[topic], data, topic=topic)


def _split(message: str) -> tuple[str, str]:
    match = _AT.search(message)
    path = match.group("path") if match else "$"
    reason = (message[: match.start()] if match else message).replace("`", "")
    if reason.startswith("Object missing required field"):
        name = reason.split("field", 1)[1].strip()
        return f"{path}.{name}", "required field is missing"
    return path, reason


def json_schema(topic: str) -> dict[str, Any]:
    """The JSON Schema of a topic's records, generated from its model.

    Descriptions come from docstrings, whose indentation msgspec (0.23 keeps it, older
    releases strip it) and Python (3.13 strips it at compile time) treat differently:
    cleaning every description makes the checked-in ``docs/contracts/`` the same on every
    supported version.
    """
    schema = _clean_descriptions(msgspec.json.schema(MODELS[topic]))
    schema["title"] = topic
    return schema


def _clean_descriptions(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: inspect.cleandoc(v)
            if k == "description" and isinstance(v, str)
            else _clean_descriptions(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_clean_descriptions(v) for v in node]
    return node
