-- Runs triggered by other jobs' runs (`after:`, `after_all:`): a new trigger, `after`, the upstream
-- run(s) each such run names, and a run's opt-out of triggering (`jobsctl run --no-trigger`).
-- SQLite cannot widen a CHECK in place, so `runs` is rebuilt; legacy_alter_table keeps the rename
-- from rewriting the references other tables (cancel_requests) hold to `runs`.
PRAGMA legacy_alter_table = ON;
ALTER TABLE runs RENAME TO runs_before_after;
CREATE TABLE runs (
    job_id      TEXT NOT NULL REFERENCES jobs (id),
    seq         INTEGER NOT NULL,
    trigger     TEXT NOT NULL CHECK (trigger IN ('schedule', 'catchup', 'manual', 'replay', 'after')),
    -- the nominal slot of a scheduled run; NULL for manual and triggered runs
    slot        INTEGER,
    -- the slot plus its jitter: when the run was meant to start
    due_at      INTEGER,
    claimed_at  INTEGER NOT NULL,
    started_at  INTEGER,
    finished_at INTEGER,
    status      TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'timed_out',
                                                'cancelled', 'interrupted', 'skipped', 'missed')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    exit_code   INTEGER,
    signal      INTEGER,
    error_code  TEXT,
    message     TEXT,
    spec_hash   TEXT,
    -- pid@host of the process that claimed it
    owner       TEXT NOT NULL,
    -- for a catch-up run, or a missed record: how many slots it stands for, and the first and last
    slot_count  INTEGER NOT NULL DEFAULT 1,
    first_slot  INTEGER,
    last_slot   INTEGER,
    replay_of   INTEGER,
    run_dir     TEXT,
    owner_start INTEGER,
    boot_id     TEXT,
    pgid        INTEGER,
    leader_start INTEGER,
    kill_grace_ms INTEGER,
    retry_owed  INTEGER NOT NULL DEFAULT 0,
    run_group   TEXT,
    -- for a triggered run: the upstream run(s), `job#seq`, comma-separated
    upstream    TEXT,
    -- 1: this run's end triggers no downstream run
    no_trigger  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, seq)
) STRICT;
INSERT INTO runs (job_id, seq, trigger, slot, due_at, claimed_at, started_at, finished_at, status, attempts,
                  exit_code, signal, error_code, message, spec_hash, owner, slot_count, first_slot, last_slot,
                  replay_of, run_dir, owner_start, boot_id, pgid, leader_start, kill_grace_ms, retry_owed,
                  run_group)
    SELECT job_id, seq, trigger, slot, due_at, claimed_at, started_at, finished_at, status, attempts,
           exit_code, signal, error_code, message, spec_hash, owner, slot_count, first_slot, last_slot,
           replay_of, run_dir, owner_start, boot_id, pgid, leader_start, kill_grace_ms, retry_owed,
           run_group
    FROM runs_before_after;
DROP TABLE runs_before_after;
PRAGMA legacy_alter_table = OFF;
CREATE UNIQUE INDEX runs_one_per_slot ON runs (job_id, slot) WHERE slot IS NOT NULL;
CREATE INDEX runs_by_time ON runs (claimed_at DESC, seq DESC);
CREATE INDEX runs_by_job_time ON runs (job_id, claimed_at DESC, seq DESC);
CREATE INDEX runs_by_status_time ON runs (status, claimed_at DESC, seq DESC);
CREATE INDEX runs_by_job_status_time ON runs (job_id, status, claimed_at DESC, seq DESC);
CREATE INDEX runs_retry_owed ON runs (job_id, seq) WHERE retry_owed = 1;
CREATE INDEX runs_in_flight_by_group ON runs (run_group) WHERE status IN ('queued', 'running');

-- Which jobs' runs can trigger which: rebuilt from the stored specs whenever the specs change, so
-- that recording a run's end finds its downstream jobs by an index, not by reading every spec.
CREATE TABLE trigger_edges (
    upstream   TEXT NOT NULL,
    downstream TEXT NOT NULL,
    PRIMARY KEY (upstream, downstream)
) STRICT, WITHOUT ROWID;

-- Fan-in: of each job with after_all, the latest success of each of its upstreams since its last
-- run triggered that way. Complete, it becomes a trigger and is cleared, in the same transaction.
CREATE TABLE fan_in (
    job_id   TEXT NOT NULL,
    upstream TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    PRIMARY KEY (job_id, upstream)
) STRICT;

-- A downstream run owed, written in the transaction that records the upstream's end: once per
-- (downstream, upstream run), whatever crashes; taken by the scheduler in the transaction that
-- claims the downstream run (or records it skipped).
CREATE TABLE triggers (
    job_id       TEXT NOT NULL,
    upstream_job TEXT NOT NULL,
    upstream_seq INTEGER NOT NULL,
    -- every upstream run it stands for (`job#seq`, comma-separated; several for a fan-in)
    upstreams    TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    state        TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'taken')),
    run_seq      INTEGER,
    PRIMARY KEY (job_id, upstream_job, upstream_seq)
) STRICT;
CREATE INDEX triggers_pending ON triggers (created_at) WHERE state = 'pending';
