-- Runs: one row per run, manual or scheduled, and one per slot that did not become a run (skipped,
-- missed). Identified by (job_id, seq); seq comes from jobs.run_counter. Times are ms since the epoch.
CREATE TABLE runs (
    job_id      TEXT NOT NULL REFERENCES jobs (id),
    seq         INTEGER NOT NULL,
    trigger     TEXT NOT NULL CHECK (trigger IN ('schedule', 'catchup', 'manual', 'replay')),
    -- the nominal slot of a scheduled run; NULL for manual runs
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
    PRIMARY KEY (job_id, seq)
) STRICT;

-- At most one record per scheduled slot: what makes "never twice" hold across crashes.
CREATE UNIQUE INDEX runs_one_per_slot ON runs (job_id, slot) WHERE slot IS NOT NULL;
-- History, newest first: everything, one job, one status.
CREATE INDEX runs_by_time ON runs (claimed_at DESC, seq DESC);
CREATE INDEX runs_by_job_time ON runs (job_id, claimed_at DESC, seq DESC);
CREATE INDEX runs_by_status_time ON runs (status, claimed_at DESC, seq DESC);
