-- Requests to cancel a run in flight, written by `jobs cancel` (or `pause`/`disable --cancel`, or a run
-- in backoff whose job was paused or disabled) from any process, and carried out by the process that
-- owns the run, which notices them through `PRAGMA data_version`. The row stays as the record of who
-- asked and why, and goes with its run.
CREATE TABLE cancel_requests (
    job_id       TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    requested_at INTEGER NOT NULL,
    -- user@host of whoever asked
    requested_by TEXT NOT NULL,
    reason       TEXT,
    PRIMARY KEY (job_id, seq),
    FOREIGN KEY (job_id, seq) REFERENCES runs (job_id, seq) ON DELETE CASCADE
) STRICT;
