#!/usr/bin/env bash
# Scheduler benchmarks, release build:
#   start-up: for 100, 1,000 and 10,000 cron jobs, the time from process start until the scheduler logs
#             "scheduler started" (every spec loaded and synced, every next slot computed and stored),
#             and its resident memory then; first start (empty store) and restart (store in place).
#   lateness: N jobs (default 200) due every second for S seconds (default 60) running `true`: the
#             lateness of each run's start against its slot (p50, p99, max) and the slots missed or
#             skipped. Every run writes its full artifacts (receipt, events, summary, logs). With
#             `listen` as the fourth argument the scheduler also serves on a loopback port and
#             /metrics is scraped every second meanwhile, for comparing against the figures without.
#             With JOBS_STORE set to an empty PostgreSQL database, the store is that database.
# Usage: bench/scheduler.sh [startup|lateness|all] [N] [S] [listen]
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
jobs_n=${2:-200}
seconds=${3:-60}
listen=${4:-}
source bench/lib.sh

make_home() { # home count cron
  local home=$1 count=$2 cron=$3
  mkdir -p "$home/jobs"
  for ((i = 0; i < count; i++)); do
    printf 'id: job-%05d\nschedule:\n  cron: "%s"\n  timezone: Europe/Berlin\nrun:\n  command: ["true"]\n' \
      "$i" "$cron" >"$home/jobs/job-$(printf %05d "$i").yaml"
  done
}

start_and_measure() { # home -> prints "ms rss_kib"
  local home=$1
  local start end pid
  start=$(date +%s%N)
  "$bin" --home "$home" scheduler >/dev/null 2>"$home/scheduler.log" &
  pid=$!
  until grep -q "scheduler started" "$home/scheduler.log" 2>/dev/null; do sleep 0.005; done
  end=$(date +%s%N)
  local rss
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  kill -TERM "$pid"
  wait "$pid" || true
  echo "$(((end - start) / 1000000)) $rss"
}

if [[ $what == startup || $what == all ]]; then
  for count in 100 1000 10000; do
    home=$(mktemp -d)
    # Minute-of-hour patterns that will not fire during the measurement.
    make_home "$home" "$count" "0 0 3 * * *"
    read -r first_ms first_rss < <(start_and_measure "$home")
    read -r again_ms again_rss < <(start_and_measure "$home")
    echo "start-up, $count jobs: first start ${first_ms} ms (${first_rss} KiB resident), restart ${again_ms} ms (${again_rss} KiB resident)"
    rm -rf "$home"
  done
fi

if [[ $what == lateness || $what == all ]]; then
  home=$(mktemp -d)
  make_home "$home" "$jobs_n" "* * * * * *"
  serve=()
  if [[ $listen == listen ]]; then
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    serve=(--listen "127.0.0.1:$port")
  fi
  "$bin" --home "$home" scheduler "${serve[@]}" >/dev/null 2>"$home/scheduler.log" &
  pid=$!
  scraper=
  if [[ -n ${port:-} ]]; then
    (while sleep 1; do curl -s -o /dev/null "http://127.0.0.1:$port/metrics" || true; done) &
    scraper=$!
  fi
  sleep "$seconds"
  [[ -n $scraper ]] && kill "$scraper"
  kill -TERM "$pid"
  wait "$pid" || true
  python3 - "$home" "$jobs_n" "$seconds" "$listen" <<'PY'
import glob, json, os, sqlite3, subprocess, sys
from datetime import datetime
home, jobs, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
served = ", serving with a scrape every second" if sys.argv[4] == "listen" else ""
def t(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
# Lateness = when the first attempt's process was started (from the receipt) minus the nominal slot.
late = []
for path in glob.glob(f"{home}/runs/*/*/run_receipt.json"):
    receipt = json.load(open(path))
    if receipt["trigger"] == "schedule" and receipt["attempts"]:
        late.append((t(receipt["attempts"][0]["started_at"]) - t(receipt["slot"])).total_seconds() * 1000)
late.sort()
counts = "SELECT status, SUM(slot_count) FROM runs GROUP BY status"
if os.environ.get("JOBS_STORE"):
    out = subprocess.run(["psql", os.environ["JOBS_STORE"], "-At", "-F", " ", "-c", counts],
                         check=True, capture_output=True, text=True).stdout
    other = {status: int(n) for status, n in (line.split() for line in out.splitlines() if line)}
    served += ", PostgreSQL store"
else:
    con = sqlite3.connect(f"{home}/db/jobs.sqlite3")
    other = dict(con.execute(counts).fetchall())
def pct(p):
    return round(late[min(len(late) - 1, int(len(late) * p))]) if late else None
print(f"lateness, {jobs} jobs every second for {seconds} s{served}: {len(late)} runs, "
      f"p50 {pct(0.5)} ms, p99 {pct(0.99)} ms, max {round(late[-1]) if late else None} ms; "
      f"missed {other.get('missed', 0)}, skipped {other.get('skipped', 0)}, statuses {other}")
PY
  rm -rf "$home"
fi
