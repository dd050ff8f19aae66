#!/usr/bin/env bash
# Scrape benchmark: N jobs (default 10,000) with a few runs on record, served by `jobs serve`; times
# `GET /metrics` with curl, the first scrape (which reads the store) and then scrapes a second apart
# (each reads the store again, as a Prometheus scraping every second makes it), and prints the
# median and the slowest, and the size of the page. The goal is under 50 ms at 10,000 jobs.
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-10000}
scrapes=${2:-11}
source bench/lib.sh
mkdir -p "$home/jobs"
for ((i = 0; i < count; i++)); do
  id=$(printf 'job-%05d' "$i")
  printf 'id: %s\nschedule:\n  cron: "%d */2 * * *"\n  timezone: Europe/Berlin\nrun:\n  command: ["true"]\n' \
    "$id" "$((i % 60))" >"$home/jobs/$id.yaml"
done
"$bin" --home "$home" list >/dev/null
for ((i = 0; i < 20; i++)); do
  "$bin" --home "$home" run "$(printf 'job-%05d' "$i")" >/dev/null
done
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$bin" --home "$home" serve --listen "127.0.0.1:$port" 2>/dev/null &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$home"' EXIT
for ((i = 0; i < 100; i++)); do
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
  sleep 0.1
done
times=()
for ((i = 0; i < scrapes; i++)); do
  times+=("$(curl -s -o /dev/null -w '%{time_total}' "http://127.0.0.1:$port/metrics")")
  sleep 1.1
done
bytes=$(curl -s "http://127.0.0.1:$port/metrics" | wc -c)
series=$(curl -s "http://127.0.0.1:$port/metrics" | grep -vc '^#')
sorted=$(printf '%s\n' "${times[@]}" | sort -n)
median=$(echo "$sorted" | sed -n "$((scrapes / 2 + 1))p")
slowest=$(echo "$sorted" | tail -1)
echo "jobs: $count, series: $series, page: $((bytes / 1024)) KiB"
echo "scrape (store read each time): median $(python3 -c "print(round($median * 1000, 1))") ms, slowest $(python3 -c "print(round($slowest * 1000, 1))") ms of $scrapes"
