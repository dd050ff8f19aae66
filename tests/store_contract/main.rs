//! The store's contract, one suite run against every backend: SQLite in a temporary directory, and
//! PostgreSQL in a database of its own per test on the server `JOBS_TEST_PG_URL` names (the cluster
//! `.ci/postgres` starts). Without that URL the PostgreSQL half is skipped, unless `JOBS_TEST_STRICT`
//! is set, when it fails.

mod cancel;
mod history;
mod jobs;
mod nodes;
mod outbox;
mod owner;
mod queue;
mod runs;
mod support;
mod triggers;
