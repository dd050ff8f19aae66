-- What a run leaves in its directory, mirrored into the store, so that a run executed on one node can
-- be read from any other: each line of its events.jsonl as written (output lines capped per run),
-- and its receipt as last written. Both go with the run's row.

CREATE TABLE run_events (
    job_id TEXT NOT NULL,
    seq    BIGINT NOT NULL,
    -- the event's own seq within the run
    n      BIGINT NOT NULL,
    line   TEXT NOT NULL,
    PRIMARY KEY (job_id, seq, n),
    FOREIGN KEY (job_id, seq) REFERENCES runs (job_id, seq) ON DELETE CASCADE
);

CREATE TABLE run_receipts (
    job_id  TEXT NOT NULL,
    seq     BIGINT NOT NULL,
    receipt TEXT NOT NULL,
    PRIMARY KEY (job_id, seq),
    FOREIGN KEY (job_id, seq) REFERENCES runs (job_id, seq) ON DELETE CASCADE
);

-- The node a scheduler's run was claimed and executed by (NULL for a manual run).
ALTER TABLE runs ADD COLUMN node TEXT;
