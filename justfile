# Developer recipes. CI runs .ci/run, which is quality-check without just.

# fmt check, clippy with warnings as errors, the whole test suite
quality-check:
    cargo fmt --check
    cargo clippy --all-targets -- -D warnings
    cargo test

# the tests that hold the code to its published contracts: the job schema against the typed model,
# `jobs schema` against schemas/, the --json shapes of the commands
contract-conformance:
    cargo test --test cli -- contract:: commands::schema_prints_the_shipped_schema validate::every_invalid_spec
    cargo test --test next_cli

# micro-benchmarks (criterion) and the 10,000-spec macro benchmark
bench:
    cargo bench --bench spec_load
    ./bench/spec-load.sh 10000
