#!/usr/bin/env bash
# tokio-cron-scheduler's fire accuracy on this machine, as `jobs` is measured: N jobs (default 200)
# due every second for S seconds (default 20), each slot spawning `true`. Builds the program in
# bench/tcs (its own Cargo project) into target/bench-tcs and prints the lateness percentiles, the
# runs missing from the window, and the floor measured right before it: N `true` spawned back to
# back from one thread, until the last has started.
# Usage: bench/tcs.sh [N] [S]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-200}
seconds=${2:-20}
CARGO_TARGET_DIR=$PWD/target/bench-tcs cargo build --quiet --release --manifest-path bench/tcs/Cargo.toml
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# The floor, measured as bench/harness.py measures it: posix_spawn of /bin/true N times from one
# thread, until the last has started (median of 5).
floor=$(python3 - "$n" <<'PY'
import os, statistics, sys, time
n = int(sys.argv[1])
bursts = []
for _ in range(5):
    start = time.perf_counter()
    pids = [os.posix_spawn("/bin/true", ["true"], {}) for _ in range(n)]
    bursts.append((time.perf_counter() - start) * 1000)
    for pid in pids:
        os.waitpid(pid, 0)
print(round(statistics.median(bursts)))
PY
)
summary=$(target/bench-tcs/release/tcs-bench "$n" "$seconds" "$out")
python3 - "$out" "$summary" "$n" "$seconds" "$floor" <<'PY'
import sys
path, summary, n, seconds, floor = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
late = sorted(int(line.split()[1]) for line in open(path) if line.strip())
expected = n * seconds
def pct(p):
    return late[min(len(late) - 1, int(len(late) * p))] if late else None
print(f"tokio-cron-scheduler, {n} jobs every second for {seconds} s: lateness p50 {pct(0.5)} ms, "
      f"p99 {pct(0.99)} ms, max {late[-1] if late else None} ms; {expected - len(late)} of {expected} "
      f"slots without a run; floor ({n} true spawned back to back) {floor} ms")
PY
