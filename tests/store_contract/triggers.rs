//! The triggers part of the store's contract: which jobs' runs trigger which, as the store keeps
//! it from the specs in force.

use crate::support::{Fresh, at, backends, minutely, raw_sql, sync};

fn after(id: &str, upstream: &str) -> String {
    format!("id: {id}\nafter:\n  - job: {upstream}\nrun:\n  command: [\"true\"]\n")
}

fn after_all(id: &str, upstreams: &str) -> String {
    format!("id: {id}\nafter_all: [{upstreams}]\nrun:\n  command: [\"true\"]\n")
}

fn edges(fresh: &Fresh) -> Vec<(String, String)> {
    raw_sql(
        fresh,
        "SELECT upstream, downstream FROM trigger_edges ORDER BY upstream, downstream",
    )
    .into_iter()
    .map(|row| match row.as_slice() {
        [Some(up), Some(down)] => (up.clone(), down.clone()),
        other => panic!("{}: an edge {other:?}", fresh.name),
    })
    .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

#[test]
fn the_edges_follow_the_specs_in_force() {
    for mut fresh in backends() {
        let name = fresh.name;
        sync(
            &mut fresh,
            &[
                ("a", &minutely("a")),
                ("b", &minutely("b")),
                ("c", &after("c", "a")),
                ("d", &after_all("d", "a, b")),
            ],
            at(0),
        );
        assert_eq!(
            edges(&fresh),
            pairs(&[("a", "c"), ("a", "d"), ("b", "d")]),
            "{name}"
        );
        // A downstream whose file is gone triggers nothing.
        let gone = fresh.dir.path().join("jobs").join("d.yaml");
        std::fs::remove_file(&gone).unwrap_or_else(|e| panic!("{e}"));
        sync(&mut fresh, &[("c", &after("c", "b"))], at(1_000));
        assert_eq!(edges(&fresh), pairs(&[("b", "c")]), "{name}");
    }
}

#[test]
fn a_cycle_among_the_stored_specs_is_never_live() {
    for mut fresh in backends() {
        let name = fresh.name;
        sync(
            &mut fresh,
            &[
                ("a", &minutely("a")),
                ("b", &after("b", "a")),
                ("c", &after("c", "a")),
            ],
            at(0),
        );
        assert_eq!(edges(&fresh), pairs(&[("a", "b"), ("a", "c")]), "{name}");
        // A spec the loader would refuse beside the others, stored as an older version might have
        // left it: a after b closes a cycle (a and b trigger each other); c after a is not on it.
        raw_sql(
            &fresh,
            r#"UPDATE jobs SET spec_json = '{"after":[{"job":"b","on":["succeeded"]}]}' WHERE id = 'a'"#,
        );
        // Any change to the specs rebuilds the edges.
        sync(&mut fresh, &[("z", &minutely("z"))], at(1_000));
        assert_eq!(edges(&fresh), pairs(&[("a", "c")]), "{name}");
    }
}

fn succeed(fresh: &mut Fresh, job: &str, ms: i64) -> i64 {
    let name = fresh.name;
    let claimed = crate::support::claim(
        fresh.store.as_mut(),
        job,
        "1@h",
        at(ms),
        1,
        jobs::spec::model::Overlap::Skip,
    );
    let seq = match claimed {
        Ok(jobs::store::Claimed::Running(seq)) => seq,
        other => panic!("{name}: claim {job}: {other:?}"),
    };
    let end = jobs::run::RunEnd {
        status: jobs::run::RunStatus::Succeeded,
        attempts: 1,
        exit_code: Some(0),
        signal: None,
        error_code: None,
        message: None,
        started_at: Some(at(ms)),
        finished_at: at(ms + 10),
        duration_ms: 10,
    };
    fresh
        .store
        .finish_run(job, seq, &end)
        .unwrap_or_else(|e| panic!("{name}: finish {job}#{seq}: {e}"));
    seq
}

fn owed(fresh: &Fresh) -> Vec<(String, String, i64, String)> {
    fresh
        .store
        .owed_triggers()
        .unwrap_or_else(|e| panic!("{}: owed: {e}", fresh.name))
        .into_iter()
        .map(|o| (o.job_id, o.upstream_job, o.upstream_seq, o.upstreams))
        .collect()
}

#[test]
fn an_upstreams_end_owes_its_downstream_runs_and_a_fan_in_waits_for_all() {
    for mut fresh in backends() {
        let name = fresh.name;
        sync(
            &mut fresh,
            &[
                ("a", &minutely("a")),
                ("b", &minutely("b")),
                ("c", &after("c", "a")),
                ("d", &after_all("d", "a, b")),
            ],
            at(0),
        );
        let a1 = succeed(&mut fresh, "a", 1_000);
        assert_eq!(
            owed(&fresh),
            [("c".to_owned(), "a".to_owned(), a1, format!("a#{a1}"))],
            "{name}: c after a; d still waits for b"
        );
        let b1 = succeed(&mut fresh, "b", 2_000);
        assert_eq!(
            owed(&fresh),
            [
                ("c".to_owned(), "a".to_owned(), a1, format!("a#{a1}")),
                ("d".to_owned(), "b".to_owned(), b1, format!("a#{a1},b#{b1}")),
            ],
            "{name}: every upstream of d succeeded"
        );
        let fan_in = raw_sql(&fresh, "SELECT job_id FROM fan_in");
        assert!(
            fan_in.is_empty(),
            "{name}: the count starts again: {fan_in:?}"
        );
    }
}
