#!/usr/bin/env bash
# Cluster benchmarks on one PostgreSQL database, release build, every node on this one machine:
#   throughput: N jobs (default 200) due every second for S seconds (default 30) running `true`,
#               first with one node, then with three (three homes with the same specs, one
#               database): runs started per second, the lateness of each run's start against its
#               slot (p50, p99, max, from the store's records) and the slots missed.
#   failover:   three nodes, 50 jobs due every second; the leader is killed with SIGKILL K times
#               (default 5): the time from the kill to the first claim by the node elected next,
#               with --lease L (default 2s).
# The database: PG_ADMIN_URL names a server where databases may be created; without it a throwaway
# cluster is started with `.ci/postgres` (fsync on) and removed at the end.
# Usage: bench/cluster.sh [throughput|failover|all] [N] [S] [K] [LEASE]
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
jobs_n=${2:-200}
seconds=${3:-30}
kills=${4:-5}
lease=${5:-2s}
source bench/lib.sh

pg_dir=""
if [[ -z ${PG_ADMIN_URL:-} ]]; then
  started=$(JOBS_PG_FSYNC=on .ci/postgres)
  pg_dir=${started%% *}
  PG_ADMIN_URL=${started#* }
  trap 'rm -rf "$home"; .ci/postgres stop "$pg_dir"' EXIT
fi

new_database() { # name -> prints its URL
  psql "$PG_ADMIN_URL" -q -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1" >/dev/null
  python3 -c 'import sys; u=sys.argv[1]; b,_,q=u.partition("?"); print(b.rsplit("/",1)[0]+"/"+sys.argv[2]+("?"+q if q else ""))' \
    "$PG_ADMIN_URL" "$1"
}

make_homes() { # root nodes count
  local root=$1 nodes=$2 count=$3
  for ((n = 1; n <= nodes; n++)); do
    mkdir -p "$root/n$n/jobs"
    for ((i = 0; i < count; i++)); do
      printf 'id: job-%05d\nschedule:\n  cron: "* * * * * *"\n  timezone: UTC\nrun:\n  command: ["true"]\n' \
        "$i" >"$root/n$n/jobs/job-$(printf %05d "$i").yaml"
    done
  done
}

start_node() { # root n url -> pid in $started_pid
  JOBS_STORE=$3 "$bin" --home "$1/n$2" scheduler --node "n$2" --lease "$lease" \
    --node-dead-after 1m >/dev/null 2>>"$1/n$2/scheduler.log" &
  started_pid=$!
}

if [[ $what == throughput || $what == all ]]; then
  for nodes in 1 3; do
    root=$(mktemp -d)
    url=$(new_database "bench_cluster_$nodes")
    make_homes "$root" "$nodes" "$jobs_n"
    pids=()
    for ((n = 1; n <= nodes; n++)); do
      start_node "$root" "$n" "$url"
      pids+=("$started_pid")
    done
    sleep "$seconds"
    kill -TERM "${pids[@]}"
    wait "${pids[@]}" || true
    python3 - "$root" "$jobs_n" "$seconds" "$nodes" "$url" <<'PY'
import subprocess, sys
root, jobs, seconds, nodes, url = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
def psql(sql):
    out = subprocess.run(["psql", url, "-At", "-F", " ", "-c", sql], check=True, capture_output=True, text=True).stdout
    return [line.split() for line in out.splitlines() if line]
# From the store, not the run directories: retention prunes those while the benchmark runs.
late, by_node = [], {}
for node, slot, started in psql("SELECT COALESCE(node, '-'), slot, started_at FROM runs "
                                "WHERE trigger = 'schedule' AND slot IS NOT NULL AND started_at IS NOT NULL"):
    late.append(int(started) - int(slot))
    by_node[node] = by_node.get(node, 0) + 1
late.sort()
counts = {status: int(n) for status, n in psql("SELECT status, SUM(slot_count) FROM runs GROUP BY status")}
def pct(p):
    return round(late[min(len(late) - 1, int(len(late) * p))]) if late else None
print(f"throughput, {nodes} node(s), {jobs} jobs every second for {seconds} s: {len(late)} runs "
      f"({len(late) / seconds:.0f} runs/s; by node {dict(sorted(by_node.items()))}), "
      f"lateness p50 {pct(0.5)} ms, p99 {pct(0.99)} ms, max {round(late[-1]) if late else None} ms; "
      f"missed {counts.get('missed', 0)}, statuses {counts}")
PY
    rm -rf "$root"
  done
fi

if [[ $what == failover || $what == all ]]; then
  root=$(mktemp -d)
  url=$(new_database bench_failover)
  make_homes "$root" 3 50
  declare -A pid_of
  for n in 1 2 3; do
    start_node "$root" "$n" "$url"
    pid_of[$n]=$started_pid
  done
  sleep 3
  times=()
  for ((k = 0; k < kills; k++)); do
    leader=$(psql "$url" -At -c "SELECT node FROM leader WHERE expires_at > (extract(epoch from clock_timestamp()) * 1000)::bigint")
    n=${leader#n}
    victim=${pid_of[$n]}
    killed_at=$(date +%s%3N)
    kill -KILL "$victim"
    wait "$victim" 2>/dev/null || true
    # The first claim by a process other than the victim, after the kill.
    first=""
    for _ in $(seq 1 300); do
      first=$(psql "$url" -At -c "SELECT MIN(claimed_at) FROM runs WHERE claimed_at > $killed_at AND owner NOT LIKE '$victim@%'")
      [[ -n $first ]] && break
      sleep 0.05
    done
    times+=($((first - killed_at)))
    start_node "$root" "$n" "$url"
    pid_of[$n]=$started_pid
    sleep 4
  done
  kill -TERM "${pid_of[@]}"
  wait "${pid_of[@]}" || true
  sorted=$(printf '%s\n' "${times[@]}" | sort -n | tr '\n' ' ')
  median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$((kills / 2 + 1))p")
  missed=$(psql "$url" -At -c "SELECT COALESCE(SUM(slot_count), 0) FROM runs WHERE status = 'missed'")
  twice=$(psql "$url" -At -c "SELECT COUNT(*) FROM (SELECT job_id, slot FROM runs WHERE slot IS NOT NULL GROUP BY 1, 2 HAVING COUNT(*) > 1) AS d")
  echo "failover, 3 nodes, 50 jobs every second, --lease $lease, $kills kills of the leader: kill to first claim by the next leader ${sorted}ms (median ${median} ms); slots missed $missed, slots claimed twice $twice"
  rm -rf "$root"
fi
