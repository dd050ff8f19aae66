#!/usr/bin/env python3
"""The APScheduler side of the benchmarks, driven by bench/harness.py (run it with the bench venv).

Every mode builds the same scheduler: APScheduler 3.11 BackgroundScheduler, one SQLAlchemyJobStore on a
SQLite file, one ThreadPoolExecutor, UTC. Job defaults mirror the `jobs` specs of the same workload:
misfire_grace_time 1 s, coalesce True, max_instances 1.

Modes (each prints "ready <unix time>" on stdout when the scheduler is ready, then runs until SIGTERM):
  startup  --store F --jobs N     add N cron jobs "0 0 3 * * *" unless the store holds them already, start
  fire     --store F --jobs N --out R
                                  N jobs due every second (CronTrigger second='*'), each spawning `true`;
                                  on SIGTERM writes what ran, was missed or skipped to R (JSON)
  catchup  --store F              start on a store made by `mkstore` (the harness watches the store)
  mkstore  --store F --jobs N --next T
                                  write N every-minute cron jobs whose next run time is T (unix seconds)
                                  straight into the store, in one transaction, as add_job would store them
"""

import argparse
import json
import pickle
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.job import Job
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

DEFAULTS = {"misfire_grace_time": 1, "coalesce": True, "max_instances": 1}


def fire():
    """The job: spawn `true` and wait for it. Returns the wall time just before the spawn, the same
    moment `jobs` records as an attempt's started_at (taken just before it spawns the command)."""
    started = time.time()
    subprocess.run(["true"], check=False)
    return started


def scheduler(store, workers):
    return BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(url=f"sqlite:///{store}")},
        executors={"default": ThreadPoolExecutor(max_workers=workers)},
        job_defaults=DEFAULTS,
        timezone=timezone.utc,
    )


def wait_for_term():
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    while not done.wait(0.5):
        pass


def ready():
    print(f"ready {time.time():.6f}", flush=True)


def startup(args):
    sched = scheduler(args.store, 10)
    sched.start(paused=True)
    if sched.get_job("job-00000") is None:
        for i in range(args.jobs):
            sched.add_job(
                fire,
                CronTrigger(second=0, minute=0, hour=3, timezone=timezone.utc),
                id=f"job-{i:05d}",
            )
    sched.resume()
    ready()
    wait_for_term()
    sched.shutdown(wait=False)


def fire_mode(args):
    executed, missed, skipped, errors = [], [], [], []

    def listen(event):
        if event.code == EVENT_JOB_EXECUTED:
            executed.append((event.job_id, event.scheduled_run_time.timestamp(), event.retval))
        elif event.code == EVENT_JOB_MISSED:
            missed.append((event.job_id, event.scheduled_run_time.timestamp()))
        elif event.code == EVENT_JOB_MAX_INSTANCES:
            skipped.extend((event.job_id, t.timestamp()) for t in event.scheduled_run_times)
        elif event.code == EVENT_JOB_ERROR:
            errors.append((event.job_id, event.scheduled_run_time.timestamp(), repr(event.exception)))

    sched = scheduler(args.store, args.workers or args.jobs)
    sched.add_listener(
        listen, EVENT_JOB_EXECUTED | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES | EVENT_JOB_ERROR
    )
    sched.start(paused=True)
    for i in range(args.jobs):
        sched.add_job(fire, CronTrigger(second="*", timezone=timezone.utc), id=f"job-{i:05d}")
    sched.resume()
    ready()
    wait_for_term()
    sched.shutdown(wait=True)
    with open(args.out, "w") as out:
        json.dump({"executed": executed, "missed": missed, "skipped": skipped, "errors": errors}, out)


def mkstore(args):
    store = SQLAlchemyJobStore(url=f"sqlite:///{args.store}")
    sched = scheduler(args.store, 10)
    store.start(sched, "default")
    next_run = datetime.fromtimestamp(args.next, timezone.utc)
    rows = []
    for i in range(args.jobs):
        job = Job(
            sched,
            id=f"job-{i:05d}",
            func=fire,
            trigger=CronTrigger(minute="*", timezone=timezone.utc),
            executor="default",
            args=(),
            kwargs={},
            name="fire",
            next_run_time=next_run,
            **DEFAULTS,
        )
        rows.append(
            {
                "id": job.id,
                "next_run_time": next_run.timestamp(),
                "job_state": pickle.dumps(job.__getstate__(), store.pickle_protocol),
            }
        )
    with store.engine.begin() as conn:
        conn.execute(store.jobs_t.insert(), rows)


def catchup(args):
    sched = scheduler(args.store, 10)
    sched.start()
    ready()
    wait_for_term()
    sched.shutdown(wait=False)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["startup", "fire", "catchup", "mkstore"])
    parser.add_argument("--store", required=True)
    parser.add_argument("--jobs", type=int, default=0)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--next", type=float, default=0)
    parser.add_argument("--out")
    args = parser.parse_args()
    {"startup": startup, "fire": fire_mode, "catchup": catchup, "mkstore": mkstore}[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())
