-- The store on PostgreSQL: the same tables, columns and rules as the SQLite store after its
-- migrations 0001 to 0013 (db/migrations/), in PostgreSQL's types. Every integer is BIGINT, so a
-- column reads as one Rust type whatever it holds; instants are milliseconds since the epoch, as
-- in SQLite, so both stores agree to the millisecond and `store copy` moves values unchanged.

CREATE TABLE jobs (
    id                  TEXT PRIMARY KEY,
    spec_path           TEXT NOT NULL,
    -- content hash of the spec file as last read, valid or not
    spec_hash           TEXT NOT NULL,
    -- the last good spec with defaults filled in; NULL while the job has never been valid
    spec_json           TEXT,
    good_hash           TEXT,
    -- JSON array of the file's current problems; NULL when the file is valid
    load_error          TEXT,
    -- 0 once the spec file is gone; the row stays for its history
    present             BIGINT NOT NULL DEFAULT 1 CHECK (present IN (0, 1)),
    state               TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'paused', 'disabled')),
    state_reason        TEXT,
    state_by            TEXT,
    state_at            BIGINT,
    -- the scheduler's pending slot; NULL means "compute it from now"
    next_slot           BIGINT,
    last_slot           BIGINT,
    schedule_changed_at BIGINT,
    run_counter         BIGINT NOT NULL DEFAULT 0,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    removed_at          BIGINT,
    checked_by          TEXT,
    paused_at           BIGINT,
    catchup             TEXT CHECK (catchup IN ('latest', 'all'))
);

CREATE TABLE runs (
    job_id        TEXT NOT NULL REFERENCES jobs (id),
    seq           BIGINT NOT NULL,
    trigger       TEXT NOT NULL CHECK (trigger IN ('schedule', 'catchup', 'manual', 'replay', 'after')),
    -- the nominal slot of a scheduled run; NULL for manual and triggered runs
    slot          BIGINT,
    -- the slot plus its jitter: when the run was meant to start
    due_at        BIGINT,
    claimed_at    BIGINT NOT NULL,
    started_at    BIGINT,
    finished_at   BIGINT,
    status        TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'timed_out',
                                                  'cancelled', 'interrupted', 'skipped', 'missed')),
    attempts      BIGINT NOT NULL DEFAULT 0,
    exit_code     BIGINT,
    signal        BIGINT,
    error_code    TEXT,
    message       TEXT,
    spec_hash     TEXT,
    -- pid@host of the process that claimed it
    owner         TEXT NOT NULL,
    -- for a catch-up run, or a missed record: how many slots it stands for, and the first and last
    slot_count    BIGINT NOT NULL DEFAULT 1,
    first_slot    BIGINT,
    last_slot     BIGINT,
    replay_of     BIGINT,
    run_dir       TEXT,
    owner_start   BIGINT,
    boot_id       TEXT,
    pgid          BIGINT,
    leader_start  BIGINT,
    kill_grace_ms BIGINT,
    retry_owed    BIGINT NOT NULL DEFAULT 0,
    run_group     TEXT,
    -- for a triggered run: the upstream run(s), `job#seq`, comma-separated
    upstream      TEXT,
    -- 1: this run's end triggers no downstream run
    no_trigger    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, seq)
);

CREATE UNIQUE INDEX runs_one_per_slot ON runs (job_id, slot) WHERE slot IS NOT NULL;
CREATE INDEX runs_by_job_status_time ON runs (job_id, status, claimed_at DESC, seq DESC);
CREATE INDEX runs_by_job_time ON runs (job_id, claimed_at DESC, seq DESC);
CREATE INDEX runs_by_status_time ON runs (status, claimed_at DESC, seq DESC);
CREATE INDEX runs_by_time ON runs (claimed_at DESC, seq DESC);
CREATE INDEX runs_retry_owed ON runs (job_id, seq) WHERE retry_owed = 1;
CREATE INDEX runs_running_by_group ON runs (run_group) WHERE status = 'running';
CREATE INDEX runs_queued ON runs (run_group, claimed_at) WHERE status = 'queued';

