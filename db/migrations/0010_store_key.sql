-- A random key naming this store, made once when the store is created. Every delivery id is derived
-- from it (and, for a run, from the instant the run was claimed), so two homes running the same job,
-- or a store restored from a backup that runs a number again, never hand a receiver an id it has seen
-- for a different notification.
CREATE TABLE store_key (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    key  TEXT NOT NULL
) STRICT;
INSERT INTO store_key (id, key) VALUES (1, lower(hex(randomblob(16))));
