-- The claim transaction counts the runs holding a group (and all runs holding the home) with
-- `status = 'running'`; SQLite could not use the index of 0011, whose condition names queued runs
-- too, and scanned every run ever recorded. This one's condition is the query's own.
DROP INDEX IF EXISTS runs_in_flight_by_group;
CREATE INDEX runs_running_by_group ON runs (run_group) WHERE status = 'running';

-- A run queued on a shared limit waits behind the other jobs' runs queued before it: those are
-- read, oldest first, from the few queued rows, not from the whole history.
CREATE INDEX runs_queued ON runs (run_group, claimed_at) WHERE status = 'queued';
