-- Several schedulers on one store. Each is a node with a heartbeat; one of them leads (plans the
-- ticks, claims the slots) under a lease with a term, on this server's clock; the catalog's
-- fingerprint says which specs the leader synced. A run in flight carries its owner's last sign of
-- life and how long a silence it promised to survive, so that a process on another host can tell a
-- dead owner from a live one without looking at processes it cannot see.

CREATE TABLE nodes (
    name           TEXT PRIMARY KEY,
    -- pid@host of the scheduler that holds the name
    owner          TEXT NOT NULL,
    version        TEXT NOT NULL,
    -- comma-separated
    labels         TEXT NOT NULL DEFAULT '',
    started_at     BIGINT NOT NULL,
    heartbeat_at   BIGINT NOT NULL,
    -- the node stops its own runs when it cannot renew its heartbeat for this long
    dead_after_ms  BIGINT NOT NULL,
    runs_in_flight BIGINT NOT NULL DEFAULT 0,
    -- fingerprint of the specs and config in the node's home, as it last loaded them
    spec_hash      TEXT
);

CREATE TABLE leader (
    id         BIGINT PRIMARY KEY CHECK (id = 1),
    node       TEXT NOT NULL,
    term       BIGINT NOT NULL,
    elected_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- Every election takes a new term, never one handed out before, even after a resignation.
CREATE SEQUENCE leader_terms;

CREATE TABLE catalog (
    id        BIGINT PRIMARY KEY CHECK (id = 1),
    spec_hash TEXT NOT NULL,
    synced_by TEXT NOT NULL,
    synced_at BIGINT NOT NULL
);

ALTER TABLE runs ADD COLUMN seen_at BIGINT;
ALTER TABLE runs ADD COLUMN dead_after_ms BIGINT;

-- Node heartbeats and the runs' signs of life replace the rule of one host per store.
DROP TABLE store_hosts;

-- What `data_version` counts: every write transaction but the heartbeats', which several nodes
-- make every few seconds and which no one needs to read the store again for.
CREATE TABLE data_version (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    n  BIGINT NOT NULL
);
INSERT INTO data_version (id, n) VALUES (1, 0);
