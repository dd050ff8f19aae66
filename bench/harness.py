#!/usr/bin/env python3
"""Benchmarks of `jobs` side by side with APScheduler 3.11 and tokio-cron-scheduler 0.15, the machine's
own limits measured in the same session, and the performance goals of `jobs` checked against them.

Run through bench/run.sh, which builds the release binary and the tokio-cron-scheduler program and
prepares the venv this runs in. Every workload runs for each system in one session, ours first and the
peers right after, so all see the same machine state. Writes bench/RESULTS.md and bench/lateness.png.

Usage: harness.py quick|full
"""

import datetime as dt
import glob
import json
import math
import multiprocessing
import os
import platform
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "jobsctl")
WORK = os.environ.get("BENCH_WORK") or os.path.join(ROOT, "target", "bench-work")
APS = os.path.join(ROOT, "bench", "aps_side.py")
TCS = os.path.join(ROOT, "target", "bench-tcs", "release", "tcs-bench")
PY = sys.executable

MODES = {
    "quick": {
        "startup": [100],
        "startup_ours_only": [1000, 10000],
        "fire_jobs": 200,
        "fire_secs": 15,
        "ceiling_up": [400],
        "ceiling_down": [100],
        "ceiling_secs": 6,
        "tmpfs_secs": 6,
        "catchup_jobs": 1000,
        "catchup_hours": 0.5,
        "catchup_limit": 60,
        "history_runs": 100_000,
        "history_reps": 20,
        "manual_reps": 20,
        "machine_secs": 2,
        "scale_jobs": 100_000,
        "idle_secs": 35,
        "scale_reps": 3,
        "scrape_jobs": 10_000,
        "scrapes": 6,
        "cluster": (100, 10, 2),
        "profile_secs": 6,
    },
    "full": {
        "startup": [100, 1000, 10000],
        "startup_ours_only": [],
        "fire_jobs": 200,
        "fire_secs": 60,
        "ceiling_up": [300, 400, 500, 750, 1000, 1500, 2000],
        "ceiling_down": [150, 100, 50, 25],
        "ceiling_secs": 20,
        "tmpfs_secs": 20,
        "catchup_jobs": 10000,
        "catchup_hours": 24,
        "catchup_limit": 900,
        "history_runs": 1_000_000,
        "history_reps": 20,
        "manual_reps": 50,
        "machine_secs": 5,
        "scale_jobs": 100_000,
        "idle_secs": 125,
        "scale_reps": 5,
        "scrape_jobs": 10_000,
        "scrapes": 11,
        "cluster": (200, 30, 5),
        "profile_secs": 20,
    },
}

P99_LIMIT_MS = 1000
SIDES = ("ours", "aps", "tcs")
NAMES = {"ours": "`jobs`", "aps": "APScheduler", "tcs": "tokio-cron-scheduler"}


def log(*args):
    print(f"[{time.strftime('%H:%M:%S')}]", *args, file=sys.stderr, flush=True)


def fresh(name, base=None):
    """A new directory for one workload. Nothing is removed before the session ends: deleting files
    makes ext4 slower at allocating inodes for a few minutes (it skips recently freed ones), which
    would slow the run directories of `jobs` in the workloads that follow."""
    path = os.path.join(base or WORK, name)
    os.makedirs(path)
    return path


