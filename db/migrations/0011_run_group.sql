-- The concurrency group a run was claimed in (policy.group of its spec then), so that a claim counts
-- the runs in flight of every job of the group in one indexed read, whatever their specs say now.
ALTER TABLE runs ADD COLUMN run_group TEXT;
CREATE INDEX runs_in_flight_by_group ON runs (run_group) WHERE status IN ('queued', 'running');
