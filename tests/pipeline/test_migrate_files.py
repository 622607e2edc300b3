"""Pure parts of the migration runner: naming, splitting, substitution, checksum."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.migrate import NamingError, VariableError
from pipeline.migrate.files import (
    checksum,
    discover,
    load_vars,
    parse_name,
    split_statements,
    substitute,
)


def test_split_respects_quotes_comments_and_dollar_quoting() -> None:
    text = (
        "-- leading; comment\n"
        "SELECT ';' AS a;\n"
        "SELECT $$ ; $$, $fn$ ;$$; $fn$;\n"
        "/* outer ; /* nested ; */ still ; */\n"
        'SELECT "odd;name" FROM t;\n'
        "SELECT E'it\\'s; fine', 'it''s; fine';\n"
        "SELECT 1 -- trailing; comment\n"
    )
    stmts = split_statements(text)
    assert [s.text for s in stmts] == [
        "SELECT ';' AS a",
        "SELECT $$ ; $$, $fn$ ;$$; $fn$",
        'SELECT "odd;name" FROM t',
        "SELECT E'it\\'s; fine', 'it''s; fine'",
        "SELECT 1 -- trailing; comment",
    ]
    assert [s.number for s in stmts] == [1, 2, 3, 4, 5]
    assert [s.line for s in stmts] == [2, 3, 5, 6, 7]


def test_comment_only_pieces_are_not_statements() -> None:
    assert split_statements("-- nothing\n;\n/* here */;\n\n") == []


def test_checksum_ignores_line_endings_and_bom() -> None:
    lf = "CREATE TABLE a (x INT);\nSELECT 1;\n"
    assert checksum(lf) == checksum("\ufeff" + lf.replace("\n", "\r\n"))
    assert checksum(lf) != checksum(lf.replace("INT", "BIGINT"))


def test_flyway_names() -> None:
    assert parse_name("V0001__meter_sources.sql") == ("V", "0001", "meter sources")
    assert parse_name("V1_2__x.sql") == ("V", "1.2", "x")
    assert parse_name("R__10_zone_load.sql") == ("R", None, "10 zone load")
    for bad in ("V1_x.sql", "R_x.sql", "v1__x.sql", "zone.sql"):
        with pytest.raises(NamingError, match=re.escape(bad)):
            parse_name(bad)


def test_discover_orders_versions_numerically_then_repeatables(tmp_path: Path) -> None:
    for name in ("R__b.sql", "V10__ten.sql", "V2__two.sql", "R__a.sql"):
        (tmp_path / name).write_text("SELECT 1;\n")
    (tmp_path / "vars.defaults").write_text("a=b\n")
    assert [f.script for f in discover(tmp_path)] == [
        "V2__two.sql",
        "V10__ten.sql",
        "R__a.sql",
        "R__b.sql",
    ]
    (tmp_path / "notes.sql").write_text("SELECT 1;")
    with pytest.raises(NamingError, match=re.escape("notes.sql")):
        discover(tmp_path)


def test_substitution_and_missing_var_names_file_line_and_var(tmp_path: Path) -> None:
    (tmp_path / "vars.defaults").write_text("# comment\nprefix = dev.\nstep=0.5\n")
    values = load_vars(tmp_path, {"step": "1"})
    assert values == {"prefix": "dev.", "step": "1"}
    stmt = split_statements("\n\nSELECT '${prefix}t',\n ${step}, ${nope}")[0]
    with pytest.raises(VariableError) as info:
        substitute(stmt, values, "R__x.sql")
    assert str(info.value) == "R__x.sql:4: variable ${nope} has no value (pass --var nope=...)"
    assert substitute(stmt, {**values, "nope": "2"}, "R__x.sql") == "SELECT 'dev.t',\n 1, 2"


_PIECES = st.sampled_from(
    [
        "SELECT",
        "x",
        "1",
        "'a;b'",
        "'it''s;'",
        '"odd;name"',
        "$$ ; $$",
        "$fn$ ;$$; $fn$",
        "/* c; */",
        "/* a /* nested; */ b */",
        "-- note; here\n",
        "\n",
        "E'\\';'",
    ]
)
_STATEMENT = st.lists(_PIECES, min_size=1, max_size=8).map(lambda p: "SELECT " + " ".join(p) + " x")


@given(st.lists(_STATEMENT, min_size=1, max_size=6), st.sampled_from(["\n", "\r\n"]))
def test_split_round_trips_joined_statements(stmts: list[str], newline: str) -> None:
    stmts = [s.rstrip() for s in stmts]
    text = (";" + newline).join(stmts) + ";" + newline
    assert [s.text for s in split_statements(text)] == stmts
