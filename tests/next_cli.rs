//! `jobsctl next <id> -n N --after T --json` through the real binary: spec files in a temporary home, the
//! slots checked against hand-computed values in the job's zone (`local`, with the zone's offset) and in
//! UTC (`utc`, seconds precision, `Z`), with the DST note (`null`, `"dst_gap"` or `"dst_fold"`).
//!
//! Every expected slot was worked out by hand from the calendar (2026-01-01 is a Thursday; 2026-06-10 is
//! a Wednesday) and the zones' rules; see tests/schedule.rs for the DST facts. Time is an input: every
//! case passes `--after`.

use std::path::Path;

use assert_cmd::Command;
use serde_json::Value;
use tempfile::TempDir;

/// One `jobsctl next` case: a job (its `schedule:` block in YAML), where to start, and the slots expected as
/// (local, utc, note).
struct Case {
    id: &'static str,
    schedule: &'static str,
    after: &'static str,
    timezone: &'static str,
    slots: &'static [(&'static str, &'static str, Option<&'static str>)],
}

/// 2026-06-10T08:07:30Z, a Wednesday.
const WED: &str = "2026-06-10T08:07:30Z";

const CASES: &[Case] = &[
    Case {
        id: "range",
        schedule: r#"{ cron: "30 8-10 * * *", timezone: UTC }"#,
        after: WED,
        timezone: "UTC",
        slots: &[
            ("2026-06-10T08:30:00+00:00", "2026-06-10T08:30:00Z", None),
            ("2026-06-10T09:30:00+00:00", "2026-06-10T09:30:00Z", None),
            ("2026-06-10T10:30:00+00:00", "2026-06-10T10:30:00Z", None),
        ],
    },
    Case {
        id: "list",
        schedule: r#"{ cron: "0,20,40 * * * *", timezone: UTC }"#,
        after: WED,
        timezone: "UTC",
        slots: &[
            ("2026-06-10T08:20:00+00:00", "2026-06-10T08:20:00Z", None),
            ("2026-06-10T08:40:00+00:00", "2026-06-10T08:40:00Z", None),
            ("2026-06-10T09:00:00+00:00", "2026-06-10T09:00:00Z", None),
        ],
    },
    Case {
        id: "range-step",
        schedule: r#"{ cron: "5-10/2 * * * *", timezone: UTC }"#,
        after: WED,
        timezone: "UTC",
        slots: &[
            ("2026-06-10T08:09:00+00:00", "2026-06-10T08:09:00Z", None),
            ("2026-06-10T09:05:00+00:00", "2026-06-10T09:05:00Z", None),
            ("2026-06-10T09:07:00+00:00", "2026-06-10T09:07:00Z", None),
        ],
    },
    Case {
        id: "hour-step",
        schedule: r#"{ cron: "23 0-20/2 * * *", timezone: UTC }"#,
        after: "2026-06-10T20:30:00Z",
        timezone: "UTC",
        slots: &[
            ("2026-06-11T00:23:00+00:00", "2026-06-11T00:23:00Z", None),
            ("2026-06-11T02:23:00+00:00", "2026-06-11T02:23:00Z", None),
            ("2026-06-11T04:23:00+00:00", "2026-06-11T04:23:00Z", None),
        ],
    },
    Case {
        // From Friday 10:00: the weekend is skipped.
        id: "weekdays",
        schedule: r#"{ cron: "0 9 * * MON-FRI", timezone: UTC }"#,
        after: "2026-06-12T10:00:00Z",
        timezone: "UTC",
        slots: &[
            ("2026-06-15T09:00:00+00:00", "2026-06-15T09:00:00Z", None),
            ("2026-06-16T09:00:00+00:00", "2026-06-16T09:00:00Z", None),
            ("2026-06-17T09:00:00+00:00", "2026-06-17T09:00:00Z", None),
        ],
    },
    Case {
        id: "sundays",
        schedule: r#"{ cron: "0 0 * * SUN", timezone: UTC }"#,
        after: WED,
        timezone: "UTC",
        slots: &[
            ("2026-06-14T00:00:00+00:00", "2026-06-14T00:00:00Z", None),
            ("2026-06-21T00:00:00+00:00", "2026-06-21T00:00:00Z", None),
            ("2026-06-28T00:00:00+00:00", "2026-06-28T00:00:00Z", None),
        ],
    },
    Case {
        id: "first-and-fifteenth",
        schedule: r#"{ cron: "0 0 1,15 * *", timezone: UTC }"#,
        after: WED,
        timezone: "UTC",
        slots: &[
            ("2026-06-15T00:00:00+00:00", "2026-06-15T00:00:00Z", None),
            ("2026-07-01T00:00:00+00:00", "2026-07-01T00:00:00Z", None),
            ("2026-07-15T00:00:00+00:00", "2026-07-15T00:00:00Z", None),
        ],
    },
    Case {
        id: "month-names",
        schedule: r#"{ cron: "0 12 1 JAN,JUL *", timezone: UTC }"#,
        after: WED,
        timezone: "UTC",
        slots: &[
            ("2026-07-01T12:00:00+00:00", "2026-07-01T12:00:00Z", None),
            ("2027-01-01T12:00:00+00:00", "2027-01-01T12:00:00Z", None),
            ("2027-07-01T12:00:00+00:00", "2027-07-01T12:00:00Z", None),
        ],
    },
    Case {
        // Vixie OR: Fridays Jan 2 and 9, and Tuesday the 13th.
        id: "thirteenth-or-friday",
        schedule: r#"{ cron: "0 0 13 * FRI", timezone: UTC }"#,
        after: "2026-01-01T00:00:00Z",
        timezone: "UTC",
        slots: &[
            ("2026-01-02T00:00:00+00:00", "2026-01-02T00:00:00Z", None),
            ("2026-01-09T00:00:00+00:00", "2026-01-09T00:00:00Z", None),
            ("2026-01-13T00:00:00+00:00", "2026-01-13T00:00:00Z", None),
        ],
    },
    Case {
        // Vixie OR: Sun Jun 7 (day 7), then Mondays.
        id: "first-week-or-monday",
        schedule: r#"{ cron: "0 0 1-7 * MON", timezone: UTC }"#,
        after: "2026-06-06T12:00:00Z",
        timezone: "UTC",
        slots: &[
            ("2026-06-07T00:00:00+00:00", "2026-06-07T00:00:00Z", None),
            ("2026-06-08T00:00:00+00:00", "2026-06-08T00:00:00Z", None),
            ("2026-06-15T00:00:00+00:00", "2026-06-15T00:00:00Z", None),
        ],
    },
    Case {
        id: "day-31",
        schedule: r#"{ cron: "0 0 31 * *", timezone: UTC }"#,
        after: "2026-01-31T12:00:00Z",
        timezone: "UTC",
        slots: &[
            ("2026-03-31T00:00:00+00:00", "2026-03-31T00:00:00Z", None),
            ("2026-05-31T00:00:00+00:00", "2026-05-31T00:00:00Z", None),
            ("2026-07-31T00:00:00+00:00", "2026-07-31T00:00:00Z", None),
        ],
    },
    Case {
        id: "leap-day",
        schedule: r#"{ cron: "0 0 29 2 *", timezone: UTC }"#,
        after: "2026-01-01T00:00:00Z",
        timezone: "UTC",
        slots: &[
            ("2028-02-29T00:00:00+00:00", "2028-02-29T00:00:00Z", None),
            ("2032-02-29T00:00:00+00:00", "2032-02-29T00:00:00Z", None),
            ("2036-02-29T00:00:00+00:00", "2036-02-29T00:00:00Z", None),
        ],
    },
    Case {
        id: "last-day",
        schedule: r#"{ cron: "0 0 L * *", timezone: UTC }"#,
        after: "2026-02-01T00:00:00Z",
        timezone: "UTC",
        slots: &[
            ("2026-02-28T00:00:00+00:00", "2026-02-28T00:00:00Z", None),
            ("2026-03-31T00:00:00+00:00", "2026-03-31T00:00:00Z", None),
            ("2026-04-30T00:00:00+00:00", "2026-04-30T00:00:00Z", None),
        ],
    },
    Case {
        // Aug 15 2026 is a Saturday -> Friday the 14th.
        id: "nearest-weekday",
        schedule: r#"{ cron: "0 0 15W * *", timezone: UTC }"#,
        after: "2026-08-01T00:00:00Z",
        timezone: "UTC",
        slots: &[
            ("2026-08-14T00:00:00+00:00", "2026-08-14T00:00:00Z", None),
            ("2026-09-15T00:00:00+00:00", "2026-09-15T00:00:00Z", None),
            ("2026-10-15T00:00:00+00:00", "2026-10-15T00:00:00Z", None),
        ],
    },
    Case {
        id: "second-monday",
        schedule: r#"{ cron: "0 0 * * MON#2", timezone: UTC }"#,
        after: "2026-01-01T00:00:00Z",
        timezone: "UTC",
        slots: &[
            ("2026-01-12T00:00:00+00:00", "2026-01-12T00:00:00Z", None),
            ("2026-02-09T00:00:00+00:00", "2026-02-09T00:00:00Z", None),
            ("2026-03-09T00:00:00+00:00", "2026-03-09T00:00:00Z", None),
        ],
    },
    Case {
        id: "last-friday",
        schedule: r#"{ cron: "0 0 * * 5#L", timezone: UTC }"#,
        after: "2026-01-01T00:00:00Z",
        timezone: "UTC",
        slots: &[
            ("2026-01-30T00:00:00+00:00", "2026-01-30T00:00:00Z", None),
            ("2026-02-27T00:00:00+00:00", "2026-02-27T00:00:00Z", None),
            ("2026-03-27T00:00:00+00:00", "2026-03-27T00:00:00Z", None),
        ],
    },
    Case {
        id: "five-fields",
        schedule: r#"{ cron: "*/15 * * * *", timezone: UTC }"#,
        after: WED,
        timezone: "UTC",
        slots: &[
            ("2026-06-10T08:15:00+00:00", "2026-06-10T08:15:00Z", None),
            ("2026-06-10T08:30:00+00:00", "2026-06-10T08:30:00Z", None),
            ("2026-06-10T08:45:00+00:00", "2026-06-10T08:45:00Z", None),
        ],
    },
    Case {
        id: "six-fields",
        schedule: r#"{ cron: "*/15 * * * * *", timezone: UTC }"#,
        after: WED,
        timezone: "UTC",
        slots: &[
            ("2026-06-10T08:07:45+00:00", "2026-06-10T08:07:45Z", None),
            ("2026-06-10T08:08:00+00:00", "2026-06-10T08:08:00Z", None),
            ("2026-06-10T08:08:15+00:00", "2026-06-10T08:08:15Z", None),
        ],
    },
    Case {
        id: "daily-alias",
        schedule: r#"{ cron: "@daily", timezone: UTC }"#,
        after: WED,
        timezone: "UTC",
        slots: &[
            ("2026-06-11T00:00:00+00:00", "2026-06-11T00:00:00Z", None),
            ("2026-06-12T00:00:00+00:00", "2026-06-12T00:00:00Z", None),
            ("2026-06-13T00:00:00+00:00", "2026-06-13T00:00:00Z", None),
        ],
    },
    Case {
        id: "hourly-alias",
        schedule: r#"{ cron: "@hourly", timezone: UTC }"#,
        after: WED,
        timezone: "UTC",
        slots: &[
            ("2026-06-10T09:00:00+00:00", "2026-06-10T09:00:00Z", None),
            ("2026-06-10T10:00:00+00:00", "2026-06-10T10:00:00Z", None),
            ("2026-06-10T11:00:00+00:00", "2026-06-10T11:00:00Z", None),
        ],
    },
    Case {
        // Wednesday 17:07:30 JST: Thu, Fri, then Mon at 09:00 JST (00:00Z).
        id: "tokyo-weekdays",
        schedule: r#"{ cron: "0 9 * * MON-FRI", timezone: Asia/Tokyo }"#,
        after: WED,
        timezone: "Asia/Tokyo",
        slots: &[
            ("2026-06-11T09:00:00+09:00", "2026-06-11T00:00:00Z", None),
            ("2026-06-12T09:00:00+09:00", "2026-06-12T00:00:00Z", None),
            ("2026-06-15T09:00:00+09:00", "2026-06-15T00:00:00Z", None),
        ],
    },
    Case {
        // Sunday 08:00 JST is Saturday 23:00Z.
        id: "tokyo-sunday",
        schedule: r#"{ cron: "0 8 * * SUN", timezone: Asia/Tokyo }"#,
        after: WED,
        timezone: "Asia/Tokyo",
        slots: &[
            ("2026-06-14T08:00:00+09:00", "2026-06-13T23:00:00Z", None),
            ("2026-06-21T08:00:00+09:00", "2026-06-20T23:00:00Z", None),
            ("2026-06-28T08:00:00+09:00", "2026-06-27T23:00:00Z", None),
        ],
    },
    Case {
        id: "kolkata-morning",
        schedule: r#"{ cron: "0 9 * * *", timezone: Asia/Kolkata }"#,
        after: WED,
        timezone: "Asia/Kolkata",
        slots: &[
            ("2026-06-11T09:00:00+05:30", "2026-06-11T03:30:00Z", None),
            ("2026-06-12T09:00:00+05:30", "2026-06-12T03:30:00Z", None),
            ("2026-06-13T09:00:00+05:30", "2026-06-13T03:30:00Z", None),
        ],
    },
    Case {
        // Midnight on the 1st in Kolkata is 18:30Z on the last day of the month before.
        id: "kolkata-monthly",
        schedule: r#"{ cron: "0 0 1 * *", timezone: Asia/Kolkata }"#,
        after: "2026-06-30T12:00:00Z",
        timezone: "Asia/Kolkata",
        slots: &[
            ("2026-07-01T00:00:00+05:30", "2026-06-30T18:30:00Z", None),
            ("2026-08-01T00:00:00+05:30", "2026-07-31T18:30:00Z", None),
            ("2026-09-01T00:00:00+05:30", "2026-08-31T18:30:00Z", None),
        ],
    },
    Case {
        id: "new-york-summer",
        schedule: r#"{ cron: "0 17 * * FRI", timezone: America/New_York }"#,
        after: WED,
        timezone: "America/New_York",
        slots: &[
            ("2026-06-12T17:00:00-04:00", "2026-06-12T21:00:00Z", None),
            ("2026-06-19T17:00:00-04:00", "2026-06-19T21:00:00Z", None),
            ("2026-06-26T17:00:00-04:00", "2026-06-26T21:00:00Z", None),
        ],
    },
    Case {
        // No timezone with every: shown in UTC; slots on the 15-minute epoch grid.
        id: "every-quarter-hour",
        schedule: "{ every: 15m }",
        after: "2026-05-05T10:07:13Z",
        timezone: "UTC",
        slots: &[
            ("2026-05-05T10:15:00+00:00", "2026-05-05T10:15:00Z", None),
            ("2026-05-05T10:30:00+00:00", "2026-05-05T10:30:00Z", None),
            ("2026-05-05T10:45:00+00:00", "2026-05-05T10:45:00Z", None),
        ],
    },
    Case {
        // Anchor + k x 90 min; 2026-03-02 is winter time in Berlin (CET, UTC+1).
        id: "every-anchored",
        schedule: r#"{ every: 1h30m, anchor: "2026-03-01T00:10:00Z", timezone: Europe/Berlin }"#,
        after: "2026-03-02T05:00:00Z",
        timezone: "Europe/Berlin",
        slots: &[
            ("2026-03-02T07:10:00+01:00", "2026-03-02T06:10:00Z", None),
            ("2026-03-02T08:40:00+01:00", "2026-03-02T07:40:00Z", None),
            ("2026-03-02T10:10:00+01:00", "2026-03-02T09:10:00Z", None),
        ],
    },
    // DST.
    Case {
        // 02:30 does not exist on 2026-03-08: 03:00 EDT, marked dst_gap.
        id: "ny-gap",
        schedule: r#"{ cron: "0 30 2 * * *", timezone: America/New_York }"#,
        after: "2026-03-07T12:00:00Z",
        timezone: "America/New_York",
        slots: &[
            (
                "2026-03-08T03:00:00-04:00",
                "2026-03-08T07:00:00Z",
                Some("dst_gap"),
            ),
            ("2026-03-09T02:30:00-04:00", "2026-03-09T06:30:00Z", None),
            ("2026-03-10T02:30:00-04:00", "2026-03-10T06:30:00Z", None),
        ],
    },
    Case {
        // 01:30 happens twice on 2026-11-01: only the first (EDT), marked dst_fold.
        id: "ny-fold",
        schedule: r#"{ cron: "30 1 * * *", timezone: America/New_York }"#,
        after: "2026-10-31T12:00:00Z",
        timezone: "America/New_York",
        slots: &[
            (
                "2026-11-01T01:30:00-04:00",
                "2026-11-01T05:30:00Z",
                Some("dst_fold"),
            ),
            ("2026-11-02T01:30:00-05:00", "2026-11-02T06:30:00Z", None),
            ("2026-11-03T01:30:00-05:00", "2026-11-03T06:30:00Z", None),
        ],
    },
    Case {
        // An interval pattern fires in both passes of the repeated hour.
        id: "ny-fold-half-hourly",
        schedule: r#"{ cron: "0 */30 * * * *", timezone: America/New_York }"#,
        after: "2026-11-01T04:30:00Z",
        timezone: "America/New_York",
        slots: &[
            (
                "2026-11-01T01:00:00-04:00",
                "2026-11-01T05:00:00Z",
                Some("dst_fold"),
            ),
            (
                "2026-11-01T01:30:00-04:00",
                "2026-11-01T05:30:00Z",
                Some("dst_fold"),
            ),
            (
                "2026-11-01T01:00:00-05:00",
                "2026-11-01T06:00:00Z",
                Some("dst_fold"),
            ),
            (
                "2026-11-01T01:30:00-05:00",
                "2026-11-01T06:30:00Z",
                Some("dst_fold"),
            ),
            ("2026-11-01T02:00:00-05:00", "2026-11-01T07:00:00Z", None),
        ],
    },
    Case {
        // 02:30 on the fall-back day happens once, in EST.
        id: "ny-fall-0230",
        schedule: r#"{ cron: "30 2 * * *", timezone: America/New_York }"#,
        after: "2026-10-31T12:00:00Z",
        timezone: "America/New_York",
        slots: &[
            ("2026-11-01T02:30:00-05:00", "2026-11-01T07:30:00Z", None),
            ("2026-11-02T02:30:00-05:00", "2026-11-02T07:30:00Z", None),
            ("2026-11-03T02:30:00-05:00", "2026-11-03T07:30:00Z", None),
        ],
    },
    Case {
        // --after with an offset (00:30 EST = 05:30Z); hourly skips the missing 02:00.
        id: "ny-spring-hourly",
        schedule: r#"{ cron: "0 0 * * * *", timezone: America/New_York }"#,
        after: "2026-03-08T00:30:00-05:00",
        timezone: "America/New_York",
        slots: &[
            ("2026-03-08T01:00:00-05:00", "2026-03-08T06:00:00Z", None),
            ("2026-03-08T03:00:00-04:00", "2026-03-08T07:00:00Z", None),
            ("2026-03-08T04:00:00-04:00", "2026-03-08T08:00:00Z", None),
        ],
    },
    Case {
        id: "berlin-gap",
        schedule: r#"{ cron: "30 2 * * *", timezone: Europe/Berlin }"#,
        after: "2026-03-28T12:00:00Z",
        timezone: "Europe/Berlin",
        slots: &[
            (
                "2026-03-29T03:00:00+02:00",
                "2026-03-29T01:00:00Z",
                Some("dst_gap"),
            ),
            ("2026-03-30T02:30:00+02:00", "2026-03-30T00:30:00Z", None),
            ("2026-03-31T02:30:00+02:00", "2026-03-31T00:30:00Z", None),
        ],
    },
    Case {
        id: "berlin-fold-hourly",
        schedule: r#"{ cron: "0 0 * * * *", timezone: Europe/Berlin }"#,
        after: "2026-10-24T23:30:00Z",
        timezone: "Europe/Berlin",
        slots: &[
            (
                "2026-10-25T02:00:00+02:00",
                "2026-10-25T00:00:00Z",
                Some("dst_fold"),
            ),
            (
                "2026-10-25T02:00:00+01:00",
                "2026-10-25T01:00:00Z",
                Some("dst_fold"),
            ),
            ("2026-10-25T03:00:00+01:00", "2026-10-25T02:00:00Z", None),
        ],
    },
];

