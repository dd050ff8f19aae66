-- The last good version of the home's config.yaml, as its text: while the file is invalid (or being
-- edited), every process goes on with the defaults this version gives, as a job goes on with the last
-- good version of its spec. No row: the home never had a valid config file (or has none).
CREATE TABLE home_config (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    hash       TEXT NOT NULL,
    source     TEXT NOT NULL,
    checked_at INTEGER NOT NULL
) STRICT;
