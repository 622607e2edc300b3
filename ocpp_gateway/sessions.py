"""Which transaction runs on which connector/EVSE of a station, and which ended (pure).

Why the gateway must remember it: a 2.0.1 ``TransactionEvent`` has to name its EVSE only
in the first event that knows it, later ones may omit it; a 1.6 ``StopTransaction``
names only its transaction. A sample put on the wrong connector (connector 0, "unknown")
while the right connector's sample is still fresh counts the station twice (146.7 kW
for 73.3 kW real, issue 12); an event replayed for a transaction that already ended
would make an ended session look active again. So, per station:

- ``open``: connector/EVSE -> running transaction, learnt from StartTransaction, the
  first TransactionEvent with ``evse``, or a 1.6 MeterValues with ``transactionId``;
- ``closed``: the latest :data:`CLOSED_KEPT` transactions that ended; their events are
  acknowledged and not published (the end already published 0 kW for the connector).

The state is a value: :meth:`Sessions.start` and :meth:`Sessions.end` return a new one
(or ``None`` when nothing changes), so the handler publishes the new state in the same
durable batch as the readings and adopts it only once the bus confirmed it; a charger
retrying a refused call finds the state as it was. Published on ``ocpp.sessions``
(compacted, key station) and read back by a gateway that starts or that the charger
reconnects to (:class:`SessionBook`), so a restart does not forget it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime

from pipeline.bus import Record
from pipeline.contracts import ContractError, OpenSession, StationSessions, decode

__all__ = ["CLOSED_KEPT", "SessionBook", "Sessions"]

#: ended transactions remembered per station: a charger's offline queue replays at most
#: a few transactions; the latest 16 of each station cost a few hundred bytes
CLOSED_KEPT = 16


@dataclass(frozen=True, slots=True)
class Sessions:
    """One station's transactions; immutable (see the module docstring)."""

    open: dict[int, str] = field(default_factory=dict)
    closed: tuple[str, ...] = ()

    def connector_of(self, session: str) -> int | None:
        """The connector/EVSE ``session`` runs on; ``None`` when not known (never a guess)."""
        return next((c for c, s in self.open.items() if s == session), None)

    def on(self, connector: int) -> str | None:
        """The transaction running on ``connector``, if any."""
        return self.open.get(connector)

    def is_closed(self, session: str) -> bool:
        return session in self.closed

    def start(self, connector: int, session: str) -> Sessions | None:
        """``session`` runs on ``connector`` (replacing whatever ran there); ``None`` if
        that is known already."""
        if self.open.get(connector) == session:
            return None
        opened = {c: s for c, s in self.open.items() if s != session}
        opened[connector] = session
        return Sessions(opened, self.closed)

    def end(self, session: str) -> Sessions:
        """``session`` ended: off its connector, and first among the closed."""
        opened = {c: s for c, s in self.open.items() if s != session}
        closed = (session, *(s for s in self.closed if s != session))[:CLOSED_KEPT]
        return Sessions(opened, closed)

    def record(self, station_id: str, ts: datetime) -> StationSessions:
        """The contract record of this state (``ocpp.sessions``)."""
        return StationSessions(
            station_id=station_id,
            open=[OpenSession(connector_id=c, session_id=s) for c, s in sorted(self.open.items())],
            closed=list(self.closed),
            ts=ts,
        )

    @classmethod
    def of_record(cls, record: StationSessions) -> Sessions:
        return cls({o.connector_id: o.session_id for o in record.open}, tuple(record.closed))


EMPTY = Sessions()


class SessionBook:
    """Every station's :class:`Sessions`, as this gateway knows them.

    Fed from ``ocpp.sessions`` (:meth:`apply`) for stations held elsewhere or before a
    restart, and by the handlers of the stations held here (:meth:`put`); the holder's own
    state wins over what the topic says about a station it holds (``held``), since it is
    newer than anything it reads back.
    """

    def __init__(self) -> None:
        self._stations: dict[str, Sessions] = {}

    def get(self, station_id: str) -> Sessions:
        return self._stations.get(station_id, EMPTY)

    def put(self, station_id: str, sessions: Sessions) -> None:
        self._stations[station_id] = sessions

    def apply(self, record: Record, held: Collection[str] = ()) -> None:
        """Fold one record of ``ocpp.sessions`` in (a bad one is skipped)."""
        station_id = record.key
        if station_id is None or station_id in held:
            return
        if record.value is None:
            self._stations.pop(station_id, None)
            return
        try:
            state = decode(StationSessions, record.value, topic=record.topic)
        except ContractError:
            return
        self._stations[station_id] = Sessions.of_record(state)
