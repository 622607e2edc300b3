"""Decide what ``up`` must do, from the files and the history alone (no I/O).

Rules (Flyway's, plus statement progress because RisingWave DDL is not transactional):

* ``V`` files run once, in version order. An applied ``V`` file whose checksum changed is
  refused (roll forward with a new version instead).
* A new ``V`` file whose version is below an applied one is refused (out of order): give
  it a version after the last applied.
* A ``V`` file that failed part-way may be corrected and resumed: the statements it already
  applied must be unchanged (their combined checksum is in the history); the run resumes at the
  failed statement, with the corrected text. Editing an already-applied statement is refused.
* ``R`` files run after all ``V`` files when new or changed. A changed ``R`` file is rebuilt
  with every object that reads its objects, transitively: those objects are dropped,
  dependents first, then the files defining them run again, dependencies first (name order
  between independent files). A failed ``R`` file with the same checksum resumes at the failed
  statement; changed, it is rebuilt from its first statement.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.migrate.deps import DbObject, Definition, creation_order, definitions, dependents
from pipeline.migrate.errors import ChecksumError, DependencyError, OrderError
from pipeline.migrate.files import REPEATABLE, VERSIONED, MigrationFile, checksum
from pipeline.migrate.history import HistoryRow

APPLY = "apply"  # never applied
RESUME = "resume"  # failed or interrupted: continue at the next statement
REBUILD = "rebuild"  # R file changed, or reads an object being rebuilt


def prefix_checksum(texts: list[str]) -> int:
    """Checksum of the statements applied so far (joined the same way on every run)."""
    return checksum("\n;\n".join(texts))


@dataclass
class Step:
    """Run ``file`` from statement ``start`` (0-based)."""

    file: MigrationFile
    action: str
    start: int
    reason: str
    prior: HistoryRow | None = None


@dataclass
class Plan:
    """What ``up`` will do: drops (dependents first), then steps in order."""

    drops: list[DbObject] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.drops and not self.steps


def v_state(f: MigrationFile, row: HistoryRow | None) -> tuple[str, int]:
    """(state, resume index) of a versioned file: pending, applied, resume, edited."""
    if row is None:
        return "pending", 0
    if row.complete:
        return ("applied", 0) if row.checksum == f.checksum else ("edited", 0)
    done = row.statements_done
    if row.checksum == f.checksum:
        return "resume", done
    texts = [s.text for s in f.statements[:done]]
    if len(texts) == done and prefix_checksum(texts) == row.prefix_checksum:
        return "resume", done
    return "edited", 0


def _definitions(files: list[MigrationFile]) -> dict[str, Definition]:
    return definitions((f.script, f.type, [s.text for s in f.statements]) for f in files)


def _file_order(chosen: list[MigrationFile], defs: dict[str, Definition]) -> list[MigrationFile]:
    """Files so that each runs after the files defining what it reads; else by name."""
    by_script = {f.script: f for f in chosen}
    needs: dict[str, set[str]] = {s: set() for s in by_script}
    for d in defs.values():
        if d.script not in by_script:
            continue
        for ref in d.references:
            other = defs.get(ref)
            if other and other.script in by_script and other.script != d.script:
                needs[d.script].add(other.script)
    order: list[MigrationFile] = []
    done: set[str] = set()
    while len(order) < len(by_script):
        ready = sorted(s for s in by_script if s not in done and needs[s] <= done)
        if not ready:
            cycle = sorted(s for s in by_script if s not in done)
            raise DependencyError(f"repeatable files read each other in a cycle: {cycle}")
        order.append(by_script[ready[0]])
        done.add(ready[0])
    return order


def out_of_order(files: list[MigrationFile], latest: dict[str, HistoryRow]) -> list[str]:
    """Messages for never-applied ``V`` files whose version is below an applied one."""
    applied = [f.version_key for f in files if f.type == VERSIONED and f.script in latest]
    applied += [
        tuple(int(p) for p in r.version.split("."))
        for r in latest.values()
        if r.type == VERSIONED and r.version
    ]
    if not applied:
        return []
    top = max(applied)
    return [
        f"{f.script}: version {f.version} is below the applied {'.'.join(map(str, top))}; "
        "give it a higher version"
        for f in files
        if f.type == VERSIONED and f.script not in latest and f.version_key < top
    ]


def make_plan(files: list[MigrationFile], latest: dict[str, HistoryRow]) -> Plan:
    """The steps ``up`` takes; :class:`ChecksumError` names every edited versioned file."""
    plan = Plan()
    if problems := out_of_order(files, latest):
        raise OrderError("; ".join(problems))
    edited: list[str] = []
    for f in files:
        if f.type != VERSIONED:
            continue
        row = latest.get(f.script)
        state, start = v_state(f, row)
        if state == "pending":
            plan.steps.append(Step(f, APPLY, 0, "new versioned migration"))
        elif state == "resume":
            reason = f"resume at statement {start + 1}"
            if row is not None and row.checksum != f.checksum:
                reason += " (corrected after the failure)"
            plan.steps.append(Step(f, RESUME, start, reason, row))
        elif state == "edited":
            edited.append(f.script)
    if edited:
        raise ChecksumError(
            "; ".join(
                f"{s}: applied versioned migration was edited (checksum differs); "
                "restore it and add a new V file instead"
                for s in edited
            ),
            edited,
        )

    repeatables = [f for f in files if f.type == REPEATABLE]
    defs = _definitions(files)
    changed: dict[str, str] = {}
    resumed: dict[str, Step] = {}
    for f in repeatables:
        row = latest.get(f.script)
        if row is None:
            continue
        if row.checksum != f.checksum:
            changed[f.script] = "changed"
        elif not row.complete and row.statements_done == 0:
            # Nothing of this attempt ran, but a rebuild may have dropped its objects already:
            # start over, dropping whatever is left.
            changed[f.script] = "interrupted before its first statement"
        elif not row.complete:
            resumed[f.script] = Step(
                f,
                RESUME,
                row.statements_done,
                f"resume at statement {row.statements_done + 1}",
                row,
            )

    # Close over dependents: a file re-runs whole, so all its objects go, and their readers.
    rerun = set(changed)
    dropped: dict[str, DbObject] = {}
    while True:
        names: set[str] = set()
        for script in rerun:
            row = latest.get(script)
            old = row.created_objects if row else []
            new = [d.obj for d in defs.values() if d.script == script]
            for obj in [*old, *new]:
                dropped[obj.name] = obj
                names.add(obj.name)
        readers = dependents(defs, names)
        grown = set(rerun)
        for name in readers:
            d = defs[name]
            if d.file_type == VERSIONED:
                raise DependencyError(
                    f"{d.script}: {d.obj.kind} {name} reads an object being rebuilt; "
                    "versioned objects cannot be rebuilt"
                )
            if latest.get(d.script) is not None:  # never-applied files just run
                grown.add(d.script)
                changed.setdefault(d.script, f"reads rebuilt {sorted(names & d.references)}")
        if grown == rerun:
            break
        rerun = grown

    order = creation_order(defs, [n for n in dropped if n in defs])
    order += sorted(n for n in dropped if n not in defs)  # objects no file defines any more
    plan.drops = [dropped[n] for n in reversed(order)]

    todo: list[MigrationFile] = []
    for f in repeatables:
        if f.script in rerun or f.script in resumed or latest.get(f.script) is None:
            todo.append(f)
    for f in _file_order(todo, defs):
        if f.script in rerun:
            plan.steps.append(Step(f, REBUILD, 0, changed[f.script], latest.get(f.script)))
        elif f.script in resumed:
            plan.steps.append(resumed[f.script])
        else:
            plan.steps.append(Step(f, APPLY, 0, "new repeatable migration"))
    return plan
