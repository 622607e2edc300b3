"""OpenADR 2.0b over mutual TLS with signed messages, against a real openleadr VTN.

Certificates are made in the test (a throwaway CA, a VTN certificate for 127.0.0.1, a
VEN certificate); both sides check the other's certificate against the CA and the
message signatures against the fingerprint (last 10 bytes of the SHA-256).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from openleadr import OpenADRServer, utils

from dr_bridge.config import DEFAULT_SIMPLE_LEVELS, OpenADR2Settings
from dr_bridge.intake import Intake
from dr_bridge.openadr2 import OpenADR2Ven
from dr_bridge.publisher import Publisher
from dr_bridge.revisions import RevisionStore
from dr_bridge.zones import ZoneDirectory
from tests.dr_bridge.conftest import RecordingBus, add_stations
from tests.dr_bridge.oa2_vtn import free_port


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
    path.with_suffix(".key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def make_pki(d: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("test-ca"))
        .issuer_name(_name("test-ca"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    _write(d / "ca", ca_key, ca)
    for cn in ("vtn", "ven"):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        _write(d / cn, key, cert)


async def test_registration_and_event_over_mutual_tls(bus: RecordingBus, tmp_path: Path) -> None:
    make_pki(tmp_path)
    ven_fp = utils.certificate_fingerprint((tmp_path / "ven.crt").read_bytes())
    vtn_fp = utils.certificate_fingerprint((tmp_path / "vtn.crt").read_bytes())
    port = free_port()
    server = OpenADRServer(
        vtn_id="TlsVTN",
        cert=str(tmp_path / "vtn.crt"),
        key=str(tmp_path / "vtn.key"),
        http_cert=str(tmp_path / "vtn.crt"),
        http_key=str(tmp_path / "vtn.key"),
        http_ca_file=str(tmp_path / "ca.crt"),
        http_port=port,
        http_host="127.0.0.1",
        fingerprint_lookup=lambda ven_id: ven_fp,
        show_fingerprint=False,
        requested_poll_freq=dt.timedelta(hours=1),
    )

    async def on_create_party_registration(info: dict) -> tuple[str, str]:
        return "ven-tls", "reg-tls"

    opts: dict[str, str] = {}
    server.add_handler("on_create_party_registration", on_create_party_registration)
    await server.run_async()
    await add_stations(bus, ("cs-1", "zone-a"))
    store = RevisionStore(tmp_path / "data")
    zones = ZoneDirectory(bus)
    await zones.start()
    ven = OpenADR2Ven(
        OpenADR2Settings(
            vtn_url=f"https://127.0.0.1:{port}/OpenADR2/Simple/2.0b",
            ven_name="gridctl-tls",
            cert=str(tmp_path / "ven.crt"),
            key=str(tmp_path / "ven.key"),
            ca_file=str(tmp_path / "ca.crt"),
            vtn_fingerprint=vtn_fp,
        ),
        Intake(store, Publisher(bus, store)),
        zones,
        DEFAULT_SIMPLE_LEVELS,
    )
    try:
        await ven.start()
        assert ven.registered, "no registration over mutual TLS"
        start = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
        server.add_event(
            ven_id="ven-tls",
            signal_name="SIMPLE",
            signal_type="level",
            intervals=[
                {"dtstart": start, "duration": dt.timedelta(minutes=10), "signal_payload": 2}
            ],
            targets=[{"group_id": "zone-a"}],
            callback=lambda ven_id, event_id, opt_type: opts.update({event_id: opt_type}),
            event_id="ev-tls",
        )
        await ven.poll_now()
        assert [(s.zone_id, s.target_reduction_pct) for s in bus.published] == [("zone-a", 50.0)]
        assert opts == {"ev-tls": "optIn"}
    finally:
        await ven.stop()
        await zones.stop()
        await server.stop()
        store.close()
