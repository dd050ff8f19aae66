#!/usr/bin/env bash
# Manual run overhead: wall time of `jobs run` on a job whose command is `true` against spawning `true`
# directly, median of N (default 50) each, release build. Also breaks the run down with strace's
# syscall counts when strace is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-50}
source bench/lib.sh
mkdir -p "$home/jobs"
printf 'id: nop\nrun:\n  command: ["true"]\n' >"$home/jobs/nop.yaml"
"$bin" --home "$home" run nop >/dev/null # first run creates the store


true_us=$(median_us "$count" /bin/true)
run_us=$(median_us "$count" "$bin" --home "$home" run nop)
echo "spawn true directly: $true_us us (median of $count)"
echo "jobs run of a true job: $run_us us (median of $count)"
echo "overhead: $((run_us - true_us)) us"
if command -v strace >/dev/null; then
  strace -f -c -o "$home/strace.txt" "$bin" --home "$home" run nop >/dev/null
  echo "syscalls of one jobs run (strace -c):"
  grep -E 'fsync|fdatasync|clone|execve|total' "$home/strace.txt" || true
fi
