# Developer recipes. CI runs .ci/run, which is quality-check without just.

# fmt check, clippy with warnings as errors, the whole test suite
quality-check:
    cargo fmt --check
    cargo clippy --all-targets -- -D warnings
    cargo test

# the tests that hold the code to its published contracts: the job schema against the typed model,
# `jobs schema` against schemas/, every receipt and event line of the run scenarios against
# schemas/run_receipt.schema.json and schemas/event.schema.json, the --json shapes of the commands
contract-conformance:
    cargo test --test cli -- contract:: commands:: validate::every_invalid_spec runs:: tail::tail_of_a_finished_run
    cargo test --test next_cli

# every command line of the runbooks, run against a home with the bundled examples
runbook-check:
    cargo test --test cli -- runbooks::

# micro-benchmarks (criterion) and the 10,000-spec macro benchmark
bench:
    cargo bench --bench spec_load
    ./bench/spec-load.sh 10000
    ./bench/run-overhead.sh 50
    ./bench/scheduler.sh all 200 60
    cargo test --release --test cli -- tail::an_event_shows --nocapture

# crash torture and client concurrency at full length: 20 kill -9 cycles (random moments and the
# fault-injection points), 8 clients for 60 s; `cargo test` runs the same tests in a short variant
torture:
    JOBS_TORTURE_CYCLES=20 JOBS_CONCURRENCY_SECS=60 cargo test --test torture --test concurrency -- --nocapture