def pct(values, p):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def status_kib(pid, field):
    """A memory figure of /proc/<pid>/status (`VmRSS`, `VmHWM`), in KiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def rss_kib(pid):
    return status_kib(pid, "VmRSS")


def spawn_wait(argv):
    """Spawns argv and waits for it, with as little of Python in between as possible."""
    pid = os.posix_spawnp(argv[0], argv, os.environ)
    os.waitpid(pid, 0)


def median_us(reps, argv):
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        spawn_wait(argv)
        times.append((time.perf_counter() - start) * 1e6)
    return statistics.median(times)


# ------------------------------------------------------------------------------------------------
# Our side


def write_specs(home, count, schedule, policy=True):
    jobs_dir = os.path.join(home, "jobs")
    os.makedirs(jobs_dir, exist_ok=True)
    extra = "policy:\n  misfire_grace: 1s\n  coalesce: true\n  max_instances: 1\n  overlap: skip\n"
    for i in range(count):
        job_id = f"job-{i:05d}"
        with open(os.path.join(jobs_dir, f"{job_id}.yaml"), "w") as spec:
            spec.write(
                f'id: {job_id}\nschedule:\n  cron: "{schedule}"\n  timezone: UTC\n'
                f'run:\n  command: ["true"]\n' + (extra if policy else "")
            )


def ours_start(home, stderr_path=None):
    """Starts the scheduler; returns (process, wall time of the start, wall time it logged ready)."""
    start = time.time()
    err = open(stderr_path, "wb") if stderr_path else subprocess.PIPE
    proc = subprocess.Popen(
        [BIN, "--home", home, "scheduler", "--log-format", "json"],
        stdout=subprocess.DEVNULL,
        stderr=err,
    )
    if stderr_path:
        err.close()
        while True:
            with open(stderr_path, "rb") as f:
                if b"scheduler started" in f.read():
                    break
            if proc.poll() is not None:
                raise RuntimeError(f"scheduler exited early: {open(stderr_path).read()[-2000:]}")
            time.sleep(0.002)
    else:
        for line in proc.stderr:
            if b"scheduler started" in line:
                break
        else:
            raise RuntimeError("scheduler exited before it was ready")
    return proc, start, time.time()


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


def aps_start(mode, *args):
    start = time.time()
    proc = subprocess.Popen(
        [PY, APS, mode, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    line = proc.stdout.readline()
    if not line.startswith("ready"):
        proc.wait()
        raise RuntimeError(f"APScheduler side ({mode}) exited before it was ready")
    return proc, start, time.time()


# ------------------------------------------------------------------------------------------------
# Workloads


def machine(cfg):
    log("machine limits")
    out = {}
    out["spawn_true_us"] = median_us(200, ["true"])
    workers = os.cpu_count() or 1
    with multiprocessing.Pool(workers) as pool:
        counts = pool.map(_spawn_loop, [cfg["machine_secs"]] * workers)
    out["spawn_rate"] = sum(counts) / cfg["machine_secs"]
    out["spawn_workers"] = workers
    # The floor of fire accuracy: N slots due at one instant cannot start sooner than N spawns take.
    bursts = []
    for _ in range(5):
        start = time.perf_counter()
        pids = [os.posix_spawn("/bin/true", ["true"], {}) for _ in range(cfg["fire_jobs"])]
        bursts.append((time.perf_counter() - start) * 1000)
        for pid in pids:
            os.waitpid(pid, 0)
    out["burst_ms"] = statistics.median(bursts)
    work = fresh("machine")
    path = os.path.join(work, "fsync.bin")
    times = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    for _ in range(200):
        os.write(fd, b"x" * 4096)
        start = time.perf_counter()
        os.fsync(fd)
        times.append((time.perf_counter() - start) * 1e6)
    os.close(fd)
    out["fsync_us"] = statistics.median(times)
    for journal, key in (("WAL", "commit_wal_us"), ("DELETE", "commit_delete_us")):
        con = sqlite3.connect(os.path.join(work, f"{journal}.db"), isolation_level=None)
        con.execute(f"PRAGMA journal_mode={journal}")
        con.execute("PRAGMA synchronous=FULL")
        con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        times = []
        for i in range(200):
            start = time.perf_counter()
            con.execute("BEGIN IMMEDIATE")
            con.execute("INSERT INTO t (v) VALUES (?)", (f"row {i}",))
            con.execute("COMMIT")
            times.append((time.perf_counter() - start) * 1e6)
        con.close()
        out[key] = statistics.median(times)
    return out


def _spawn_loop(secs):
    end = time.monotonic() + secs
    count = 0
    while time.monotonic() < end:
        spawn_wait(["true"])
        count += 1
    return count


def startup(cfg):
    rows = []
    sizes = [(n, True) for n in cfg["startup"]] + [(n, False) for n in cfg["startup_ours_only"]]
    for count, with_aps in sizes:
        log(f"start-up, {count} jobs")
        row = {"jobs": count}
        home = fresh(f"startup-ours-{count}")
        write_specs(home, count, "0 0 3 * * *")
        for key in ("first", "restart"):
            proc, start, ready = ours_start(home)
            row[f"ours_{key}_ms"] = (ready - start) * 1000
            row[f"ours_{key}_rss"] = rss_kib(proc.pid)
            stop(proc)
        if with_aps:
            store = os.path.join(fresh(f"startup-aps-{count}"), "aps.sqlite3")
            for key in ("first", "restart"):
                proc, start, ready = aps_start("startup", "--store", store, "--jobs", str(count))
                row[f"aps_{key}_ms"] = (ready - start) * 1000
                row[f"aps_{key}_rss"] = rss_kib(proc.pid)
                stop(proc)
        rows.append(row)
    return rows


def window(ready, secs):
    """The slots counted: whole seconds from the second after the next one past ready, `secs` of them."""
    first = math.ceil(ready) + 1
    return first, first + secs


def ours_fire(jobs, secs, tag, base=None):
    home = fresh(f"fire-ours-{tag}", base)
    write_specs(home, jobs, "* * * * * *")
    proc, _, ready = ours_start(home, os.path.join(home, "scheduler.log"))
    first, end = window(ready, secs)
    time.sleep(max(0, end + 1.5 - time.time()))
    stop(proc)
    lateness, ran = [], set()
    for path in glob.glob(os.path.join(home, "runs", "*", "*", "run_receipt.json")):
        with open(path) as f:
            receipt = json.load(f)
        if receipt.get("trigger") not in ("schedule", "catchup") or not receipt.get("attempts"):
            continue
        slot = parse_ts(receipt["slot"])
        if first <= slot < end:
            ran.add((receipt["job_id"], slot))
            lateness.append((parse_ts(receipt["attempts"][0]["started_at"]) - slot) * 1000)
    con = sqlite3.connect(f"file:{home}/db/jobs.sqlite3?mode=ro", uri=True)
    statuses = dict(
        con.execute(
            "SELECT status, SUM(slot_count) FROM runs WHERE slot >= ? AND slot < ? GROUP BY status",
            (first * 1000, end * 1000),
        ).fetchall()
    )
    claim = [
        r[0]
        for r in con.execute(
            "SELECT claimed_at - slot FROM runs WHERE slot >= ? AND slot < ? AND started_at IS NOT NULL",
            (first * 1000, end * 1000),
        )
    ]
    con.close()
    result = summarize(lateness, jobs * secs, len(ran))
    result["statuses"] = statuses
    result["claim_p50"], result["claim_p99"] = pct(claim, 0.5), pct(claim, 0.99)
    return result


def aps_fire(jobs, secs, tag):
    work = fresh(f"fire-aps-{tag}")
    out = os.path.join(work, "result.json")
    store = os.path.join(work, "aps.sqlite3")
    proc, _, ready = aps_start("fire", "--store", store, "--jobs", str(jobs), "--out", out)
    first, end = window(ready, secs)
    time.sleep(max(0, end + 1.5 - time.time()))
    stop(proc)
    with open(out) as f:
        data = json.load(f)
    lateness, ran = [], set()
    for job_id, slot, started in data["executed"]:
        if first <= slot < end:
            ran.add((job_id, slot))
            lateness.append((started - slot) * 1000)
    result = summarize(lateness, jobs * secs, len(ran))
    result["statuses"] = {
        "missed events": sum(1 for _, s in data["missed"] if first <= s < end),
        "max_instances events": sum(1 for _, s in data["skipped"] if first <= s < end),
        "errors": len(data["errors"]),
    }
    return result


def tcs_fire(jobs, secs, tag):
    """tokio-cron-scheduler, driven by our program in bench/tcs: it picks its own window (whole seconds
    from the second after the next one on) and writes one `<slot ms> <lateness ms>` line per run."""
    work = fresh(f"fire-tcs-{tag}")
    out = os.path.join(work, "runs.txt")
    proc = subprocess.run(
        [TCS, str(jobs), str(secs), out], capture_output=True, text=True, timeout=secs + 120
    )
    if proc.returncode != 0:
        raise RuntimeError(f"tokio-cron-scheduler side failed: {proc.stderr[-2000:]}")
    lateness, ran = [], set()
    with open(out) as f:
        for n, line in enumerate(f):
            slot, late = line.split()
            # The program cannot name the job of a run, so a run stands for itself; two runs of one
            # slot are not possible for it (it counts the second its callback ran in).
            ran.add(n)
            lateness.append(float(late))
    result = summarize(lateness, jobs * secs, len(ran))
    result["statuses"] = {"runs": len(ran)}
    return result


def parse_ts(text):
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def summarize(lateness, expected, ran):
    return {
        "expected": expected,
        "ran": ran,
        "missed": expected - ran,
        "p50": pct(lateness, 0.5),
        "p99": pct(lateness, 0.99),
        "max": max(lateness) if lateness else None,
        "lateness": lateness,
    }


def fire_accuracy(cfg):
    jobs, secs = cfg["fire_jobs"], cfg["fire_secs"]
    log(f"fire accuracy, {jobs} jobs every second for {secs} s: jobs")
    ours = ours_fire(jobs, secs, "acc")
    log("fire accuracy: APScheduler")
    aps = aps_fire(jobs, secs, "acc")
    log("fire accuracy: tokio-cron-scheduler")
    tcs = tcs_fire(jobs, secs, "acc")
    return {"jobs": jobs, "secs": secs, "ours": ours, "aps": aps, "tcs": tcs}


def ceiling(cfg, fire):
    """Starts from the fire-accuracy result (its rate is the first step): climbs through the higher
    steps while a system passes, or, if it failed there, descends through the lower ones until it
    passes. Each system stops at its first change of outcome."""
    secs = cfg["ceiling_secs"]
    result = {"secs": secs}
    steps_of = {}
    for side in SIDES:
        first = fire[side]
        ok = passes(first)
        steps_of[side] = cfg["ceiling_up"] if ok else cfg["ceiling_down"]
        result[side] = {
            "best": fire["jobs"] if ok else None,
            "climbing": ok,
            "steps": [{"rate": fire["jobs"], "p99": first["p99"], "missed": first["missed"], "ok": ok,
                       "secs": fire["secs"]}],
            "done": False,
        }
    run = {"ours": ours_fire, "aps": aps_fire, "tcs": tcs_fire}
    for i in range(max(len(cfg["ceiling_up"]), len(cfg["ceiling_down"]))):
        for side in SIDES:
            state = result[side]
            if state["done"] or i >= len(steps_of[side]):
                state["done"] = True
                continue
            rate = steps_of[side][i]
            log(f"ceiling, {rate} runs/s: {side}")
            r = run[side](rate, secs, f"ceil{rate}")
            ok = passes(r)
            state["steps"].append({"rate": rate, "p99": r["p99"], "missed": r["missed"], "ok": ok, "secs": secs})
            if ok:
                state["best"] = rate
            if ok != state["climbing"]:
                state["done"] = True
    for side in SIDES:
        state = result[side]
        state["capped"] = state["climbing"] and state["best"] == (cfg["ceiling_up"] or [fire["jobs"]])[-1]
        state["floor"] = not state["climbing"] and state["best"] is None
    return result


def on_tmpfs(cfg):
    """`jobs` alone, the same fire workload with its homes on a tmpfs: what the scheduler does when
    creating run directories costs what it costs on most file systems. Needs root (mount); skipped
    otherwise."""
    base = os.path.join(WORK, "tmpfs")
    os.makedirs(base)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4g,mode=0700", "tmpfs", base],
        stderr=subprocess.DEVNULL,
    ).returncode == 0
    if not mounted:
        log("tmpfs: cannot mount one here (needs root); skipped")
        return None
    try:
        out = {}
        for rate in (cfg["fire_jobs"], 500):
            log(f"{rate} jobs every second, homes on a tmpfs: jobs")
            out[rate] = ours_fire(rate, cfg["tmpfs_secs"], f"tmpfs{rate}", base)
            out[rate].pop("lateness", None)
        return out
    finally:
        subprocess.run(["umount", "-l", base], stderr=subprocess.DEVNULL)


def fs_type(path):
    """The type of the file system holding `path`, from the longest matching mount point (`stat -f`
    says ext2/ext3 for ext4 too)."""
    real = os.path.realpath(path)
    best, kind = "", "unknown"
    try:
        with open("/proc/mounts") as mounts:
            for line in mounts:
                fields = line.split()
                if len(fields) >= 3:
                    point = fields[1]
                    inside = real == point or real.startswith(point.rstrip("/") + "/")
                    if inside and len(point) > len(best):
                        best, kind = point, fields[2]
    except OSError:
        pass
    return kind


def passes(r):
    return r["missed"] == 0 and r["p99"] is not None and r["p99"] <= P99_LIMIT_MS


def wait_reconciled(proc, db, query, after, limit):
    """Polls the store until `query` (the count of jobs still due at or before `after`) is 0."""
    deadline = time.time() + limit
    while time.time() < deadline:
        if proc.poll() is not None:
            return None
        try:
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
            (left,) = con.execute(query, (after,)).fetchone()
            con.close()
            if left == 0:
                return time.time()
        except sqlite3.Error:
            pass
        time.sleep(0.01)
    return None


def catchup(cfg):
    jobs, hours, limit = cfg["catchup_jobs"], cfg["catchup_hours"], cfg["catchup_limit"]
    result = {"jobs": jobs, "hours": hours, "limit": limit}

    def stale_slot():
        # Keep clear of the first seconds of a minute: there the latest slot would still be within
        # the 1 s grace and become a run rather than a missed record.
        while not 5 < time.time() % 60 < 50:
            time.sleep(0.5)
        now = time.time()
        return (math.floor(now / 60) * 60) - hours * 3600

    log(f"catch-up, {jobs} jobs every minute, {hours} h stale: jobs")
    home = fresh("catchup-ours")
    write_specs(home, jobs, "* * * * *")
    subprocess.run([BIN, "--home", home, "list"], stdout=subprocess.DEVNULL, check=True)
    db = os.path.join(home, "db", "jobs.sqlite3")
    stale = stale_slot()
    con = sqlite3.connect(db)
    con.execute(
        "UPDATE jobs SET next_slot = ?, last_slot = ?, updated_at = ?",
        (int(stale * 1000), int((stale - 60) * 1000), int((stale - 60) * 1000)),
    )
    con.commit()
    con.close()
    start = time.time()
    proc = subprocess.Popen(
        [BIN, "--home", home, "scheduler", "--log-format", "json"],
        stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(home, "scheduler.log"), "wb"),
    )
    done = wait_reconciled(
        proc, db, "SELECT COUNT(*) FROM jobs WHERE next_slot <= ?", int(start * 1000), limit
    )
    result["ours_ms"] = (done - start) * 1000 if done else None
    result["ours_rss"] = rss_kib(proc.pid) if done else None
    stop(proc)
    con = sqlite3.connect(db)
    result["ours_records"] = dict(
        con.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall()
    )
    con.close()

    log("catch-up: APScheduler")
    work = fresh("catchup-aps")
    store = os.path.join(work, "aps.sqlite3")
    stale = stale_slot()
    subprocess.run(
        [PY, APS, "mkstore", "--store", store, "--jobs", str(jobs), "--next", str(stale)], check=True
    )
    start = time.time()
    proc = subprocess.Popen(
        [PY, APS, "catchup", "--store", store], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    done = wait_reconciled(
        proc,
        store,
        "SELECT COUNT(*) FROM apscheduler_jobs WHERE next_run_time <= ?",
        start,
        limit,
    )
    result["aps_ms"] = (done - start) * 1000 if done else None
    result["aps_rss"] = rss_kib(proc.pid) if done else None
    stop(proc)
    return result


def history(cfg):
    total, reps = cfg["history_runs"], cfg["history_reps"]
    log(f"history, {total} runs")
    home = fresh("history")
    njobs = 100
    write_specs(home, njobs, "0 * * * *")
    subprocess.run([BIN, "--home", home, "list"], stdout=subprocess.DEVNULL, check=True)
    db = os.path.join(home, "db", "jobs.sqlite3")
    per_job = total // njobs
    base = int(time.time() * 1000) - total * 1000
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=WAL")

    def rows():
        for n in range(total):
            job, seq = n % njobs, n // njobs + 1
            slot = base + n * 1000
            spread = (n * 37) % 101
            status = "failed" if spread < 2 else "missed" if spread == 2 else "succeeded"
            ran = status != "missed"
            yield (
                f"job-{job:05d}", seq, "schedule", slot, slot, slot,
                slot + 3 if ran else None, slot + 40 if ran else None, status,
                1 if ran else 0, (1 if status == "failed" else 0) if ran else None,
                "failed" if status == "failed" else None, "bench@host",
                f"runs/job-{job:05d}/{seq}" if ran else None,
            )

    with con:
        con.executemany(
            "INSERT INTO runs (job_id, seq, trigger, slot, due_at, claimed_at, started_at, finished_at,"
            " status, attempts, exit_code, error_code, owner, run_dir)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows(),
        )
        con.execute("UPDATE jobs SET run_counter = ?", (per_job,))
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    base_cmd = [BIN, "--home", home, "history", "-n", "20"]
    out = {"runs": total}
    for key, extra in (("all", []), ("job", ["job-00042"]), ("status", ["--status", "failed"])):
        median_us_quiet(1, base_cmd + extra)  # warm the page cache
        out[key] = median_us_quiet(reps, base_cmd + extra) / 1000
    return out


def median_us_quiet(reps, argv):
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append((time.perf_counter() - start) * 1e6)
    return statistics.median(times)


def manual_run(cfg):
    reps = cfg["manual_reps"]
    log(f"manual run overhead, median of {reps}")
    home = fresh("manual")
    os.makedirs(os.path.join(home, "jobs"))
    with open(os.path.join(home, "jobs", "nop.yaml"), "w") as spec:
        spec.write('id: nop\nrun:\n  command: ["true"]\n')
    run = [BIN, "--home", home, "run", "nop"]
    median_us_quiet(2, run)
    true_us = median_us_quiet(reps, ["true"])
    run_us = median_us_quiet(reps, run)
    return {"true_ms": true_us / 1000, "run_ms": run_us / 1000, "reps": reps}


def cpu_secs(pid):
    """User plus system CPU time of a process so far, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def hwm_kib(pid):
    return status_kib(pid, "VmHWM")


