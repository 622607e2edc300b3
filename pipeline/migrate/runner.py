"""``Migrator``: up, plan, status and verify against one database.

``up`` works in three phases so a bad migration changes nothing: plan (files vs history),
validate everything it will run (variables, sqlglot parse, compilation for PostgreSQL), then
execute one statement at a time, recording progress after each. On PostgreSQL a statement and
its progress record commit together; on RisingWave (no transactional DDL) the progress is
written right after the statement, so a failure resumes at the failed statement.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import psycopg

from pipeline.migrate.deps import DbObject, analyze
from pipeline.migrate.engine import (
    POSTGRES,
    RISINGWAVE,
    CompileError,
    Compiler,
    Target,
    connect,
    detect,
    target_for,
)
from pipeline.migrate.errors import ChecksumError, MigrateError, StatementError, ValidationError
from pipeline.migrate.files import (
    VERSIONED,
    MigrationFile,
    discover,
    load_vars,
    salted,
    substitute,
)
from pipeline.migrate.history import History, HistoryRow, encode_objects
from pipeline.migrate.lint_state import REFUSED, StateRules
from pipeline.migrate.planner import (
    REBUILD,
    RESUME,
    Plan,
    Step,
    make_plan,
    out_of_order,
    prefix_checksum,
    v_state,
)
from pipeline.migrate.sinks import SinkFacts, describe, reconcile, sink_facts
from pipeline.migrate.sqltext import SqlParseError, parse

log = logging.getLogger("gridctl.migrate")

P = ParamSpec("P")
R = TypeVar("R")


def _database_errors(method: Callable[P, R]) -> Callable[P, R]:
    """Translate stray psycopg errors (connection lost, history writes) at the API edge."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except psycopg.Error as exc:
            raise MigrateError(f"database error: {_server_message(exc)}") from exc

    return wrapper


#: pg_advisory_lock key held by ``up`` on PostgreSQL ("gridctl" in ASCII, as an int)
ADVISORY_LOCK_KEY = int.from_bytes(b"gridctl", "big")


@dataclass
class PreparedStatement:
    """A statement ready to run: number (1-based), first line, and the SQL to execute."""

    number: int
    first_line: str
    sql: list[str]


@dataclass
class PreparedStep:
    step: Step
    statements: list[PreparedStatement]


@dataclass
class FileStatus:
    """One line of ``status``."""

    script: str
    type: str
    version: str | None
    description: str
    state: str
    installed_on: str | None


