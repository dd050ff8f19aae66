#!/usr/bin/env bash
# The benchmark entry point: `bench/run.sh [quick|full]` (default quick).
# Builds the release binary and the tokio-cron-scheduler program (bench/tcs, into target/bench-tcs),
# makes sure the Python venv with APScheduler exists in target/bench-venv (created from
# bench/requirements.txt when missing or when the requirements changed), then runs bench/harness.py,
# which measures the three systems workload by workload, and the goals of `jobs` at 100,000 jobs, the
# server and the cluster (on a throwaway PostgreSQL, when one is installed), and writes
# bench/RESULTS.md and bench/lateness.png. Quick mode takes about 6 minutes after the build; full mode
# about 45 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-quick}
case $mode in quick | full) ;; *) echo "usage: $0 [quick|full]" >&2; exit 2 ;; esac

cargo build --release --quiet
CARGO_TARGET_DIR=$PWD/target/bench-tcs cargo build --quiet --release --manifest-path bench/tcs/Cargo.toml

venv=target/bench-venv
stamp=$venv/.requirements
if ! cmp -s bench/requirements.txt "$stamp" 2>/dev/null; then
  echo "bench: preparing the Python venv in $venv" >&2
  rm -rf "$venv"
  if python3 -m venv "$venv" 2>/dev/null; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r bench/requirements.txt
  else
    # No ensurepip (Debian's python3 without python3-venv): a bare venv, filled by the system pip.
    python3 -m venv --without-pip "$venv"
    python3 -m pip --python "$venv/bin/python" install --quiet --disable-pip-version-check \
      -r bench/requirements.txt
  fi
  cp bench/requirements.txt "$stamp"
fi

exec "$venv/bin/python" bench/harness.py "$mode"
