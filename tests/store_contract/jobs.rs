//! The jobs part of the store's contract: syncing specs, the operator's state, pending slots and run
//! counters.

use jobs::store::{JobRow, OperatorState, StateChange, Store, SyncReport};

use crate::support::{Fresh, at, backends, minutely, sync};

fn ids(list: &[String]) -> Vec<&str> {
    list.iter().map(String::as_str).collect()
}

fn row(fresh: &Fresh, id: &str) -> JobRow {
    fresh
        .store
        .job_row(id)
        .unwrap_or_else(|e| panic!("{}: read {id}: {e}", fresh.name))
        .unwrap_or_else(|| panic!("{}: no job {id}", fresh.name))
}

fn remove_spec(fresh: &Fresh, stem: &str) {
    let path = fresh.dir.path().join("jobs").join(format!("{stem}.yaml"));
    std::fs::remove_file(&path).unwrap_or_else(|e| panic!("remove {}: {e}", path.display()));
}

fn every_5m(id: &str) -> String {
    format!("id: {id}\nschedule: {{every: 5m}}\nrun:\n  command: [\"true\"]\n")
}

fn other_command(id: &str) -> String {
    format!("id: {id}\nschedule: {{every: 1m}}\nrun:\n  command: [\"false\"]\n")
}

const BROKEN: &str = "id: c\nschedule: {every: banana}\nrun:\n  command: [\"true\"]\n";

#[test]
fn a_sync_adds_new_jobs_updates_changed_ones_keeps_a_broken_ones_last_good_version_and_marks_gone_ones_removed()
 {
    for mut fresh in backends() {
        let name = fresh.name;
        let first = sync(
            &mut fresh,
            &[
                ("a", &minutely("a")),
                ("b", &minutely("b")),
                ("c", &minutely("c")),
                ("d", &minutely("d")),
            ],
            at(1_000),
        );
        assert_eq!(ids(&first.added), ["a", "b", "c", "d"], "{name}");
        assert!(
            first.updated.is_empty() && first.invalid.is_empty(),
            "{name}: {first:?}"
        );
        let before: Vec<JobRow> = fresh
            .store
            .job_rows()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(before.len(), 4, "{name}");
        let good_c = row(&fresh, "c");
        assert_eq!(
            good_c.good_hash.as_deref(),
            Some(good_c.spec_hash.as_str()),
            "{name}"
        );
        assert!(good_c.present && good_c.load_error.is_none(), "{name}");
        assert_eq!(good_c.state, OperatorState::Active, "{name}");
        assert_eq!(good_c.created_at, at(1_000), "{name}");
        fresh
            .store
            .set_next_slots(&[
                ("a".into(), Some(at(60_000))),
                ("b".into(), Some(at(60_000))),
            ])
            .unwrap_or_else(|e| panic!("{name}: {e}"));

        // a: a new command (same schedule); b: a new schedule; c: broken; d: gone.
        remove_spec(&fresh, "d");
        let second = sync(
            &mut fresh,
            &[
                ("a", &other_command("a")),
                ("b", &every_5m("b")),
                ("c", BROKEN),
            ],
            at(2_000),
        );
        assert_eq!(
            second,
            SyncReport {
                added: vec![],
                updated: vec!["a".into(), "b".into()],
                rescheduled: vec!["b".into()],
                invalid: vec!["c".into()],
                removed: vec!["d".into()],
            },
            "{name}"
        );
        let a = row(&fresh, "a");
        assert_eq!(a.next_slot, Some(at(60_000)), "{name}: a keeps its slot");
        assert!(
            a.spec_json.as_deref().is_some_and(|s| s.contains("false")),
            "{name}"
        );
        assert_eq!(a.updated_at, at(2_000), "{name}");
        let b = row(&fresh, "b");
        assert_eq!(
            b.next_slot, None,
            "{name}: a new schedule drops the pending slot"
        );
        assert_eq!(
            b.last_slot,
            Some(at(59_999)),
            "{name}: the slot before the dropped one"
        );
        assert_eq!(b.schedule_changed_at, Some(at(2_000)), "{name}");
        let c = row(&fresh, "c");
        assert!(c.load_error.is_some(), "{name}: c records its problems");
        assert_eq!(
            c.spec_json, good_c.spec_json,
            "{name}: c keeps its last good spec"
        );
        assert_eq!(c.good_hash, good_c.good_hash, "{name}");
        assert_ne!(
            c.spec_hash, good_c.spec_hash,
            "{name}: the broken file's hash is recorded"
        );
        let d = row(&fresh, "d");
        assert!(!d.present, "{name}: d is marked removed");
        assert_eq!(d.removed_at, Some(at(2_000)), "{name}");

        // The same files again: nothing to do, nothing written.
        let rows = fresh
            .store
            .job_rows()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let third = sync(
            &mut fresh,
            &[
                ("a", &other_command("a")),
                ("b", &every_5m("b")),
                ("c", BROKEN),
            ],
            at(3_000),
        );
        assert!(
            third.is_empty() && third.rescheduled.is_empty(),
            "{name}: {third:?}"
        );
        assert_eq!(
            fresh
                .store
                .job_rows()
                .unwrap_or_else(|e| panic!("{name}: {e}")),
            rows,
            "{name}: an idempotent sync writes nothing"
        );

        // d back, c fixed.
        let fourth = sync(
            &mut fresh,
            &[("c", &minutely("c")), ("d", &minutely("d"))],
            at(4_000),
        );
        assert_eq!(ids(&fourth.updated), ["c", "d"], "{name}: {fourth:?}");
        let d = row(&fresh, "d");
        assert!(d.present && d.removed_at.is_none(), "{name}");
        assert!(row(&fresh, "c").load_error.is_none(), "{name}");
    }
}

