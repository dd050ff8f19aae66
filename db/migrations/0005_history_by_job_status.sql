-- History filtered by job and status at once (`jobs history <id> --status failed`): without this
-- index SQLite walks every run of the job to find the few with that status.
CREATE INDEX runs_by_job_status_time ON runs (job_id, status, claimed_at DESC, seq DESC);
