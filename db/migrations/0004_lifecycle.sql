-- Pause and resume: when the job was paused, and the catch-up a resume asked for ('latest' or 'all'),
-- which the scheduler carries out and then clears.
ALTER TABLE jobs ADD COLUMN paused_at INTEGER;
ALTER TABLE jobs ADD COLUMN catchup TEXT CHECK (catchup IN ('latest', 'all'));
