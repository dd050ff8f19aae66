# Developer recipes. CI runs .ci/run, which is quality-check without just.

# install jobsctl and jobs into ~/.cargo/bin with the versions in Cargo.lock (cargo ignores it without --locked)
install:
    cargo install --locked --path .

# fmt check, clippy with warnings as errors, the whole test suite
quality-check:
    cargo fmt --check
    cargo clippy --all-targets -- -D warnings
    cargo test

# the tests that hold the code to its published contracts: the job schema against the typed model,
# `jobsctl schema` against schemas/, every receipt and event line of the run scenarios against
# schemas/run_receipt.schema.json and schemas/event.schema.json, the --json shapes of the commands
contract-conformance:
    cargo test --test cli -- contract:: commands:: validate::every_invalid_spec runs:: tail::tail_of_a_finished_run
    cargo test --test next_cli

# every command line of the runbooks, run against a home with the bundled examples
runbook-check:
    cargo test --test cli -- runbooks::

# side by side with APScheduler and tokio-cron-scheduler, with every goal of the performance issue
# (100,000 jobs, the scrape, the cluster on a throwaway PostgreSQL, a perf profile), quick mode (about
# 4 minutes after the build; the first run also creates the Python venv in target/ and builds
# bench/tcs): writes bench/RESULTS.md and bench/lateness.png
bench:
    ./bench/run.sh quick

# the same in full mode (about 45 minutes), then the criterion benches of the hot paths, the
# 10,000-spec loading benchmark and the tail latency check
bench-full:
    ./bench/run.sh full
    cargo bench --bench spec_load --bench hot_paths
    ./bench/spec-load.sh 10000
    cargo test --release --test cli -- tail::an_event_shows --nocapture

# crash torture and client concurrency at full length: 20 kill -9 cycles (random moments and the
# fault-injection points), 8 clients for 60 s; `cargo test` runs the same tests in a short variant
torture:
    JOBS_TORTURE_CYCLES=20 JOBS_CONCURRENCY_SECS=60 cargo test --test torture --test concurrency -- --nocapture

# the server's costs: a /metrics scrape at 10,000 jobs, and fire lateness of 200 jobs every second
# without and with `--listen` and a scrape every second (two rounds each, alternating)
bench-server:
    ./bench/scrape.sh 10000 11
    ./bench/scheduler.sh lateness 200 30
    ./bench/scheduler.sh lateness 200 30 listen
    ./bench/scheduler.sh lateness 200 30
    ./bench/scheduler.sh lateness 200 30 listen

# `jobs` and tokio-cron-scheduler on the same fire-accuracy workload, one after the other (the second
# also measures the spawn floor): 200 jobs every second for 30 s
bench-peers:
    ./bench/scheduler.sh lateness 200 30
    ./bench/tcs.sh 200 30
