#!/usr/bin/env bash
# Macro benchmark: generate N specs (default 10,000) in a temporary home and time, with the release
# binary, `jobs validate` (load + check every file) and `jobs list` (load + sync into the store + render),
# first on an empty store and then on an unchanged one. Prints one line per measurement, median of 5.
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-10000}
source bench/lib.sh
mkdir -p "$home/jobs"
for ((i = 0; i < count; i++)); do
  id=$(printf 'job-%05d' "$i")
  cat >"$home/jobs/$id.yaml" <<SPEC
id: $id
description: Generated job number $i
schedule:
  cron: "$((i % 60)) */2 * * *"
  timezone: Europe/Berlin
  jitter: 30s
run:
  command: ["./scripts/task.sh", "--shard", "$i"]
  timeout: 10m
policy:
  max_instances: 1
  misfire_grace: 5m
retry:
  max_attempts: 3
SPEC
done


rss_kb() {
  /usr/bin/time -f '%M' "$@" 2>&1 >/dev/null | tail -1
}

echo "specs: $count"
echo "validate: $(($(median_us 5 "$bin" --home "$home" validate) / 1000)) ms"
start=$(date +%s%N)
"$bin" --home "$home" list >/dev/null
end=$(date +%s%N)
echo "list, first sync into an empty store: $(((end - start) / 1000000)) ms"
echo "list, unchanged store: $(($(median_us 5 "$bin" --home "$home" list) / 1000)) ms"
if [ -x /usr/bin/time ]; then
  echo "list, peak resident memory: $(rss_kb "$bin" --home "$home" list) KiB"
fi