def scale(cfg):
    """`jobs` alone at 100,000 jobs (APScheduler took 15.9 s to add 10,000): the first start on an
    empty store, the scheduler's CPU while nothing is due (a window longer than its 30 s rescan), and
    `list` and `status` beside the running scheduler, as an operator would type them."""
    n, reps = cfg["scale_jobs"], cfg["scale_reps"]
    log(f"{n:,} jobs: first start, idle CPU, list and status")
    home = fresh(f"scale-{n}")
    write_specs(home, n, "0 0 3 * * *")
    proc, start, ready = ours_start(home, os.path.join(home, "scheduler.log"))
    out = {"jobs": n, "first_ms": (ready - start) * 1000, "first_rss": rss_kib(proc.pid),
           "first_hwm": hwm_kib(proc.pid), "idle_secs": cfg["idle_secs"]}
    before, since = cpu_secs(proc.pid), time.monotonic()
    time.sleep(cfg["idle_secs"])
    out["idle_cpu_pct"] = (cpu_secs(proc.pid) - before) / (time.monotonic() - since) * 100
    for command in ("list", "status"):
        argv = [BIN, "--home", home, command]
        median_us_quiet(1, argv)  # warm the page cache
        out[f"{command}_ms"] = median_us_quiet(reps, argv) / 1000
    out["reps"] = reps
    stop(proc)
    return out


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(cfg):
    """`GET /metrics` of `jobsctl serve` at 10,000 jobs with a few runs on record, a scrape a second
    apart as a Prometheus scraping every second makes them (each reads the store again)."""
    import urllib.request

    n, count = cfg["scrape_jobs"], cfg["scrapes"]
    log(f"scrape, {n:,} jobs")
    home = fresh(f"scrape-{n}")
    write_specs(home, n, "0 */2 * * *")
    subprocess.run([BIN, "--home", home, "list"], stdout=subprocess.DEVNULL, check=True)
    for i in range(20):
        subprocess.run([BIN, "--home", home, "run", f"job-{i:05d}"], stdout=subprocess.DEVNULL, check=True)
    port = free_port()
    proc = subprocess.Popen(
        [BIN, "--home", home, "serve", "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=2).read()
                break
            except OSError:
                time.sleep(0.05)
        times, size = [], 0
        for _ in range(count):
            start = time.perf_counter()
            body = urllib.request.urlopen(base + "/metrics", timeout=30).read()
            times.append((time.perf_counter() - start) * 1000)
            size = len(body)
            time.sleep(1.1)
    finally:
        stop(proc)
    return {"jobs": n, "median_ms": statistics.median(times), "max_ms": max(times), "count": count,
            "kib": size / 1024}


def cluster(cfg):
    """bench/cluster.sh on a throwaway PostgreSQL (it starts one with .ci/postgres): throughput with 1
    and 3 nodes, and failover from a SIGKILL of the leader to the next leader's first claim."""
    import re

    jobs, secs, kills = cfg["cluster"]
    if not (os.environ.get("PG_ADMIN_URL") or shutil.which("initdb")
            or glob.glob("/usr/lib/postgresql/*/bin/initdb")):
        log("cluster: no PostgreSQL on this machine; skipped")
        return {"skipped": "PostgreSQL is not installed (Debian's postgresql); `.ci/run` installs it"}
    log(f"cluster on PostgreSQL: 1 and 3 nodes, {jobs} jobs every second for {secs} s, {kills} failovers")
    proc = subprocess.run(
        [os.path.join(ROOT, "bench", "cluster.sh"), "all", str(jobs), str(secs), str(kills), "2s"],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        return {"skipped": f"bench/cluster.sh failed: {proc.stderr.strip()[-500:]}"}
    out = {"jobs": jobs, "secs": secs, "kills": kills, "lease_ms": 2000, "lines": proc.stdout.strip().splitlines()}
    for m in re.finditer(r"throughput, (\d) node\(s\).*?: (\d+) runs \((\d+) runs/s.*?p50 (\S+) ms, "
                         r"p99 (\S+) ms.*?missed (\d+)", proc.stdout):
        nodes = int(m.group(1))
        out[f"nodes{nodes}"] = {"runs": int(m.group(2)), "rate": int(m.group(3)),
                                "p50": float(m.group(4)), "p99": float(m.group(5)), "missed": int(m.group(6))}
    m = re.search(r"\(median (\d+) ms\); slots missed (\d+), slots claimed twice (\d+)", proc.stdout)
    if m:
        out["failover_ms"], out["failover_missed"], out["twice"] = (int(g) for g in m.groups())
    return out


def profile(cfg):
    """`perf record` of the scheduler during the fire-accuracy workload (a run of its own, so the
    sampling does not touch the measured one): the frames with the most samples of their own."""
    if not shutil.which("perf"):
        return {"skipped": "perf is not installed (Debian's linux-perf)"}
    jobs, secs = cfg["fire_jobs"], cfg["profile_secs"]
    log(f"profile of the scheduler, {jobs} jobs every second, {secs} s")
    home = fresh("profile")
    write_specs(home, jobs, "* * * * * *")
    proc, _, _ = ours_start(home, os.path.join(home, "scheduler.log"))
    time.sleep(1)
    data = os.path.join(home, "perf.data")
    rec = subprocess.run(
        ["perf", "record", "-F", "499", "-g", "-p", str(proc.pid), "-o", data, "--", "sleep", str(secs)],
        capture_output=True, text=True,
    )
    stop(proc)
    if rec.returncode != 0:
        return {"skipped": f"perf record failed: {rec.stderr.strip().splitlines()[-1:]}"}
    out = {"jobs": jobs, "secs": secs}
    for key, sort in (("symbols", "symbol"), ("dsos", "dso")):
        rep = subprocess.run(
            ["perf", "report", "-i", data, "--stdio", "--no-children", "-g", "none", "--sort", sort,
             "--percent-limit", "1"],
            capture_output=True, text=True,
        )
        rows = []
        for line in rep.stdout.splitlines():
            parts = line.split(None, 1)
            if len(parts) == 2 and parts[0].endswith("%") and not line.startswith("#"):
                rows.append((float(parts[0].rstrip("%")), parts[1].strip()))
        out[key] = rows[:15]
    return out


# ------------------------------------------------------------------------------------------------
# Report


def machine_line():
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kib = int(f.readline().split()[1])
            mem = f"{kib / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    fs = ""
    try:
        fs = subprocess.run(
            ["df", "--output=fstype", ROOT], capture_output=True, text=True, check=False
        ).stdout.split()[-1]
    except (OSError, IndexError):
        pass
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True, check=False)
    import apscheduler
    import sqlalchemy

    return (
        f"{cpu}, {os.cpu_count()} cores, {mem}, Linux {platform.release()}, {fs} file system; "
        f"{rustc.stdout.strip()}; Python {platform.python_version()}, "
        f"APScheduler {apscheduler.__version__}, SQLAlchemy {sqlalchemy.__version__}"
    )


def ms(v, digits=None):
    if v is None:
        return "—"
    if digits is None:
        digits = 0 if v >= 100 else 1 if v >= 10 else 2
    return f"{v:,.{digits}f} ms"


def mb(kib):
    return "—" if kib is None else f"{kib / 1024:.0f} MB"


def ratio(aps, ours, higher_better=False):
    if aps is None or ours is None or aps == 0 or ours == 0:
        return "—"
    r = ours / aps if higher_better else aps / ours
    return f"{r:.1f}×" if r >= 1.95 else f"{r:.2f}×"


def verdict(ok):
    return "met" if ok else "**missed**"


def tcs_version():
    try:
        with open(os.path.join(ROOT, "bench", "tcs", "Cargo.lock")) as f:
            text = f.read()
        block = text.split('name = "tokio-cron-scheduler"', 1)[1]
        return block.split('version = "', 1)[1].split('"', 1)[0]
    except (OSError, IndexError):
        return "?"


def report(mode, cfg, started, elapsed, res):
    m, su, fa, ce, cu, hi, mr = (
        res["machine"], res["startup"], res["fire"], res["ceiling"],
        res["catchup"], res["history"], res["manual"],
    )
    sc, sp, pr, cl = res["scale"], res["scrape"], res["profile"], res["cluster"]
    o, a, t = fa["ours"], fa["aps"], fa["tcs"]
    floor = m["burst_ms"]
    lines = []
    add = lines.append
    add("# Benchmarks: `jobs` side by side with APScheduler and tokio-cron-scheduler")
    add("")
    add(f"Run: {started:%Y-%m-%d %H:%M} UTC, **{mode} mode**, {elapsed / 60:.1f} min after the build.  ")
    add(f"Machine: {machine_line()}; tokio-cron-scheduler {tcs_version()}. Benchmark homes on `{fs_type(WORK)}`.")
    add("")
    add("Generated by `bench/run.sh " + mode + "` (`just bench` is quick mode, `just bench-full` the full "
        "one); do not edit by hand. Ratio: how many times better `jobs` is than each peer, that is the peer / "
        "`jobs` for times and memory and `jobs` / the peer for rates; above 1 means `jobs` is ahead. n/a: the "
        "peer has nothing of the kind; not measured: it has, but this harness does not drive it there.")
    if mode == "quick":
        add("")
        add("Quick mode shortens the workloads (see the table headings); the figures the goals speak of "
            "come from the full mode.")
    add("")
    add("| workload | `jobs` | APScheduler | tokio-cron-scheduler | ratio (APScheduler; tokio-cron-scheduler) |")
    add("|---|---|---|---|---|")

    def row(what, ours, aps, tcs, ratios=""):
        add(f"| {what} | {ours} | {aps} | {tcs} | {ratios} |")

    for r in su:
        n = r["jobs"]
        aps_first = r.get("aps_first_ms")
        not_run = "not run in quick mode"
        for key, what in (("first", "first start (empty store)"), ("restart", "restart (store in place)")):
            row(f"start-up, {n:,} cron jobs, {what}", f"{ms(r[f'ours_{key}_ms'])}, {mb(r[f'ours_{key}_rss'])}",
                f"{ms(r[f'aps_{key}_ms'])}, {mb(r[f'aps_{key}_rss'])}" if aps_first else not_run,
                "n/a (keeps no store)" if key == "restart" else "not measured",
                f"{ratio(r.get(f'aps_{key}_ms'), r[f'ours_{key}_ms'])} time, "
                f"{ratio(r.get(f'aps_{key}_rss'), r[f'ours_{key}_rss'])} memory" if aps_first else "")
    row(f"fire accuracy, {fa['jobs']} jobs due at the same instant every second for {fa['secs']} s: "
        "lateness p50 / p99 / max",
        *(f"{ms(x['p50'])} / {ms(x['p99'])} / {ms(x['max'])}" for x in (o, a, t)),
        f"{ratio(a['p99'], o['p99'])}; {ratio(t['p99'], o['p99'])} (p99)")
    row(f"fire accuracy: slots missed or skipped, of {o['expected']:,}", *(f"{x['missed']:,}" for x in (o, a, t)), "")
    row(f"fire accuracy: p99 over the spawn floor ({floor:.0f} ms, {fa['jobs']} `true` spawned back to back, "
        "same session)", *(f"{x['p99'] / floor:.2f}×" if x["p99"] is not None else "—" for x in (o, a, t)), "")

    def best(side):
        b = ce[side]["best"]
        if b is None:
            return f"below {min(s['rate'] for s in ce[side]['steps'])} runs/s"
        return f"{'≥ ' if ce[side]['capped'] else ''}{b:,} runs/s"

    row(f"ceiling: highest rate with p99 ≤ 1 s and nothing missed ({ce['secs']} s per step above or below "
        f"{fa['jobs']})", best("ours"), best("aps"), best("tcs"),
        f"{ratio(ce['aps']['best'], ce['ours']['best'], True)}; {ratio(ce['tcs']['best'], ce['ours']['best'], True)}")
    row(f"machine: spawn rate of `true`, {m['spawn_workers']} parallel loops", f"{m['spawn_rate']:,.0f} /s", "", "", "")
    tf = res.get("tmpfs")
    if tf:
        for rate, r in tf.items():
            row(f"`jobs` alone, homes on a tmpfs: {rate} jobs every second for {r['expected'] // rate} s: "
                "lateness p50 / p99 / max, missed",
                f"{ms(r['p50'])} / {ms(r['p99'])} / {ms(r['max'])}, {r['missed']} missed", "", "", "")
    cu_limit = f"> {cu['limit']} s (stopped)"
    row(f"catch-up: {cu['jobs']:,} jobs every minute, store last active {cu['hours']} h ago: reconciled and ready",
        ms(cu["ours_ms"]) if cu["ours_ms"] else cu_limit, ms(cu["aps_ms"]) if cu["aps_ms"] else cu_limit,
        "n/a (keeps no store)", ratio(cu["aps_ms"], cu["ours_ms"]))
    for key, what in (("all", "`jobsctl history -n 20`"), ("job", "`jobsctl history job-00042 -n 20`"),
                      ("status", "`jobsctl history --status failed -n 20`")):
        row(f"history, {hi['runs']:,} runs: {what} (median of {cfg['history_reps']})", ms(hi[key]), "n/a", "n/a", "")
    overhead = mr["run_ms"] - mr["true_ms"]
    row(f"manual run: `jobsctl run` of a `true` job vs spawning `true` (median of {mr['reps']})",
        f"{ms(mr['run_ms'])} vs {ms(mr['true_ms'])}: **{ms(overhead)} overhead**", "n/a", "n/a", "")
    n = sc["jobs"]
    row(f"{n:,} jobs, first start (empty store): ready, resident memory then (peak)",
        f"{ms(sc['first_ms'])}, {mb(sc['first_rss'])} ({mb(sc['first_hwm'])})", "not measured", "not measured", "")
    row(f"{n:,} jobs, scheduler idle for {sc['idle_secs']} s (one rescan or more): CPU",
        f"{sc['idle_cpu_pct']:.2f} % of a core", "not measured", "not measured", "")
    for command in ("list", "status"):
        row(f"{n:,} jobs, `jobsctl {command}` beside the running scheduler (median of {sc['reps']})",
            ms(sc[f"{command}_ms"]), "n/a", "n/a", "")
    row(f"`GET /metrics` of `jobsctl serve`, {sp['jobs']:,} jobs, a scrape a second apart: median / slowest of "
        f"{sp['count']} ({sp['kib']:,.0f} KiB)", f"{ms(sp['median_ms'])} / {ms(sp['max_ms'])}", "n/a", "n/a", "")
    if "skipped" in cl:
        row("cluster on PostgreSQL", f"not measured: {cl['skipped']}", "n/a", "n/a", "")
    else:
        for nodes in (1, 3):
            r = cl.get(f"nodes{nodes}")
            if r:
                row(f"cluster, {nodes} node(s) on one PostgreSQL (one machine), {cl['jobs']} jobs every second for "
                    f"{cl['secs']} s: runs/s, lateness p50 / p99, missed",
                    f"{r['rate']} runs/s, {ms(r['p50'])} / {ms(r['p99'])}, {r['missed']} missed", "n/a", "n/a", "")
        if "failover_ms" in cl:
            row(f"cluster failover, `--lease 2s`, {cl['kills']} SIGKILLs of the leader: kill to the next leader's "
                "first claim (median)", f"{ms(cl['failover_ms'])}; {cl['twice']} slots claimed twice", "n/a", "n/a", "")
    add("")
    add("## Machine limits, measured in the same session")
    add("")
    add("| what | figure |")
    add("|---|---|")
    add(f"| spawn `true` and wait for it (posix_spawn, median of 200) | {m['spawn_true_us'] / 1000:.2f} ms |")
    add(f"| spawn rate of `true`, {m['spawn_workers']} processes spawning in a loop for {cfg['machine_secs']} s | {m['spawn_rate']:,.0f} /s |")
    add(f"| {fa['jobs']} `true` spawned back to back from one thread, until the last is started (median of 5): "
        f"the floor of the {fa['jobs']}-jobs-at-once p99 | {floor:.0f} ms |")
    add(f"| fsync after a 4 KiB write, same file system as the stores (median of 200) | {m['fsync_us'] / 1000:.2f} ms |")
    add(f"| SQLite commit of one row, WAL, synchronous=FULL (the `jobs` store's settings; median of 200) | {m['commit_wal_us'] / 1000:.2f} ms |")
    add(f"| SQLite commit of one row, rollback journal, synchronous=FULL (SQLite's default, which APScheduler's store runs with) | {m['commit_delete_us'] / 1000:.2f} ms |")
    add("")

    # The goals, each checked against this run's own figures.
    goals = []
    ratio_o = o["p99"] / floor if o["p99"] is not None else None
    goals.append((f"fire accuracy, {fa['jobs']} jobs at one instant: p99 at most 1.2× the spawn floor, 0 missed",
                  f"p99 {ms(o['p99'])} = {ratio_o:.2f}× the floor of {floor:.0f} ms, {o['missed']} missed"
                  if ratio_o else "no runs", ratio_o is not None and ratio_o <= 1.2 and o["missed"] == 0))
    goals.append(("ceiling: at least 1,500 runs/s with p99 under 1 s and nothing missed",
                  best("ours") + ("" if mode == "full" else " (quick mode climbs to 400 only)"),
                  (ce["ours"]["best"] or 0) >= 1500))
    goals.append(("`jobsctl run` of a `true` job: under 5 ms over spawning `true`", ms(overhead), overhead < 5))
    goals.append((f"{n:,} jobs ready (first start) in under 5 s and 300 MB",
                  f"{ms(sc['first_ms'])}, {mb(sc['first_rss'])} resident ({mb(sc['first_hwm'])} peak)",
                  sc["first_ms"] < 5000 and (sc["first_hwm"] or 0) < 300 * 1024))
    goals.append((f"{n:,} jobs: idle CPU of the scheduler under 0.5 % of a core", f"{sc['idle_cpu_pct']:.2f} %",
                  sc["idle_cpu_pct"] < 0.5))
    goals.append((f"{n:,} jobs: `list` and `status` under 1 s",
                  f"{ms(sc['list_ms'])} and {ms(sc['status_ms'])}", max(sc["list_ms"], sc["status_ms"]) < 1000))
    goals.append((f"a `/metrics` scrape at {sp['jobs']:,} jobs under 50 ms", f"median {ms(sp['median_ms'])}, "
                  f"slowest {ms(sp['max_ms'])}", sp["median_ms"] < 50))
    if "skipped" in cl:
        goals.append(("cluster: failover under 2× the lease; 3 nodes not below 1 node", f"not measured: {cl['skipped']}", False))
    else:
        fo = cl.get("failover_ms")
        goals.append(("cluster: failover under 2× the lease (4 s at `--lease 2s`)",
                      ms(fo) if fo is not None else "—", fo is not None and fo < 2 * cl["lease_ms"]))
        one, three = cl.get("nodes1"), cl.get("nodes3")
        goals.append(("cluster: throughput with 3 nodes not below 1 node on the same machine",
                      f"{three['rate']} vs {one['rate']} runs/s" if one and three else "—",
                      bool(one and three and three["rate"] >= one["rate"])))
    for r in su:
        if r["jobs"] == 10000:
            goals.append(("10,000 jobs ready in under 1 s and under 100 MB", f"{ms(r['ours_first_ms'])}, "
                          f"{mb(r['ours_first_rss'])}", r["ours_first_ms"] < 1000 and r["ours_first_rss"] < 100 * 1024))
    worst = max(hi["all"], hi["job"], hi["status"])
    goals.append((f"history queries under 50 ms at {hi['runs']:,} runs", f"slowest {ms(worst)}", worst < 50))
    ahead = []
    for r in su:
        if r.get("aps_first_ms"):
            ahead.append((f"start-up {r['jobs']:,} first start", r["ours_first_ms"] < r["aps_first_ms"]))
            ahead.append((f"start-up {r['jobs']:,} restart", r["ours_restart_ms"] < r["aps_restart_ms"]))
    for side in ("aps", "tcs"):
        x = fa[side]
        ahead.append((f"fire accuracy p99 against {NAMES[side]}",
                      o["p99"] is not None and (x["p99"] is None or o["p99"] < x["p99"])))
        ahead.append((f"ceiling against {NAMES[side]}", (ce["ours"]["best"] or 0) > (ce[side]["best"] or 0)
                      or (ce["ours"]["capped"] and ce["ours"]["best"] == ce[side]["best"])))
    ahead.append(("catch-up", cu["ours_ms"] is not None and (cu["aps_ms"] is None or cu["ours_ms"] < cu["aps_ms"])))
    behind = [name for name, ok in ahead if not ok]
    goals.append(("ahead of both peers on every row where they are measured",
                  f"behind or level on: {', '.join(behind)}" if behind else "ahead on every one", not behind))
    add("## Goals")
    add("")
    add("| goal | this run | |")
    add("|---|---|---|")
    for goal, figure, ok in goals:
        add(f"| {goal} | {figure} | {verdict(ok)} |")
    add("")
    add("Where a goal is missed or close, the reasons, from this run's own figures:")
    add("")
    tf = res.get("tmpfs") or {}
    tf_fire = tf.get(fa["jobs"])
    add(f"- fire accuracy, `jobs`: slots are claimed up to 500 ms ahead (p50 {ms(o['claim_p50'])}, p99 "
        f"{ms(o['claim_p99'])} relative to the slot; negative is ahead), and each run's directory and files are "
        f"made before its slot; only the spawn of the command waits for the slot. What remains is the spawning "
        f"itself: {fa['jobs']} `true` processes spawned back to back from one thread take {floor:.0f} ms until "
        f"the last one starts, so with every job due at the same instant the p99 of one spawning thread cannot "
        f"be below about that. The profile below shows where the scheduler's own CPU goes. "
        + (f"With the homes on a tmpfs the same workload gives p99 {ms(tf_fire['p99'])} and {tf_fire['missed']} "
           f"missed (table above). " if tf_fire else "")
        + f"Statuses of the slots in the window: {o['statuses']}. APScheduler writes no artifacts; its events: "
        f"{a['statuses']}.")
    for side in SIDES:
        steps = ", ".join(
            f"{s['rate']}/s ({s['secs']} s): p99 {ms(s['p99'])}, {s['missed']} missed, {'passed' if s['ok'] else 'failed'}"
            for s in ce[side]["steps"]
        )
        add(f"- ceiling, {NAMES[side]}, step by step: {steps}.")
    add(f"- catch-up, what `jobs` recorded: {cu['ours_records']} (rows in `runs` by status).")
    if "lines" in cl:
        for line in cl["lines"]:
            add(f"- `bench/cluster.sh`: {line}")
    add("")
    add("## Where the scheduler's CPU goes")
    add("")
    if "skipped" in pr:
        add(f"Not profiled: {pr['skipped']}.")
    else:
        add(f"`perf record -F 499 -g` of the scheduler for {pr['secs']} s of the fire-accuracy workload ({pr['jobs']} "
            "jobs every second; a run of its own, not the measured one), `perf report --no-children`: the frames with "
            "the most samples of their own (the top of the flame graph), and the same by object.")
        add("")
        add("| self % | frame |")
        add("|---|---|")
        for pct_, name in pr["symbols"]:
            add(f"| {pct_:.1f} | `{' '.join(name.split())}` |")
        add("")
        add("| self % | object |")
        add("|---|---|")
        for pct_, name in pr["dsos"]:
            add(f"| {pct_:.1f} | `{name}` |")
    add("")
    add("## Lateness")
    add("")
    add("![lateness distributions](lateness.png)")
    add("")
    add(f"Lateness of every run of the fire-accuracy workload ({fa['jobs']} jobs every second for {fa['secs']} s), "
        f"the three systems, as cumulative distributions, with the spawn floor of the same session.")
    add("")
    add("## What each side does")
    add("")
    add("Each side runs in its own process, started by the harness (`bench/harness.py`), ours first and the peers "
        "right after for each workload (and each ceiling step). `jobs` is the release build. APScheduler is the "
        "version pinned in `bench/requirements.txt`, installed in a venv under `target/`: `BackgroundScheduler` "
        "with one `SQLAlchemyJobStore` on a SQLite file (`sqlite:///...`, SQLAlchemy's defaults) and one "
        "`ThreadPoolExecutor`, time zone UTC (`bench/aps_side.py`). tokio-cron-scheduler is driven by a small "
        "program of ours (`bench/tcs`, its own Cargo project, built by `bench/run.sh` into `target/bench-tcs`): "
        "its in-memory scheduler, one async job per spec on `* * * * * *`, each spawning `true` with "
        "`tokio::process`. Policy on the `jobs` and APScheduler sides: misfire grace 1 s (APScheduler's default), "
        "coalesce on, at most 1 instance (`jobs`: overlap skip); tokio-cron-scheduler has none of these. `jobs` "
        "specs use `timezone: UTC` and the command `[\"true\"]`.")
    add("")
    add("- **Start-up.** `jobs`: N spec files with cron `0 0 3 * * *`; time from spawning `jobsctl scheduler` "
        "until it logs `scheduler started` (every spec loaded, synced into the store and its next slot "
        "computed), resident memory (VmRSS) at that moment. First start on an empty store, restart with the "
        "store in place. APScheduler: a Python process that builds the scheduler, adds the same N jobs "
        "(`CronTrigger(hour=3, minute=0, second=0)`, each stored with its next run time, one commit each as "
        "`add_job` does) and starts; time from spawning it until it prints `ready`, VmRSS then. Its restart "
        "finds the jobs in the store and adds nothing, which is all an application would do.")
    add(f"- **Fire accuracy.** N jobs due every second, each running `true` as a subprocess. Lateness = the "
        f"wall time just before the command is spawned minus the slot. `jobs` takes it from each run's receipt "
        f"(`attempts[0].started_at − slot`, millisecond resolution); the APScheduler job function returns "
        f"`time.time()` taken just before `subprocess.run(['true'])` and a listener on `EVENT_JOB_EXECUTED` "
        f"pairs it with the event's `scheduled_run_time`; the tokio-cron-scheduler callback takes the time "
        f"after its spawn of `true` and counts from the whole second it was called in. Counted: the slots of "
        f"{fa['secs']} whole seconds starting about two seconds after the scheduler is ready; missed = slots in "
        f"that window without a run (slots recorded as missed or skipped, APScheduler's `EVENT_JOB_MISSED` / "
        f"`EVENT_JOB_MAX_INSTANCES`, slots dropped by coalescing, fires tokio-cron-scheduler never made). "
        f"With a grace of 1 s, a slot that would start later than that is not run but missed, so lateness "
        f"stays near or under 1 s and an overloaded system shows in the missed count. **`jobs` writes its "
        f"full artifacts for every run meanwhile** (run directory with lock, `events.jsonl`, `stdout.log`, "
        f"`stderr.log`, `summary.md`, a receipt replaced atomically with fsync, synced store commits); "
        f"APScheduler writes nothing but its job store's next run time (one commit per run), "
        f"tokio-cron-scheduler nothing at all. The floor is the machine's: {fa['jobs']} `true` spawned back to "
        f"back from one thread, measured at the start of the session.")
    add(f"- **Ceiling.** The fire-accuracy workload with more or fewer jobs due every second. The "
        f"fire-accuracy run itself is the first step ({fa['jobs']} runs/s). A system that passed it (p99 "
        f"lateness at most 1 s, nothing missed) climbs through {', '.join(str(s) for s in cfg['ceiling_up'])} "
        f"runs/s until it fails; one that failed descends through "
        f"{', '.join(str(s) for s in cfg['ceiling_down'])} until it passes; {ce['secs']} s per step. "
        f"Reported: the highest rate that passed; '≥' means it passed the last step.")
    add(f"- **Catch-up.** {cu['jobs']:,} jobs due every minute whose store says their next slot was "
        f"{cu['hours']} h ago (`jobs`: `jobsctl list` creates the store, then `jobs.next_slot` is set back; "
        f"APScheduler: the jobs are written into its store with that next run time, pickled as `add_job` "
        f"stores them). Time from spawning the scheduler until the store holds a future next slot for every "
        f"job (polled every 10 ms), that is until every due slot has been handled (run, coalesced or recorded "
        f"missed) and the scheduler waits for the next one. The measurement starts clear of the first seconds "
        f"of a minute, so on both sides the latest slot is past the 1 s grace and all slots are misses.")
    add(f"- **History.** A `jobs` store with {hi['runs']:,} rows in `runs` (100 jobs, 2 % failed, 1 % missed, "
        f"written directly with SQLite in the shape the scheduler writes) and no run directories; wall time of "
        f"the whole `jobsctl history` process, median of {cfg['history_reps']}. The peers keep no history.")
    add(f"- **Manual run.** `jobsctl run nop` where the job's command is `true`, against spawning `true` "
        f"directly, each spawned and waited for from Python, median of {mr['reps']}; the `jobs` run writes its "
        f"full artifacts. The peers have no command-line run.")
    add(f"- **{n:,} jobs.** N spec files with cron `0 0 3 * * *` (nothing due): the first start as above; "
        f"then the scheduler's user and system CPU time over {sc['idle_secs']} s from /proc (its rescan runs "
        f"every 30 s); then `jobsctl list` and `jobsctl status` beside it, wall time of the whole process. "
        f"The peers are not run at this size (APScheduler's first start at 10,000 jobs is in the table in full mode).")
    add(f"- **Scrape.** {sp['jobs']:,} spec files (cron `0 */2 * * *`) with 20 manual runs on record, "
        f"`jobsctl serve --listen` and `GET /metrics` from the harness a second apart; each scrape reads the store.")
    add(f"- **Cluster.** `bench/cluster.sh all {' '.join(str(x) for x in cfg['cluster'])} 2s`: a throwaway PostgreSQL "
        f"(`.ci/postgres`, fsync on), every node on this one machine, so the 3-node figures share its 2 cores; a real "
        f"deployment has a core or more per node.")
    add("")
    return "\n".join(lines)


def chart(fa, floor, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5))
    for key, colour in (("ours", "tab:blue"), ("aps", "tab:orange"), ("tcs", "tab:green")):
        values = sorted(fa[key]["lateness"])
        if not values:
            continue
        ys = [(i + 1) / len(values) for i in range(len(values))]
        label = NAMES[key].strip("`")
        ax.step(values, ys, where="post", label=f"{label}: p50 {fa[key]['p50']:.0f} ms, p99 {fa[key]['p99']:.0f} ms", color=colour)
        ax.axvline(fa[key]["p99"], color=colour, linestyle=":", linewidth=1)
    ax.axvline(floor, color="black", linestyle="--", linewidth=1, label=f"spawn floor: {floor:.0f} ms")
    ax.set_xscale("symlog", linthresh=1)
    # Claims may happen ahead of the slot; a command started early shows as negative lateness.
    lowest = min((min(fa[k]["lateness"]) for k in SIDES if fa[k]["lateness"]), default=0)
    ax.set_xlim(left=min(0, lowest))
    ax.set_xlabel("lateness: command spawned − slot (ms, log scale above 1 ms)")
    ax.set_ylabel("fraction of runs")
    ax.set_title(f"Fire accuracy: {fa['jobs']} jobs every second for {fa['secs']} s, command `true`")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "quick"
    if mode not in MODES:
        sys.exit(f"usage: {sys.argv[0]} quick|full")
    cfg = MODES[mode]
    shutil.rmtree(WORK, ignore_errors=True)  # what an interrupted session left
    os.makedirs(WORK)
    started = dt.datetime.now(dt.timezone.utc)
    t0 = time.time()
    res = {}
    res["machine"] = machine(cfg)
    res["startup"] = startup(cfg)
    res["fire"] = fire_accuracy(cfg)
    res["ceiling"] = ceiling(cfg, res["fire"])
    res["tmpfs"] = on_tmpfs(cfg)
    res["catchup"] = catchup(cfg)
    res["history"] = history(cfg)
    res["manual"] = manual_run(cfg)
    res["scale"] = scale(cfg)
    res["scrape"] = scrape(cfg)
    res["profile"] = profile(cfg)
    res["cluster"] = cluster(cfg)
    elapsed = time.time() - t0
    text = report(mode, cfg, started, elapsed, res)
    with open(os.path.join(ROOT, "bench", "RESULTS.md"), "w") as f:
        f.write(text)
    chart(res["fire"], res["machine"]["burst_ms"], os.path.join(ROOT, "bench", "lateness.png"))
    # The raw figures, lateness samples included, for a closer look.
    with open(os.path.join(ROOT, "target", f"bench-{mode}.json"), "w") as f:
        json.dump(res, f, default=str)
    shutil.rmtree(WORK, ignore_errors=True)
    log(f"done in {elapsed:.0f} s: bench/RESULTS.md, bench/lateness.png")


if __name__ == "__main__":
    main()
