"""The ``gridctl_engine`` schema: catalog, clock and sink state of the embedded engine.

RisingWave keeps sources, sinks and their progress inside itself; on PostgreSQL the
compiler writes the same facts into plain tables so that the engine runtime
(``pipeline.engine``) can find them: which topic feeds which table and how (PLAIN append,
UPSERT with tombstones, a version column), which view each sink reads and how it is keyed,
and what each sink has emitted so far. Every statement is idempotent, so the runner may
execute :data:`BOOTSTRAP_SQL` before every migration run.
"""

from __future__ import annotations

SCHEMA = "gridctl_engine"

#: Origin of every window: tumbling windows in RisingWave are aligned to the Unix epoch in
#: UTC; 2000-01-01 is aligned to every minute, hour and day boundary just the same.
WINDOW_ORIGIN = "TIMESTAMPTZ '2000-01-01 00:00:00+00'"

BOOTSTRAP_SQL: list[str] = [
    f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
    # One row: the engine clock. NULL means wall-clock time (the transaction's now()), a
    # value means a virtual clock (replay, tests), so NOW() in views is reproducible.
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.clock (
    id BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    ts TIMESTAMPTZ
)""",
    f"INSERT INTO {SCHEMA}.clock (id, ts) VALUES (TRUE, NULL) ON CONFLICT (id) DO NOTHING",
    f"""CREATE OR REPLACE FUNCTION {SCHEMA}.now() RETURNS TIMESTAMPTZ
LANGUAGE sql STABLE AS $$
    SELECT COALESCE((SELECT ts FROM {SCHEMA}.clock WHERE id), pg_catalog.now())
$$""",
    # Tables fed from the bus.
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.sources (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    topic TEXT NOT NULL,
    format TEXT NOT NULL,
    primary_key TEXT[] NOT NULL DEFAULT '{{}}',
    version_column TEXT,
    key_column TEXT,
    watermark_column TEXT,
    watermark_delay INTERVAL,
    watermark_ts TIMESTAMPTZ,
    append_only BOOLEAN NOT NULL,
    columns JSONB NOT NULL
)""",
    # ON CONFLICT DO NOTHING tables: the first row per key wins (frozen values).
    f"ALTER TABLE {SCHEMA}.sources ADD COLUMN IF NOT EXISTS keep_first BOOLEAN "
    "NOT NULL DEFAULT FALSE",
    # Lowest watermark among the named sources that have one (EMIT ON WINDOW CLOSE): a
    # window is closed once the event time seen, minus the allowed lateness, passed its end.
    f"""CREATE OR REPLACE FUNCTION {SCHEMA}.watermark(VARIADIC names TEXT[])
RETURNS TIMESTAMPTZ LANGUAGE sql STABLE AS $$
    SELECT COALESCE(
        (SELECT min(watermark_ts) FROM {SCHEMA}.sources WHERE name = ANY(names)),
        (SELECT min(watermark_ts) FROM {SCHEMA}.sources)
    )
$$""",
    # Lower bound of TUMBLE/HOP scans: the engine sets gridctl.window_since to the
    # watermark up to which an EMIT ON WINDOW CLOSE view was already appended, so the scan
    # starts at the first window not closed then. Unset: all history.
    f"""CREATE OR REPLACE FUNCTION {SCHEMA}.window_since(size INTERVAL, src TEXT)
RETURNS TIMESTAMPTZ LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN COALESCE(current_setting('gridctl.window_since', TRUE), '') = ''
            THEN '-infinity'::TIMESTAMPTZ
        ELSE date_bin(size, current_setting('gridctl.window_since', TRUE)::TIMESTAMPTZ,
                      {WINDOW_ORIGIN})
    END
$$""",
    # Materialised views. kind 'eowc': an EMIT ON WINDOW CLOSE view, kept as an append-only
    # table of closed windows (name__closed) filled from name__open up to the watermark;
    # kind 'cached': an aggregating or joining view whose result the engine stores once
    # per tick (name__cache, filled from name__eval) so that the views above it read it
    # (through name__tick) instead of recomputing it. ``seq`` is creation order, which is
    # dependency order.
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.views (
    name TEXT PRIMARY KEY,
    seq BIGSERIAL,
    kind TEXT NOT NULL,
    sources TEXT[] NOT NULL DEFAULT '{{}}',
    emitted_until TIMESTAMPTZ
)""",
    # kind 'top1': a latest-row-per-key view refreshed incrementally (see compiler.top1).
    f"ALTER TABLE {SCHEMA}.views ADD COLUMN IF NOT EXISTS refresh_sql TEXT",
    f"ALTER TABLE {SCHEMA}.views ADD COLUMN IF NOT EXISTS last_seq BIGINT",
    # kind 'eowc': seconds between its windows' ends (the engine skips a tick in which
    # the watermark passed no window end: no window closed, nothing to append).
    f"ALTER TABLE {SCHEMA}.views ADD COLUMN IF NOT EXISTS window_step INTEGER",
    # Whether the engine's tick refreshes view ``name``'s cache (it refreshes what its
    # sinks read; a dashboard-only view is computed when read). Set by the tick that
    # fills the cache, in its transaction: a reader sees the last tick's result or the
    # live query, never an empty cache. The view reads the cache when it is maintained.
    f"ALTER TABLE {SCHEMA}.views ADD COLUMN IF NOT EXISTS maintained BOOLEAN NOT NULL "
    "DEFAULT false",
    f"""CREATE OR REPLACE FUNCTION {SCHEMA}.maintained(view_name TEXT)
RETURNS BOOLEAN LANGUAGE sql STABLE AS $$
    SELECT COALESCE((SELECT v.maintained FROM {SCHEMA}.views AS v WHERE v.name = view_name),
                    false)
$$""",
    # Whether view ``name`` reads its per-tick cache: only inside the engine's tick, after
    # the cache was refreshed (gridctl.cached lists those views); dashboards read live.
    f"""CREATE OR REPLACE FUNCTION {SCHEMA}.cached(name TEXT)
RETURNS BOOLEAN LANGUAGE sql STABLE AS $$
    SELECT position(',' || name || ',' IN
                    COALESCE(current_setting('gridctl.cached', TRUE), '')) > 0
$$""",
    # The query of a view as the engine's tick reads it (compiler.query.mark_relations):
    # each marked relation becomes its tick relation when it has one (a view's
    # name__tick: what this tick computed of it), else itself (a table). Resolved once,
    # when the view is created; its dependencies exist by then.
    f"""CREATE OR REPLACE FUNCTION {SCHEMA}.tick_sql(body TEXT, refs TEXT[])
RETURNS TEXT LANGUAGE plpgsql STABLE AS $$
DECLARE
    ref TEXT;
BEGIN
    FOREACH ref IN ARRAY refs LOOP
        body := replace(
            body,
            '"gridctl_ref"."' || replace(ref, '"', '""') || '"',  -- as sqlglot quotes it
            CASE WHEN to_regclass(format('{SCHEMA}.%I', ref || '__tick')) IS NOT NULL
                THEN format('{SCHEMA}.%I', ref || '__tick')
                ELSE format('%I', ref)
            END
        );
    END LOOP;
    RETURN body;
END
$$""",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.sinks (
    name TEXT PRIMARY KEY,
    view_name TEXT NOT NULL,
    topic TEXT NOT NULL,
    format TEXT NOT NULL,
    primary_key TEXT[] NOT NULL DEFAULT '{{}}'
)""",
    # What each sink has emitted: UPSERT sinks the last value per key, append-only sinks
    # the keys (or row digests) already sent.
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.sink_state (
    sink TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT,
    emitted_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (sink, key)
)""",
    # How far back each view reads each relation (compiler.query.Read): retention trims a
    # source or a closed-window table only below what every reader still needs.
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.reads (
    view TEXT NOT NULL,
    relation TEXT NOT NULL,
    col TEXT,
    seconds INTEGER,
    basis TEXT NOT NULL
)""",
    f"CREATE INDEX IF NOT EXISTS reads_by_view ON {SCHEMA}.reads (view)",
    # Records decided but not yet acknowledged by the bus (transactional outbox).
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.outbox (
    seq BIGSERIAL PRIMARY KEY,
    topic TEXT NOT NULL,
    key TEXT,
    value TEXT,
    ts TIMESTAMPTZ NOT NULL
)""",
    # Bus offsets ingested, written in the ingest transaction: exactly-once ingest.
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.offsets (
    topic TEXT NOT NULL,
    part INTEGER NOT NULL,
    next_offset BIGINT NOT NULL,
    PRIMARY KEY (topic, part)
)""",
]