class Migrator:
    """Apply ``directory`` to the database at ``dsn``.

    ``vars`` overrides ``vars.defaults``; ``compiler`` replaces ``pipeline.compiler`` for
    PostgreSQL targets (tests, other engines).
    """

    def __init__(
        self,
        dsn: str,
        directory: str | Path = "migrations",
        vars: Mapping[str, str] | None = None,
        *,
        compiler: Compiler | None = None,
    ):
        self.dsn = dsn
        self.directory = Path(directory)
        self.vars = load_vars(self.directory, vars)
        self.compiler = compiler
        self.engine: str | None = None

    # -- phases ------------------------------------------------------------------------------

    def _open(self) -> tuple[psycopg.Connection[Any], History, Target]:
        conn = connect(self.dsn)
        try:
            self.engine = detect(conn)
            target = target_for(self.engine, self.compiler)
        except BaseException:
            conn.close()
            raise
        return conn, History(conn, self.engine), target

    def _prepare(self, plan: Plan, target: Target) -> tuple[list[list[str]], list[PreparedStep]]:
        """Substitute, parse and translate everything the plan runs; raise before any change."""
        drops = [target.drop(o.kind, o.name) for o in plan.drops]
        prepared: list[PreparedStep] = []
        for step in plan.steps:
            statements = []
            for stmt in step.file.statements[step.start :]:
                text = substitute(stmt, self.vars, step.file.script)
                where = f"{step.file.script}: statement {stmt.number} ({stmt.first_line!r})"
                try:
                    parse(text)
                except SqlParseError as exc:
                    raise ValidationError(f"{where} does not parse: {exc}") from exc
                try:
                    sql = target.translate(text)
                except CompileError as exc:
                    raise ValidationError(f"{where} does not compile: {exc}") from exc
                statements.append(PreparedStatement(stmt.number, stmt.first_line, sql))
            prepared.append(PreparedStep(step, statements))
        return drops, prepared

    def _plan(self, history: History, target: Target) -> tuple[list[MigrationFile], Plan]:
        files = salted(discover(self.directory), target.checksum_salt)
        self._refuse(files)
        return files, make_plan(files, history.latest())

    def _refuse(self, files: list[MigrationFile]) -> None:
        """Statements RisingWave would reject although each parses on its own (a PLAIN sink
        over a view that updates): refused on both engines before anything changes, so the
        embedded engine does not accept a pipeline production cannot run."""
        state = StateRules()
        for f in files:
            for stmt in f.statements:
                text = substitute(stmt, self.vars, f.script)
                problems: list[tuple[str, str]] = []
                state.check(text, lambda rule, msg, out=problems: out.append((rule, msg)))
                state.learn(text)
                refused = [msg for rule, msg in problems if rule == REFUSED]
                if refused:
                    where = f"{f.script}: statement {stmt.number} ({stmt.first_line!r})"
                    raise ValidationError(f"{where}: [{REFUSED}] {refused[0]}")

    # -- public API --------------------------------------------------------------------------

    @_database_errors
    def plan(self) -> str:
        """The SQL ``up`` would run, after substitution and (PostgreSQL) compilation."""
        conn, history, target = self._open()
        with conn:
            _, plan = self._plan(history, target)
            drops, prepared = self._prepare(plan, target)
        lines = [f"-- engine: {target.engine}"]
        if plan.empty:
            lines.append("-- nothing to do")
        for obj, sqls in zip(plan.drops, drops, strict=True):
            lines.append(f"-- drop {obj.kind} {obj.name} (rebuilt below)")
            lines += [f"{s};" for s in sqls]
        for p in prepared:
            s = p.step
            lines.append(f"-- {s.file.script}: {s.action} ({s.reason})")
            for st in p.statements:
                lines.append(f"-- statement {st.number}")
                lines += [f"{sql};" for sql in st.sql]
        effects = [describe(f, target.engine) for f in self._sinks(plan)]
        if effects:
            lines.append("-- what this does to the sinks' topics:")
            lines += [f"--   {e}" for e in effects]
        return "\n".join(lines) + "\n"

    def _sinks(self, plan: Plan) -> list[SinkFacts]:
        """The sinks ``up`` creates (new or rebuilt), in order."""
        out = []
        for step in plan.steps:
            for stmt in step.file.statements[step.start :]:
                facts = sink_facts(substitute(stmt, self.vars, step.file.script))
                if facts is not None:
                    out.append(facts)
        return out

    def _reconcile(self, conn: psycopg.Connection[Any], plan: Plan) -> list[str]:
        """After (re)creating UPSERT sinks on RisingWave: tombstone the keys their topics
        hold and their views do not (see :mod:`pipeline.migrate.sinks`). A failure is
        reported, never silent: the topic may hold stale limits until the next rebuild."""
        lines = []
        for facts in self._sinks(plan):
            if not facts.upsert:
                continue
            bootstrap = self.vars.get("reconcile_bootstrap") or facts.bootstrap or ""
            try:
                gone = reconcile(conn, facts, bootstrap)
            except Exception as exc:  # Kafka unreachable from here: say so, loudly
                log.error("reconcile of sink %s failed: %s", facts.name, exc)
                lines.append(
                    f"{facts.name}: RECONCILE FAILED ({exc}); keys that vanished while the "
                    "sink was gone may keep stale values on "
                    f"{facts.topic}"
                )
                continue
            lines.append(f"{facts.name}: reconciled, {len(gone)} tombstone(s) on {facts.topic}")
        return lines

    @_database_errors
    def up(self) -> list[str]:
        """Apply what is pending; return one line per file applied (empty: nothing to do)."""
        conn, history, target = self._open()
        with conn:
            if self.engine == POSTGRES:
                # Two processes starting at once (gridctl run, replay) apply one after the other;
                # the lock goes with the session. RisingWave has no advisory locks.
                conn.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
            _, plan = self._plan(history, target)
            drops, prepared = self._prepare(plan, target)
            # The compiler's runtime objects are idempotent and may be newer than the
            # migrations (a gridctl upgrade), so they are brought up to date on every run.
            for sql in target.bootstrap():
                conn.execute(sql)
            if plan.empty:
                return []
            history.ensure()
            done: list[str] = []
            rows: dict[str, HistoryRow] = {}
            for p in prepared:  # mark every rebuild as under way before dropping anything
                if p.step.action == REBUILD:
                    rows[p.step.file.script] = self._new_row(history, p.step)
            for obj, sqls in zip(plan.drops, drops, strict=True):
                self._drop(conn, obj, sqls)
            for p in prepared:
                row = rows.get(p.step.file.script)
                if row is None:
                    row = p.step.prior if p.step.action == RESUME else None
                if row is None:
                    row = self._new_row(history, p.step)
                self._run_step(conn, history, p, row)
                done.append(f"{p.step.file.script}: {p.step.action} ({p.step.reason})")
            if self.engine == RISINGWAVE:
                done += self._reconcile(conn, plan)
            return done

    @_database_errors
    def status(self) -> list[FileStatus]:
        """Every file with its state: applied, pending, changed, failed at statement n."""
        conn = connect(self.dsn)
        with conn:
            self.engine = detect(conn)
            latest = History(conn, self.engine).latest()
        files = salted(
            discover(self.directory), target_for(self.engine, self.compiler).checksum_salt
        )
        try:
            # An unchanged R file that reads a changed one is rebuilt too: say so.
            outdated = {
                s.file.script: s.reason
                for s in make_plan(files, latest).steps
                if s.action == REBUILD
            }
        except MigrateError:
            outdated = {}  # edited V files: their own state says it
        out: list[FileStatus] = []
        for f in files:
            row = latest.get(f.script)
            on = None
            if row and row.installed_on:
                on = row.installed_on.isoformat(timespec="seconds")
            state = _state(f, row)
            if state == "applied" and f.script in outdated:
                state = f"outdated: {outdated[f.script]}"
            out.append(FileStatus(f.script, f.type, f.version, f.description, state, on))
        known = {f.script for f in files}
        for script, row in latest.items():
            if script not in known:
                out.append(
                    FileStatus(script, row.type, row.version, row.description, "missing", None)
                )
        return out

    @_database_errors
    def verify(self) -> list[str]:
        """Mismatches between the history and the files, one message each (empty: all good)."""
        conn = connect(self.dsn)
        with conn:
            latest = History(conn, detect(conn)).latest()
        problems = out_of_order(discover(self.directory), latest)
        for st in self.status():
            if st.state in ("applied", "pending") or st.state.startswith("outdated"):
                continue
            if st.state == "missing":
                problems.append(f"{st.script}: applied but the file is missing")
            elif st.state == "changed" and st.type == VERSIONED:
                problems.append(f"{st.script}: checksum differs from the applied migration")
            elif st.state == "changed":
                problems.append(f"{st.script}: changed since applied (up rebuilds it)")
            else:
                problems.append(f"{st.script}: {st.state}")
        return problems

    # -- execution ---------------------------------------------------------------------------

    def _drop(self, conn: psycopg.Connection[Any], obj: DbObject, sqls: list[str]) -> None:
        # RisingWave gets DROP ... IF EXISTS and no transaction block (its DDL is not
        # transactional); on PostgreSQL each drop is its own transaction.
        for sql in sqls:
            try:
                if self.engine == POSTGRES:
                    with conn.transaction():
                        conn.execute(sql)
                else:
                    conn.execute(sql)
            except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedObject):
                continue  # already gone (a rebuild that failed half-way)
            except psycopg.Error as exc:
                raise MigrateError(f"dropping {obj.kind} {obj.name} failed: {exc}") from exc

    def _new_row(self, history: History, step: Step) -> HistoryRow:
        """Record a new attempt before anything of it runs.

        For a rebuild the row lists the objects of the previous version as well, so if the
        run dies after the drops, the next ``up`` still knows what to drop and re-creates the
        file from its first statement, whatever its checksum by then.
        """
        f = step.file
        objects = [o for s in f.statements for o in analyze(s.text).created]
        if step.prior is not None:
            objects = list(dict.fromkeys([*step.prior.created_objects, *objects]))
        return history.start(
            HistoryRow(
                installed_rank=0,
                version=f.version,
                description=f.description,
                type=f.type,
                script=f.script,
                checksum=f.checksum,
                statements_done=0,
                statements_total=len(f.statements),
                prefix_checksum=prefix_checksum([]),
                objects=encode_objects(objects),
                installed_on=None,
                execution_time=0,
                success=False,
            )
        )

    def _run_step(
        self, conn: psycopg.Connection[Any], history: History, p: PreparedStep, row: HistoryRow
    ) -> None:
        f = p.step.file
        texts = [s.text for s in f.statements]
        objects = [o for t in texts for o in analyze(t).created]
        row.checksum, row.statements_total = f.checksum, len(texts)
        row.objects, row.error = encode_objects(objects), None
        began = time.monotonic()
        transactional = self.engine == POSTGRES
        for st in p.statements:
            row.statements_done = st.number
            row.prefix_checksum = prefix_checksum(texts[: st.number])
            try:
                if transactional:
                    with conn.transaction():
                        for sql in st.sql:
                            conn.execute(sql)
                        history.save(row)
                else:
                    for sql in st.sql:
                        conn.execute(sql)
                    history.save(row)
            except psycopg.Error as exc:
                row.statements_done = st.number - 1
                row.prefix_checksum = prefix_checksum(texts[: st.number - 1])
                row.error = _server_message(exc)
                row.execution_time = int((time.monotonic() - began) * 1000)
                history.save(row)
                raise StatementError(f.script, st.number, st.first_line, row.error) from exc
        row.success = True
        row.execution_time = int((time.monotonic() - began) * 1000)
        history.save(row)


