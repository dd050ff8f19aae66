-- Jobs as the store knows them: the last good spec of each, its current load problems, and the
-- operator's state. Times are milliseconds since the Unix epoch, UTC.
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
    present             INTEGER NOT NULL DEFAULT 1 CHECK (present IN (0, 1)),
    state               TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'paused', 'disabled')),
    state_reason        TEXT,
    state_by            TEXT,
    state_at            INTEGER,
    -- the scheduler's pending slot; NULL means "compute it from now"
    next_slot           INTEGER,
    last_slot           INTEGER,
    schedule_changed_at INTEGER,
    run_counter         INTEGER NOT NULL DEFAULT 0,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    removed_at          INTEGER
) STRICT;

-- The one scheduler that owns this home, with its heartbeat. At most one row.
CREATE TABLE scheduler_owner (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    pid          INTEGER NOT NULL,
    host         TEXT NOT NULL,
    version      TEXT NOT NULL,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL
) STRICT;
