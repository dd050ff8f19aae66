//! Syncing spec files into the store: new jobs appear, unchanged specs keep their state, changed
//! schedules drop the pending slot, invalid files keep the last good version, removed files keep
//! their row.

use crate::common::{TestHome, manual_spec};

fn every(id: &str, interval: &str) -> String {
    format!("id: {id}\nschedule:\n  every: {interval}\nrun:\n  command: [\"true\"]\n")
}

/// (present, load_error is set, spec_json is set, next_slot) of a job row.
fn row(home: &TestHome, id: &str) -> (i64, bool, bool, Option<i64>) {
    home.db()
        .query_row(
            "SELECT present, load_error IS NOT NULL, spec_json IS NOT NULL, next_slot FROM jobs WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .expect("job row")
}

fn set_next_slot(home: &TestHome, id: &str, slot: i64) {
    let conn = rusqlite::Connection::open(home.path().join("db/jobs.sqlite3")).expect("open store");
    conn.execute(
        "UPDATE jobs SET next_slot = ?2 WHERE id = ?1",
        rusqlite::params![id, slot],
    )
    .expect("set next_slot");
}

#[test]
fn sync_follows_the_files_and_keeps_what_it_should() {
    let home = TestHome::new();
    home.spec("a.yaml", every("a", "1h"))
        .spec("b.yaml", manual_spec("b"));
    assert_eq!(home.run(&["list"]).code, 0);
    assert_eq!(row(&home, "a"), (1, false, true, None));

    // The scheduler would have set a pending slot; a change that leaves the schedule alone keeps it.
    set_next_slot(&home, "a", 42);
    home.spec(
        "a.yaml",
        format!("{}description: now described\n", every("a", "1h")),
    );
    assert_eq!(home.run(&["list"]).code, 0);
    assert_eq!(
        row(&home, "a"),
        (1, false, true, Some(42)),
        "unchanged schedule keeps its pending slot"
    );

    // A changed schedule drops it, so it is recomputed from now.
    home.spec("a.yaml", every("a", "2h"));
    assert_eq!(home.run(&["list"]).code, 0);
    assert_eq!(
        row(&home, "a"),
        (1, false, true, None),
        "changed schedule recomputes"
    );
    let changed_at: Option<i64> = home
        .db()
        .query_row(
            "SELECT schedule_changed_at FROM jobs WHERE id = 'a'",
            [],
            |r| r.get(0),
        )
        .expect("row");
    assert!(changed_at.is_some(), "the change is recorded");

    // An invalid file keeps the last good version and records its problems.
    home.spec(
        "a.yaml",
        "id: a\nschedule:\n  every: 2h\nrun:\n  command: [\"true\"]\npolicy:\n  max_instances: 0\n",
    );
    let (list, code) = home.json(&["list"]);
    assert_eq!(code, 0);
    assert_eq!(row(&home, "a"), (1, true, true, None));
    let a = list["data"]["jobs"]
        .as_array()
        .and_then(|j| j.iter().find(|j| j["id"] == "a"))
        .expect("a listed");
    assert_eq!(a["state"], "active", "the last good version keeps running");
    assert_eq!(a["schedule"], "every 2h");
    assert_eq!(a["problems"][0]["pointer"], "/policy/max_instances");

    // A removed file keeps its row, marked removed.
    home.remove_spec("b.yaml");
    let (list, _) = home.json(&["list"]);
    assert_eq!(row(&home, "b"), (0, false, true, None));
    let b = list["data"]["jobs"]
        .as_array()
        .and_then(|j| j.iter().find(|j| j["id"] == "b"))
        .expect("b listed");
    assert_eq!(b["state"], "removed");

    // And it comes back when the file does.
    home.spec("b.yaml", manual_spec("b"));
    home.run(&["list"]);
    assert_eq!(row(&home, "b"), (1, false, true, None));
}

#[test]
fn a_spec_that_was_never_valid_is_listed_as_invalid() {
    let home = TestHome::new();
    home.spec("broken.yaml", "id: broken\nrun: {}\n");
    let (list, code) = home.json(&["list"]);
    assert_eq!(code, 0, "list still works");
    assert_eq!(list["data"]["jobs"][0]["state"], "invalid");
    assert_eq!(row(&home, "broken"), (1, true, false, None));
    let outcome = home.run(&["list"]);
    assert!(
        outcome
            .stdout
            .contains("jobs/broken.yaml: spec has 1 problem(s)"),
        "{}",
        outcome.stdout
    );
}

#[test]
fn an_unchanged_home_writes_nothing() {
    let home = TestHome::new();
    home.spec("a.yaml", every("a", "1h"));
    home.run(&["list"]);
    let before: i64 = home
        .db()
        .query_row("SELECT updated_at FROM jobs WHERE id = 'a'", [], |r| {
            r.get(0)
        })
        .expect("row");
    std::thread::sleep(std::time::Duration::from_millis(5)); // so a rewrite would show a later updated_at
    home.run(&["list"]);
    let after: i64 = home
        .db()
        .query_row("SELECT updated_at FROM jobs WHERE id = 'a'", [], |r| {
            r.get(0)
        })
        .expect("row");
    assert_eq!(before, after);
}