CREATE TABLE cancel_requests (
    job_id       TEXT NOT NULL,
    seq          BIGINT NOT NULL,
    requested_at BIGINT NOT NULL,
    -- user@host of whoever asked
    requested_by TEXT NOT NULL,
    reason       TEXT,
    PRIMARY KEY (job_id, seq),
    FOREIGN KEY (job_id, seq) REFERENCES runs (job_id, seq) ON DELETE CASCADE
);

CREATE TABLE scheduler_owner (
    id           BIGINT PRIMARY KEY CHECK (id = 1),
    pid          BIGINT NOT NULL,
    host         TEXT NOT NULL,
    version      TEXT NOT NULL,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);

CREATE TABLE home_config (
    id         BIGINT PRIMARY KEY CHECK (id = 1),
    hash       TEXT NOT NULL,
    source     TEXT NOT NULL,
    checked_at BIGINT NOT NULL
);

CREATE TABLE config_invalid (
    id   BIGINT PRIMARY KEY CHECK (id = 1),
    hash TEXT NOT NULL
);

CREATE TABLE notifications (
    delivery_id  TEXT PRIMARY KEY,
    -- the run it is about; NULL for an event of the home (scheduler started, a spec turned invalid)
    job_id       TEXT,
    seq          BIGINT,
    event        TEXT NOT NULL,
    -- the notifier as it was when the event happened (JSON), and a key naming its endpoint
    notifier     TEXT NOT NULL,
    endpoint     TEXT NOT NULL,
    -- the notification (JSON, per schemas/notification.schema.json), the same on every try
    body         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    state        TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'given_up')),
    tries        BIGINT NOT NULL DEFAULT 0,
    next_try_at  BIGINT NOT NULL,
    -- pid@host of the process delivering it now, until lease_until
    leased_by    TEXT,
    lease_until  BIGINT,
    last_error   TEXT,
    done_at      BIGINT
);

CREATE INDEX notifications_by_run ON notifications (job_id, seq);
CREATE INDEX notifications_due ON notifications (next_try_at) WHERE state = 'pending';
CREATE INDEX notifications_given_up ON notifications (done_at) WHERE state = 'given_up';

CREATE TABLE notification_tries (
    delivery_id TEXT NOT NULL REFERENCES notifications (delivery_id) ON DELETE CASCADE,
    try         BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    ok          BIGINT NOT NULL CHECK (ok IN (0, 1)),
    http_status BIGINT,
    detail      TEXT,
    took_ms     BIGINT NOT NULL,
    by          TEXT NOT NULL,
    PRIMARY KEY (delivery_id, try)
);

CREATE TABLE store_key (
    id  BIGINT PRIMARY KEY CHECK (id = 1),
    key TEXT NOT NULL
);
INSERT INTO store_key (id, key) VALUES (1, replace(gen_random_uuid()::text, '-', ''));

-- Which jobs' runs can trigger which: rebuilt from the stored specs whenever the specs change.
CREATE TABLE trigger_edges (
    upstream   TEXT NOT NULL,
    downstream TEXT NOT NULL,
    PRIMARY KEY (upstream, downstream)
);

-- The successes an `after_all:` job has counted since its last triggered run.
CREATE TABLE fan_in (
    job_id   TEXT NOT NULL,
    upstream TEXT NOT NULL,
    seq      BIGINT NOT NULL,
    PRIMARY KEY (job_id, upstream)
);

-- The downstream runs owed by upstream runs' ends, once per upstream run.
CREATE TABLE triggers (
    job_id       TEXT NOT NULL,
    upstream_job TEXT NOT NULL,
    upstream_seq BIGINT NOT NULL,
    -- every upstream run it stands for (`job#seq`, comma-separated; several for a fan-in)
    upstreams    TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    state        TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'taken')),
    run_seq      BIGINT,
    PRIMARY KEY (job_id, upstream_job, upstream_seq)
);

CREATE INDEX triggers_pending ON triggers (created_at) WHERE state = 'pending';

-- The hosts whose processes use the store, and when each last opened it or renewed a scheduler's
-- heartbeat. Until node heartbeats decide which host's runs are alive, a run in flight is judged by
-- its owner's pid on this host: a second host would take the first one's runs for dead. So a store
-- used from one host in the last ten minutes is refused to any other.
CREATE TABLE store_hosts (
    host    TEXT PRIMARY KEY,
    seen_at BIGINT NOT NULL
);