/// A home holding one spec file per case, `jobs/<id>.yaml`.
fn home_with(cases: &[Case]) -> TempDir {
    let home = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => panic!("cannot create a temporary home: {e}"),
    };
    let jobs = home.path().join("jobs");
    if let Err(e) = std::fs::create_dir_all(&jobs) {
        panic!("cannot create {}: {e}", jobs.display());
    }
    for case in cases {
        let yaml = format!(
            "id: {}\nschedule: {}\nrun:\n  command: [\"true\"]\n",
            case.id, case.schedule
        );
        let path = jobs.join(format!("{}.yaml", case.id));
        if let Err(e) = std::fs::write(&path, yaml) {
            panic!("cannot write {}: {e}", path.display());
        }
    }
    home
}

/// Runs `jobsctl --home <home> next <id> -n <count> --after <after> --json`; returns exit code and JSON.
fn next(home: &Path, id: &str, count: usize, after: &str) -> (i32, Value) {
    let mut cmd = match Command::cargo_bin("jobsctl") {
        Ok(cmd) => cmd,
        Err(e) => panic!("the jobs binary is not built: {e}"),
    };
    let output = match cmd
        .arg("--home")
        .arg(home)
        .args([
            "next",
            id,
            "-n",
            &count.to_string(),
            "--after",
            after,
            "--json",
        ])
        .env_remove("JOBS_HOME")
        .env("NO_COLOR", "1")
        .output()
    {
        Ok(output) => output,
        Err(e) => panic!("cannot run jobs: {e}"),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let json = match serde_json::from_str(&stdout) {
        Ok(json) => json,
        Err(e) => panic!(
            "jobs next {id} did not print JSON ({e}):\nstdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&output.stderr)
        ),
    };
    (output.status.code().unwrap_or(-1), json)
}

/// Compares one case's output with its expected slots; returns a description of each difference.
fn check(case: &Case, code: i32, json: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let label = format!("{} ({})", case.id, case.schedule);
    if code != 0 {
        problems.push(format!("{label}: exit code {code}, output {json}"));
        return problems;
    }
    if json["ok"] != Value::Bool(true) {
        problems.push(format!("{label}: ok is not true: {json}"));
    }
    let data = &json["data"];
    if data["id"] != case.id {
        problems.push(format!("{label}: data.id is {}", data["id"]));
    }
    if data["timezone"] != case.timezone {
        problems.push(format!(
            "{label}: data.timezone is {}, expected {}",
            data["timezone"], case.timezone
        ));
    }
    let Some(slots) = data["slots"].as_array() else {
        problems.push(format!("{label}: data.slots is not an array: {data}"));
        return problems;
    };
    if slots.len() != case.slots.len() {
        problems.push(format!(
            "{label}: {} slots, expected {}: {}",
            slots.len(),
            case.slots.len(),
            data["slots"]
        ));
    }
    for (i, (got, (local, utc, note))) in slots.iter().zip(case.slots).enumerate() {
        let expected_note = note.map_or(Value::Null, |n| Value::String(n.to_owned()));
        // The note key is always there, null when there is nothing to say.
        let has_note = got.as_object().is_some_and(|o| o.contains_key("note"));
        if got["local"] != *local || got["utc"] != *utc || got["note"] != expected_note || !has_note
        {
            problems.push(format!(
                "{label}: slot {i} is {got}, expected local {local}, utc {utc}, note {expected_note}"
            ));
        }
    }
    problems
}

#[test]
fn next_prints_the_hand_computed_slots() {
    assert!(CASES.len() >= 20 + 7);
    let home = home_with(CASES);
    let mut problems = Vec::new();
    for case in CASES {
        let (code, json) = next(home.path(), case.id, case.slots.len(), case.after);
        problems.extend(check(case, code, &json));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn next_marks_the_new_york_gap_and_fold() {
    // The two DST cases the job examples rely on, checked on their own so a failure names them.
    let cases: Vec<&Case> = CASES
        .iter()
        .filter(|c| c.id == "ny-gap" || c.id == "ny-fold")
        .collect();
    assert_eq!(cases.len(), 2);
    let home = home_with(CASES);
    for case in cases {
        let (code, json) = next(home.path(), case.id, case.slots.len(), case.after);
        let problems = check(case, code, &json);
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
    // The gap slot's local time is the first instant after the gap, in EDT.
    let (_, json) = next(home.path(), "ny-gap", 1, "2026-03-07T12:00:00Z");
    assert_eq!(
        json["data"]["slots"][0]["local"],
        "2026-03-08T03:00:00-04:00"
    );
    assert_eq!(json["data"]["slots"][0]["note"], "dst_gap");
}

#[test]
fn next_of_an_unknown_job_is_job_not_found() {
    let home = home_with(&CASES[..1]);
    let (code, json) = next(home.path(), "no-such-job", 3, WED);
    assert_eq!(code, 3, "{json}");
    assert_eq!(json["ok"], false, "{json}");
    assert_eq!(json["error"]["code"], "job_not_found", "{json}");
    assert!(json["error"]["message"].is_string(), "{json}");
}
