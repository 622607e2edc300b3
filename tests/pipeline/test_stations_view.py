"""``station_overview`` (migrations/R__50_stations.sql) from ``ocpp.station_status``.

Status events as the gateway publishes them (the contract's model, encoded), through the
real embedded engine: connection state from each station's latest event, connector
statuses from the latest StatusNotification per connector, the active limit and the last
command's result; and the NOC queries ``stations`` and ``station_counts`` over it.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from cli.query_cmd import run_query
from pipeline import topics
from pipeline.contracts import StationStatus, encode
from tests.pipeline.golden.harness import T0, Harness

pytestmark = pytest.mark.timeout(120)


async def _status(h: Harness, station: str, event: str, t: float, **fields: object) -> None:
    """A status event as the gateway sends it (every event carries the OCPP version)."""
    record = StationStatus(
        station_id=station,
        event=event,  # type: ignore[arg-type]
        ts=T0 + timedelta(seconds=t),
        ocpp_version=fields.pop("ocpp_version", "1.6"),  # type: ignore[arg-type]
        **fields,  # type: ignore[arg-type]
    )
    await h.bus.publish(topics.STATION_STATUS, station, encode(record))


async def test_connection_connectors_limit_and_last_command(postgres: str) -> None:
    async with Harness(postgres) as h:
        await h.station("A", "Z1", max_kw=22.0, contract_kw=11.0)
        await h.station("B", "Z1")
        await h.station("C", "Z2")
        # A: connected on 1.6, two connectors; connector 1 changed twice (latest wins).
        await _status(h, "A", "Connected", -60, ocpp_version="1.6")
        await _status(h, "A", "BootNotification", -59, ocpp_version="1.6", status="Accepted")
        await _status(h, "A", "StatusNotification", -58, connector_id=1, status="Available")
        await _status(h, "A", "StatusNotification", -57, connector_id=2, status="Available")
        await _status(h, "A", "StatusNotification", -30, connector_id=1, status="Charging")
        # B: was connected on 2.0.1, then went away.
        await _status(h, "B", "Connected", -50, ocpp_version="2.0.1")
        await _status(h, "B", "Disconnected", -20, ocpp_version="2.0.1")
        # C: never connected.
        await h.sample("A", 1, 8.0, -5)
        await h.signal("sig", "Z1", start=0, end=600, zone_limit_kw=5.0)
        await h.result("A", "sig", "Accepted", 1)
        await h.tick(2)

        rows = h.query(
            "SELECT station_id, zone_id, connection, last_seen, ocpp_version, connectors, "
            "max_kw, limit_kw, limit_signal_id, last_command, last_result "
            "FROM station_overview ORDER BY station_id"
        )
        a, b, c = rows
        # A's limit under control law v2 (CURTAIL, zone limit 5 kW): A charges, so its
        # floor is its minimum, 6 A x 3 x 230 V = 4.14 -> 4.2 kW; B has no fresh sample
        # (offline), so it is held at its minimum too (a session may start on it): floors
        # 8.4 kW > 5 kW, the signal is infeasible by 3.4 kW and both stay at 4.2 kW. Under
        # SHED B would pause (0) and A get the whole 5 kW, as D pauses in
        # test_golden_control_law (capacity freed by a pause and a ceiling).
        # Last seen: its meter sample at -5 s is newer than its last status event (-30 s).
        assert a == (
            "A", "Z1", "online", T0 - timedelta(seconds=5), "1.6", "1:Charging 2:Available",
            11.0, 4.2, "sig", "SetChargingProfile", "Accepted",
        )  # fmt: skip
        assert b[:6] == ("B", "Z1", "offline", T0 - timedelta(seconds=20), "2.0.1", None)
        assert b[7] == 4.2
        assert h.query("SELECT state, shortfall_kw FROM dr_signal_states") == [("infeasible", 3.4)]
        assert b[9:] == (None, None)
        assert c[:5] == ("C", "Z2", "never seen", None, None)

        columns, counts = run_query(postgres, "station_counts")
        assert columns == ["zone_id", "stations", "online", "offline"]
        assert counts == [("Z1", 2, 1, 1), ("Z2", 1, 0, 1)]
        columns, listed = run_query(postgres, "stations")
        assert [r[:3] for r in listed] == [
            ("A", "Z1", "online"),
            ("B", "Z1", "offline"),
            ("C", "Z2", "never seen"),
        ]

        # A reconnects after a disconnect: online again; its connectors keep their status.
        await _status(h, "A", "Disconnected", 10, ocpp_version="1.6")
        await h.tick(11)
        assert h.query("SELECT connection FROM station_overview WHERE station_id = 'A'") == [
            ("offline",)
        ]
        await _status(h, "A", "Connected", 20, ocpp_version="1.6")
        await h.tick(21)
        assert h.query(
            "SELECT connection, connectors FROM station_overview WHERE station_id = 'A'"
        ) == [("online", "1:Charging 2:Available")]


async def test_each_connector_of_a_201_evse(postgres: str) -> None:
    async with Harness(postgres) as h:
        await h.station("D", "Z1")
        await _status(h, "D", "Connected", -60, ocpp_version="2.0.1")
        # EVSE 1 has two connectors: a vehicle on 1, then 2 reports Available (it does not
        # overwrite 1); EVSE 2 has one. A record from before V0013 (no connector within the
        # EVSE) was EVSE 2's connector 1, and the newer one replaces it.
        await _status(h, "D", "StatusNotification", -50, connector_id=2, status="Occupied",
                      ocpp_version="2.0.1")  # fmt: skip
        await _status(h, "D", "StatusNotification", -40, connector_id=1, evse_connector_id=1,
                      status="Occupied", ocpp_version="2.0.1")  # fmt: skip
        await _status(h, "D", "StatusNotification", -30, connector_id=1, evse_connector_id=2,
                      status="Available", ocpp_version="2.0.1")  # fmt: skip
        await _status(h, "D", "StatusNotification", -20, connector_id=2, evse_connector_id=1,
                      status="Available", ocpp_version="2.0.1")  # fmt: skip
        await h.tick(1)
        assert h.query("SELECT connectors FROM station_overview WHERE station_id = 'D'") == [
            ("1/1:Occupied 1/2:Available 2/1:Available",)
        ]