#[test]
fn a_spec_never_valid_is_recorded_with_its_problems_and_no_version_in_force() {
    for mut fresh in backends() {
        let name = fresh.name;
        let report = sync(&mut fresh, &[("c", BROKEN)], at(1_000));
        assert_eq!(ids(&report.invalid), ["c"], "{name}: {report:?}");
        let c = row(&fresh, "c");
        assert!(
            c.spec_json.is_none() && c.good_hash.is_none() && c.checked_by.is_none(),
            "{name}"
        );
        assert!(
            c.load_error
                .as_ref()
                .is_some_and(serde_json::Value::is_array),
            "{name}"
        );
        let again = sync(&mut fresh, &[("c", BROKEN)], at(2_000));
        assert!(again.is_empty(), "{name}: {again:?}");
    }
}

fn change(
    store: &mut dyn Store,
    id: &str,
    change: StateChange,
    by: &str,
    ms: i64,
) -> OperatorState {
    store
        .change_state(id, change, by, Some("why"), at(ms))
        .unwrap_or_else(|e| panic!("{id}: {change:?}: {e}"))
}

#[test]
fn state_changes_apply_once_and_a_change_that_changes_nothing_writes_nothing() {
    for mut fresh in backends() {
        let name = fresh.name;
        sync(&mut fresh, &[("a", &minutely("a"))], at(0));
        let store = fresh.store.as_mut();
        store
            .set_next_slots(&[("a".into(), Some(at(60_000)))])
            .unwrap_or_else(|e| panic!("{name}: {e}"));

        assert_eq!(
            change(store, "a", StateChange::Pause, "ann", 1_000),
            OperatorState::Active
        );
        let paused = store
            .job_row("a")
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("{name}"));
        assert_eq!(paused.state, OperatorState::Paused, "{name}");
        assert_eq!(paused.paused_at, Some(at(1_000)), "{name}");
        assert_eq!(paused.state_by.as_deref(), Some("ann"), "{name}");
        assert_eq!(paused.state_reason.as_deref(), Some("why"), "{name}");

        // Pausing again keeps who, when and why.
        assert_eq!(
            change(store, "a", StateChange::Pause, "bob", 2_000),
            OperatorState::Paused
        );
        assert_eq!(
            store.job_row("a").ok().flatten(),
            Some(paused.clone()),
            "{name}"
        );

        let resume = StateChange::Resume {
            catchup: Some(jobs::policy::Catchup::All),
        };
        assert_eq!(
            change(store, "a", resume, "bob", 3_000),
            OperatorState::Paused
        );
        let resumed = store
            .job_row("a")
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("{name}"));
        assert_eq!(resumed.state, OperatorState::Active, "{name}");
        assert_eq!(resumed.catchup, Some(jobs::policy::Catchup::All), "{name}");
        assert_eq!(
            resumed.paused_at,
            Some(at(1_000)),
            "{name}: kept for the catch-up"
        );
        assert_eq!(resumed.state_at, Some(at(3_000)), "{name}");

        // Resuming an active job does nothing (the catch-up is not owed twice).
        assert_eq!(
            change(store, "a", resume, "cy", 4_000),
            OperatorState::Active
        );
        assert_eq!(store.job_row("a").ok().flatten(), Some(resumed), "{name}");

        // A pause then a resume without catch-up forgets the pause.
        change(store, "a", StateChange::Pause, "ann", 5_000);
        change(
            store,
            "a",
            StateChange::Resume { catchup: None },
            "ann",
            6_000,
        );
        let plain = store
            .job_row("a")
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("{name}"));
        assert_eq!((plain.catchup, plain.paused_at), (None, None), "{name}");

        assert_eq!(
            change(store, "a", StateChange::Disable, "dee", 7_000),
            OperatorState::Active
        );
        let disabled = store
            .job_row("a")
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("{name}"));
        assert_eq!(disabled.state, OperatorState::Disabled, "{name}");
        assert_eq!(
            change(store, "a", StateChange::Disable, "eve", 8_000),
            OperatorState::Disabled
        );
        assert_eq!(store.job_row("a").ok().flatten(), Some(disabled), "{name}");

        // Enabling a disabled job forgets its slots: nothing from the disabled time runs.
        assert_eq!(
            change(store, "a", StateChange::Enable, "fay", 9_000),
            OperatorState::Disabled
        );
        let enabled = store
            .job_row("a")
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("{name}"));
        assert_eq!(enabled.state, OperatorState::Active, "{name}");
        assert_eq!(
            (enabled.next_slot, enabled.last_slot),
            (None, None),
            "{name}"
        );
        assert_eq!(enabled.state_by.as_deref(), Some("fay"), "{name}");

        let unknown = store.change_state("nope", StateChange::Pause, "ann", None, at(10_000));
        assert!(unknown.is_err(), "{name}: {unknown:?}");
    }
}

#[test]
fn next_slots_are_set_and_run_counters_never_lowered() {
    for mut fresh in backends() {
        let name = fresh.name;
        sync(
            &mut fresh,
            &[("a", &minutely("a")), ("b", &minutely("b"))],
            at(0),
        );
        let store = fresh.store.as_mut();
        store
            .set_next_slots(&[("a".into(), Some(at(60_000))), ("b".into(), None)])
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let slot = |store: &dyn Store, id: &str| {
            store.job_row(id).ok().flatten().and_then(|r| r.next_slot)
        };
        assert_eq!(slot(store, "a"), Some(at(60_000)), "{name}");
        assert_eq!(slot(store, "b"), None, "{name}");

        let counters = |store: &dyn Store| {
            let mut all = store.run_counters().unwrap_or_else(|e| panic!("{e}"));
            all.sort();
            all
        };
        assert_eq!(
            counters(store),
            [("a".into(), 0), ("b".into(), 0)],
            "{name}"
        );
        store
            .raise_run_counter("a", 7)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        store
            .raise_run_counter("a", 3)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        store
            .raise_run_counter("b", 2)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            counters(store),
            [("a".into(), 7), ("b".into(), 2)],
            "{name}"
        );
    }
}
