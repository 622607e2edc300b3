"""The CLI for scripts and habits: durations, config file precedence, --version,
completion, refused --var names and flag combinations, file errors naming the file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli.durations import parse_duration

ROOT = Path(__file__).resolve().parents[2]


def gridctl(
    *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("GRIDCTL_")}
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=cwd, capture_output=True, text=True, timeout=120, check=False,
        env={**base, "PYTHONPATH": str(ROOT), **(env or {})},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("5m", 300), ("1h", 3600), ("1h30m", 5400), ("500ms", 0.5), ("2.5", 2.5)],
)
def test_one_duration_syntax(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5x", "m5", "1h-5m", "five"])
def test_bad_durations_say_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match=r"e\.g\. 90s, 5m, 1h"):
        parse_duration(text)


def test_version() -> None:
    result = gridctl("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("gridctl ") and result.stdout.split()[1][0].isdigit()


def test_completion_completes_the_options_of_a_command() -> None:
    """The installed ``gridctl`` script, as the shell calls it to complete a word."""
    script = Path(sys.executable).parent / "gridctl"
    env = {"_GRIDCTL_COMPLETE": "complete_bash", "COMP_WORDS": "gridctl status --js",
           "COMP_CWORD": "2"}  # fmt: skip
    result = subprocess.run(
        [str(script)], capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, **env},
    )  # fmt: skip
    assert result.stdout.split() == ["--json"]
    env["COMP_WORDS"], env["COMP_CWORD"] = "gridctl st", "1"
    result = subprocess.run(
        [str(script)], capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, **env},
    )  # fmt: skip
    assert result.stdout.split() == ["stations", "status"]


def test_config_file_sits_below_env_and_flags(tmp_path: Path) -> None:
    (tmp_path / "gridctl.toml").write_text('data_dir = "from-file"\n')
    # file only
    assert "--data-dir from-file;" in gridctl("status", cwd=tmp_path).stderr
    # env beats file
    env = {"GRIDCTL_DATA_DIR": "from-env"}
    assert "--data-dir from-env;" in gridctl("status", cwd=tmp_path, env=env).stderr
    # flag beats env
    flagged = gridctl("status", "--data-dir", "from-flag", cwd=tmp_path, env=env)
    assert "--data-dir from-flag;" in flagged.stderr
    # --config names another file; a table applies to its command
    other = tmp_path / "other.toml"
    other.write_text('[status]\ndata_dir = "from-table"\n')
    assert "--data-dir from-table;" in gridctl("--config", str(other), "status").stderr


def test_config_file_errors_name_the_file_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[status]\nnosuch = 1\n")
    result = gridctl("--config", str(bad), "status")
    assert result.returncode == 2
    assert f"{bad}: [status] nosuch" in result.stderr and "--nosuch" in result.stderr
    broken = tmp_path / "broken.toml"
    broken.write_text("data_dir = \n")
    result = gridctl("--config", str(broken), "status")
    assert result.returncode == 2 and str(broken) in result.stderr
    missing = gridctl("--config", str(tmp_path / "none.toml"), "status")
    assert missing.returncode == 2 and "none.toml: no such config file" in missing.stderr


def test_unknown_var_is_refused_listing_the_known_ones(tmp_path: Path) -> None:
    result = gridctl("run", "--data-dir", str(tmp_path), "--var", "nosuch=1")
    assert result.returncode == 2
    assert "unknown variable 'nosuch'" in result.stderr
    assert "freshness_seconds" in result.stderr and "kafka_bootstrap" in result.stderr
    assert not (tmp_path / "postgres").exists()  # refused before anything started
    lint = gridctl("migrate", "lint", "--var", "freshnes_seconds=60")
    assert lint.returncode == 2 and "unknown variable 'freshnes_seconds'" in lint.stderr


def test_risingwave_engine_needs_kafka() -> None:
    result = gridctl("run", "--engine", "risingwave", "--database-url", "postgresql://x/y")
    assert result.returncode == 2
    assert "--bus kafka" in result.stderr


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    cert = gridctl("run", "--tls-cert", "/nope.pem", "--tls-key", "/nope.key")
    assert cert.returncode == 2 and "/nope.pem" in cert.stderr
    missing = gridctl("replay", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "o"))
    assert missing.returncode == 2
    assert f"{tmp_path / 'none.jsonl'}: No such file or directory" in missing.stderr
    assert "Traceback" not in missing.stderr
    folder = gridctl("replay", str(tmp_path), "--out", str(tmp_path / "o"))
    assert folder.returncode == 2 and "Is a directory" in folder.stderr
    assert "Traceback" not in folder.stderr


def test_durations_are_checked_where_they_are_typed() -> None:
    zero = gridctl("simulate", "--summary-every", "0")
    assert zero.returncode == 2 and "--summary-every" in zero.stderr
    tick = gridctl("run", "--tick", "fast")
    assert tick.returncode == 2 and "--tick" in tick.stderr and "e.g. 90s" in tick.stderr


def test_simulate_fails_when_every_charger_is_refused(tmp_path: Path) -> None:
    """A real gateway with no stations imported: every charger gets 401 or 404."""
    from pipeline.embedded_pg import free_port

    port = free_port()
    gateway = subprocess.Popen(
        [sys.executable, "-c", _GATEWAY.format(port=port)], cwd=ROOT,
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert gateway.stdout is not None and gateway.stdout.readline().strip() == "ready"
        result = gridctl(
            "simulate", "--url", f"ws://127.0.0.1:{port}/ocpp", "--chargers", "2",
            "--duration", "3s", "--summary-every", "1s",
        )  # fmt: skip
    finally:
        gateway.terminate()
        gateway.wait(timeout=30)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "no charger was accepted" in result.stderr
    assert "gridctl stations import" in result.stderr


_GATEWAY = """
import asyncio
from ocpp_gateway import Gateway, GatewayConfig
from pipeline.bus import LocalBus

async def main():
    bus = LocalBus()
    await bus.start()
    gw = Gateway(bus, GatewayConfig(host="127.0.0.1", port={port}))
    await gw.start()
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""
