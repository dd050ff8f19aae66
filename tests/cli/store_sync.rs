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

#[test]
fn a_spec_rewritten_in_place_is_read_again_whatever_the_stamp_cache_says() {
    let home = TestHome::new();
    let spec = |word: &str| format!("id: a\ndescription: {word}\nrun:\n  command: [\"true\"]\n");
    home.spec("a.yaml", spec("first"));
    // Older than the cache's margin for files changed just before it is written.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let description = |home: &TestHome| {
        let (list, code) = home.json(&["list"]);
        assert_eq!(code, 0, "{list}");
        list["data"]["jobs"][0]["description"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(description(&home), "first");
    let cache = home.path().join("db/spec-stamps");
    let kept = std::fs::read_to_string(&cache).expect("the stamp cache is kept");
    assert!(kept.lines().any(|l| l.starts_with("a.yaml\t")), "{kept}");
    assert_eq!(description(&home), "first", "from the cache");

    // The same size, and the modification time put back: the change time still moves.
    let path = home.path().join("jobs/a.yaml");
    let modified = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .expect("mtime");
    std::fs::write(&path, spec("again")).expect("rewrite");
    std::fs::File::options()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_modified(modified))
        .expect("set the mtime back");
    assert_eq!(description(&home), "again");

    // A cache that is garbage, or a link planted in its place, is no cache: the files are read,
    // and nothing is written through the link.
    std::fs::write(&cache, "not a cache\n").expect("garbage");
    assert_eq!(description(&home), "again");
    let outside = tempfile::NamedTempFile::new().expect("outside file");
    std::fs::remove_file(&cache).expect("remove cache");
    std::os::unix::fs::symlink(outside.path(), &cache).expect("plant a link");
    assert_eq!(description(&home), "again");
    assert_eq!(
        std::fs::read_to_string(outside.path()).expect("outside"),
        "",
        "not written through the link"
    );
    assert!(
        !std::fs::symlink_metadata(&cache)
            .expect("cache")
            .file_type()
            .is_symlink(),
        "the link is replaced by a file of its own"
    );
}
