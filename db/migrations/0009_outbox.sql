-- The outbox: each notification owed to someone, written in the same transaction as what it is about
-- (a run's end, its start, a missed or skipped slot, a spec turned invalid), then delivered by
-- whichever process takes it. A process that dies mid-delivery leaves its lease to expire; the next
-- one tries again with the same delivery id, so a receiver can drop repeats (at least once, never zero).
CREATE TABLE notifications (
    delivery_id  TEXT PRIMARY KEY,
    -- the run it is about; NULL for an event of the home (scheduler started, a spec turned invalid)
    job_id       TEXT,
    seq          INTEGER,
    event        TEXT NOT NULL,
    -- the notifier as it was when the event happened (JSON), and a key naming its endpoint, by which
    -- the deliverer keeps one slow endpoint from taking every delivery slot
    notifier     TEXT NOT NULL,
    endpoint     TEXT NOT NULL,
    -- the notification (JSON, per schemas/notification.schema.json), the same on every try
    body         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    state        TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'given_up')),
    tries        INTEGER NOT NULL DEFAULT 0,
    next_try_at  INTEGER NOT NULL,
    -- pid@host of the process delivering it now, until lease_until
    leased_by    TEXT,
    lease_until  INTEGER,
    last_error   TEXT,
    done_at      INTEGER
) STRICT;
CREATE INDEX notifications_due ON notifications (next_try_at) WHERE state = 'pending';
CREATE INDEX notifications_by_run ON notifications (job_id, seq);
CREATE INDEX notifications_given_up ON notifications (done_at) WHERE state = 'given_up';

-- Every delivery try: `notify_sent` (ok = 1) or `notify_failed`, with what the endpoint answered.
CREATE TABLE notification_tries (
    delivery_id TEXT NOT NULL REFERENCES notifications (delivery_id) ON DELETE CASCADE,
    try         INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    ok          INTEGER NOT NULL CHECK (ok IN (0, 1)),
    http_status INTEGER,
    detail      TEXT,
    took_ms     INTEGER NOT NULL,
    by          TEXT NOT NULL,
    PRIMARY KEY (delivery_id, try)
) STRICT;

-- The content hash of the last config.yaml found invalid and announced (spec_invalid), so that each
-- invalid version is announced once, whichever process read it first.
CREATE TABLE config_invalid (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    hash TEXT NOT NULL
) STRICT;