def _server_message(exc: psycopg.Error) -> str:
    diag = getattr(exc, "diag", None)
    primary = diag.message_primary if diag is not None else None
    return primary or str(exc).strip().splitlines()[0]


def _state(f: MigrationFile, row: HistoryRow | None) -> str:
    if row is None:
        return "pending"
    if not row.complete:
        failed = f"failed at statement {row.statements_done + 1}"
        if row.checksum != f.checksum:
            if f.type == VERSIONED and v_state(f, row)[0] == "edited":
                return f"{failed}, edited before it (refused)"
            return f"{failed}, file changed since"
        return failed if row.error else f"interrupted at statement {row.statements_done + 1}"
    return "applied" if row.checksum == f.checksum else "changed"


def apply(
    dsn: str,
    directory: str | Path = "migrations",
    vars: Mapping[str, str] | None = None,
    *,
    compiler: Compiler | None = None,
) -> str:
    """Bring the database at ``dsn`` up to date with ``directory``; return the engine detected.

    What ``gridctl run``, replay and tests call. Raises :class:`MigrateError` subclasses.
    """
    m = Migrator(dsn, directory, vars, compiler=compiler)
    m.up()
    assert m.engine is not None
    return m.engine


__all__ = ["ChecksumError", "FileStatus", "Migrator", "apply"]
