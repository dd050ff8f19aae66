-- Who runs a run, and which processes are its own, so that whoever settles a dead run can tell a live
-- owner from a dead one without its run directory, and stop the run's processes without ever
-- signalling a stranger. Start times are clock ticks after boot (field 22 of /proc/<pid>/stat), valid
-- only within the boot named by boot_id.
ALTER TABLE runs ADD COLUMN owner_start INTEGER;  -- start time of the owner (the pid in `owner`)
ALTER TABLE runs ADD COLUMN boot_id TEXT;          -- /proc/sys/kernel/random/boot_id when claimed
ALTER TABLE runs ADD COLUMN pgid INTEGER;          -- process group of the latest attempt (its leader's pid)
ALTER TABLE runs ADD COLUMN leader_start INTEGER;  -- start time of that leader
ALTER TABLE runs ADD COLUMN kill_grace_ms INTEGER; -- the grace between SIGTERM and SIGKILL it was claimed with
-- 1: the run was settled as interrupted after its owner died, and its job retries `interrupted`; the
-- scheduler claims the retry and clears this in one transaction, so it happens exactly once.
ALTER TABLE runs ADD COLUMN retry_owed INTEGER NOT NULL DEFAULT 0;
CREATE INDEX runs_retry_owed ON runs (job_id, seq) WHERE retry_owed = 1;
