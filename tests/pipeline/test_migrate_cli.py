"""``gridctl migrate ...`` through typer's CliRunner: exit codes and messages."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cli.migrate_cmd import register
from tests.pipeline.test_migrate_helpers import compiler, copy_fixture

CASES = Path(__file__).parent / "lint_cases"


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    # The real pipeline.compiler when present; the stand-in only until it lands.
    monkeypatch.setattr("pipeline.migrate.engine.default_compiler", compiler)
    monkeypatch.delenv("GRIDCTL_DATABASE_URL", raising=False)
    monkeypatch.delenv("GRIDCTL_MIGRATIONS", raising=False)
    app = typer.Typer()
    register(app)
    return app


def run(app: typer.Typer, *args: str, **env: str):
    return CliRunner().invoke(app, ["migrate", *args], env=env or None)


def test_lint_exit_codes_and_findings(app: typer.Typer) -> None:
    bad = run(app, "lint", "--dir", str(CASES))
    assert bad.exit_code == 1
    assert "R__round_double.sql:10: statement 2: [round-double] ROUND(power_kw, 1)" in bad.output
    assert "R__host_literal.sql:10: statement 2: [host-literal]" in bad.output
    good = run(app, "lint", "--dir", str(Path(__file__).parent / "migrations_fixture"))
    assert good.exit_code == 0, good.output
    assert "no findings" in good.output


def test_database_url_is_required(app: typer.Typer, tmp_path: Path) -> None:
    result = run(app, "up", "--dir", str(copy_fixture(tmp_path)))
    assert result.exit_code == 2
    assert "--database-url" in result.output


def test_up_status_verify_plan(app: typer.Typer, postgres: str, tmp_path: Path) -> None:
    d = str(copy_fixture(tmp_path))
    plan = run(app, "plan", "--database-url", postgres, "--dir", d, "--var", "site_name=x")
    assert plan.exit_code == 0, plan.output
    assert "'x' AS name" in plan.output

    first = run(app, "up", "--dir", d, GRIDCTL_DATABASE_URL=postgres)
    assert first.exit_code == 0, first.output
    assert "applied V0001__tables.sql: apply (new versioned migration)" in first.output
    assert "postgres: 6 file(s) applied" in first.output
    again = run(app, "up", "--dir", d, "--database-url", postgres)
    assert again.exit_code == 0 and "postgres: up to date" in again.output

    status = run(app, "status", "--dir", d, "--database-url", postgres)
    assert status.exit_code == 0
    assert "R__20_zone_load.sql" in status.output and "applied" in status.output

    ok = run(app, "verify", "--dir", d, "--database-url", postgres)
    assert ok.exit_code == 0 and "match" in ok.output

    v1 = Path(d) / "V0001__tables.sql"
    v1.write_text(v1.read_text() + "\nCREATE TABLE late (x INT);\n")
    bad = run(app, "verify", "--dir", d, "--database-url", postgres)
    assert bad.exit_code == 1
    assert "V0001__tables.sql: checksum differs from the applied migration" in bad.output
    refused = run(app, "up", "--dir", d, "--database-url", postgres)
    assert refused.exit_code == 1
    assert "error: V0001__tables.sql: applied versioned migration was edited" in refused.output
    status = run(app, "status", "--dir", d, "--database-url", postgres)
    assert "changed" in status.output


def test_failures_name_file_statement_and_variable(
    app: typer.Typer, postgres: str, tmp_path: Path
) -> None:
    d = copy_fixture(tmp_path)
    (d / "V0003__bad.sql").write_text(
        "CREATE TABLE ok_table (n INT);\nCREATE INDEX i ON missing_table (n);\n"
    )
    failed = run(app, "up", "--dir", str(d), "--database-url", postgres)
    assert failed.exit_code == 1
    assert "V0003__bad.sql: statement 2 failed" in failed.output
    assert 'relation "missing_table" does not exist' in failed.output
    status = run(app, "status", "--dir", str(d), "--database-url", postgres)
    assert "failed at statement 2" in status.output

    (d / "V0003__bad.sql").unlink()
    (d / "R__30_limit.sql").write_text(
        "CREATE MATERIALIZED VIEW lim AS SELECT ${limit_kw} AS kw;\n"
    )
    missing = run(app, "plan", "--dir", str(d), "--database-url", postgres)
    assert missing.exit_code == 1
    assert "R__30_limit.sql:1: variable ${limit_kw} has no value" in missing.output

    usage = run(app, "up", "--dir", str(d), "--database-url", postgres, "--var", "novalue")
    assert usage.exit_code == 2
    assert "expected name=value" in usage.output
