//! Nodes and leadership: a store of one host always leads with one node; a shared store grants one
//! lease at a time on its own clock, a new term for each election, refuses a tick under an ended
//! term, keeps node names unique while they are alive, and lets no node whose specs differ from
//! the catalog lead. Runs owned on another host are alive while their owner renews them.

use std::time::Duration;

use jobs::store::{Fence, Lease, NodeBeat, Store, TickRecord, TickResult};

use crate::support::{Fresh, at, backends, database_url, minutely, raw_sql, slot_run, sync};

const LEASE: Duration = Duration::from_secs(10);

/// A second handle on `fresh`'s PostgreSQL database, as another node would have; `None` for SQLite.
fn second(fresh: &Fresh) -> Option<Box<dyn Store>> {
    let url = database_url(fresh)?;
    Some(jobs::store::open_postgres(&url, None).unwrap_or_else(|e| panic!("open {url}: {e}")))
}

fn lead(store: &mut dyn Store, node: &str, term: Option<i64>, hash: &str) -> Option<Lease> {
    store
        .lead(node, term, LEASE, hash)
        .unwrap_or_else(|e| panic!("lead as {node}: {e}"))
}

fn beat(node: &str, owner: &str) -> NodeBeat {
    NodeBeat {
        node: node.into(),
        owner: owner.into(),
        version: "1.0.0".into(),
        labels: vec!["eu".into(), "ssd".into()],
        dead_after_ms: 300_000,
        runs_in_flight: 2,
        spec_hash: Some("f".into()),
    }
}

fn tick(
    store: &mut dyn Store,
    records: &[TickRecord],
    owner: &str,
    ms: i64,
) -> Result<Vec<TickResult>, String> {
    store
        .commit_tick(
            records,
            &[],
            &[],
            owner,
            at(ms),
            &mut |job: &str, seq: i64| Ok(format!("runs/{job}/{seq}")),
        )
        .map_err(|e| format!("{}: {e}", e.code()))
}

#[test]
fn a_store_of_one_host_has_one_node_that_always_leads() {
    for mut fresh in backends() {
        if database_url(&fresh).is_some() {
            continue;
        }
        let store = fresh.store.as_mut();
        let lease = lead(store, "here", None, "f").expect("one host always leads");
        assert!(lease.elected);
        assert_eq!(
            lead(store, "here", Some(lease.term), "g"),
            Some(Lease {
                term: lease.term,
                elected: false
            })
        );
        assert_eq!(
            store
                .join_node(&beat("here", "1@h"), LEASE, &|_| false)
                .expect("join"),
            None
        );
        assert!(store.nodes().expect("nodes").is_empty());
        assert_eq!(store.leader().expect("leader"), None);
    }
}

#[test]
fn one_node_leads_at_a_time_and_each_election_is_a_new_term() {
    for mut fresh in backends() {
        let Some(mut b) = second(&fresh) else {
            continue;
        };
        let a = fresh.store.as_mut();
        let first = lead(a, "a", None, "f").expect("the first node is elected");
        assert!(first.elected);
        assert_eq!(lead(b.as_mut(), "b", None, "f"), None, "a leads");
        let renewed = lead(a, "a", Some(first.term), "f").expect("renewed");
        assert_eq!(
            renewed,
            Lease {
                term: first.term,
                elected: false
            }
        );
        let shown = a.leader().expect("leader").expect("held");
        assert_eq!((shown.node.as_str(), shown.term), ("a", first.term));
        assert!(
            shown.remaining_ms > 8_000 && shown.remaining_ms <= 10_000,
            "{shown:?}"
        );

        // A resignation hands over at once.
        a.resign("b", first.term).expect("not b's to resign");
        assert_eq!(lead(b.as_mut(), "b", None, "f"), None, "still a's");
        a.resign("a", first.term).expect("resign");
        let next = lead(b.as_mut(), "b", None, "f").expect("b is elected");
        assert!(
            next.elected && next.term > first.term,
            "{next:?} after {first:?}"
        );
        // The old term is over: a is not renewed, nor elected again while b's lease lasts.
        assert_eq!(lead(a, "a", Some(first.term), "f"), None);
        // Failed elections take no term: the next one is the one after b's.
        b.resign("b", next.term).expect("resign");
        let third = lead(a, "a", None, "f").expect("a again");
        assert_eq!(third.term, next.term + 1, "{third:?}");
    }
}

#[test]
fn a_lease_that_ran_out_goes_to_the_next_node_and_its_term_claims_nothing() {
    for mut fresh in backends() {
        let Some(mut b) = second(&fresh) else {
            continue;
        };
        sync(&mut fresh, &[("tick", &minutely("tick"))], at(0));
        let a = fresh.store.as_mut();
        let first = lead(a, "a", None, "f").expect("elected");
        a.fence(Some(Fence {
            node: "a".into(),
            term: first.term,
        }));
        let results = tick(a, &[slot_run("tick", at(60_000))], "1@h", 59_000).expect("a leads");
        assert!(
            matches!(results[0], TickResult::Recorded { .. }),
            "{results:?}"
        );

        // a stops renewing (a pause, a partition) and its lease runs out by the store's clock.
        raw_sql(&fresh, "UPDATE leader SET expires_at = expires_at - 20000");
        let a = fresh.store.as_mut();
        let refused =
            tick(a, &[slot_run("tick", at(120_000))], "1@h", 119_000).expect_err("no lease");
        assert!(refused.starts_with("not_leader: "), "{refused}");
        let next = lead(b.as_mut(), "b", None, "f").expect("b takes over");
        assert!(next.term > first.term);
        // a wakes: its term is gone, so neither a renewal nor a tick under it is granted.
        assert_eq!(lead(a, "a", Some(first.term), "f"), None);
        let refused =
            tick(a, &[slot_run("tick", at(120_000))], "1@h", 119_000).expect_err("stale term");
        assert!(refused.starts_with("not_leader: "), "{refused}");
        b.fence(Some(Fence {
            node: "b".into(),
            term: next.term,
        }));
        let results =
            tick(b.as_mut(), &[slot_run("tick", at(120_000))], "2@h", 119_000).expect("b leads");
        assert!(
            matches!(results[0], TickResult::Recorded { seq: 2, .. }),
            "{results:?}"
        );
        let rows = raw_sql(&fresh, "SELECT COUNT(*) FROM runs WHERE job_id = 'tick'");
        assert_eq!(
            rows[0][0].as_deref(),
            Some("2"),
            "one run per slot, the refused ticks none"
        );
    }
}

#[test]
fn a_node_whose_specs_differ_from_the_catalog_never_leads() {
    for mut fresh in backends() {
        let Some(mut b) = second(&fresh) else {
            continue;
        };
        let a = fresh.store.as_mut();
        assert_eq!(
            a.catalog_hash().expect("read"),
            None,
            "an empty store has no catalog"
        );
        let first = lead(a, "a", None, "specs-1").expect("the first leader seeds the catalog");
        assert_eq!(a.catalog_hash().expect("read").as_deref(), Some("specs-1"));
        // The leader's files change: the catalog follows its renewal.
        lead(a, "a", Some(first.term), "specs-2").expect("renewed");
        assert_eq!(a.catalog_hash().expect("read").as_deref(), Some("specs-2"));
        a.resign("a", first.term).expect("resign");
        assert_eq!(
            lead(b.as_mut(), "b", None, "specs-1"),
            None,
            "stale files never lead"
        );
        assert_eq!(lead(b.as_mut(), "b", None, ""), None, "nor empty ones");
        assert!(
            lead(b.as_mut(), "b", None, "specs-2").is_some(),
            "the same files do"
        );
    }
}

#[test]
fn a_live_node_name_is_refused_to_a_second_process_and_freed_when_its_heartbeat_is_old() {
    for mut fresh in backends() {
        let Some(mut b) = second(&fresh) else {
            continue;
        };
        let a = fresh.store.as_mut();
        assert_eq!(
            a.join_node(&beat("n1", "1@h"), LEASE, &|_| false)
                .expect("join"),
            None
        );
        let refused = b
            .join_node(&beat("n1", "2@h"), LEASE, &|_| false)
            .expect_err("the name is alive");
        assert_eq!(refused.code(), "node_name_taken", "{refused}");
        assert!(refused.to_string().contains("1@h"), "{refused}");
        // An owner the caller knows is gone (a dead pid of this host) gives the name up at once.
        let taken = b
            .join_node(&beat("n1", "3@h"), LEASE, &|owner| owner == "1@h")
            .expect("the owner is gone");
        assert_eq!(taken.as_deref(), Some("1@h"));
        let a = fresh.store.as_mut();
        // 1@h was not really gone in this test: it takes its name back the same way.
        a.join_node(&beat("n1", "1@h"), LEASE, &|owner| owner == "3@h")
            .expect("back");
        // The same process joining again (a restart of its store handle) is no second node.
        assert_eq!(
            a.join_node(&beat("n1", "1@h"), LEASE, &|_| false)
                .expect("again"),
            None
        );
        assert!(a.node_heartbeat(&beat("n1", "1@h")).expect("beat"));

        let nodes = b.nodes().expect("nodes");
        assert_eq!(nodes.len(), 1);
        let node = &nodes[0];
        assert_eq!(
            (node.node.as_str(), node.owner.as_str(), node.runs_in_flight),
            ("n1", "1@h", 2)
        );
        assert_eq!(node.labels, ["eu", "ssd"]);
        assert_eq!(node.spec_hash.as_deref(), Some("f"));
        assert!(node.heartbeat_age_ms < 5_000, "{node:?}");

        raw_sql(
            &fresh,
            "UPDATE nodes SET heartbeat_at = heartbeat_at - 20000",
        );
        let previous = b
            .join_node(&beat("n1", "2@h"), LEASE, &|_| false)
            .expect("an old heartbeat frees the name");
        assert_eq!(previous.as_deref(), Some("1@h"));
        let a = fresh.store.as_mut();
        assert!(
            !a.node_heartbeat(&beat("n1", "1@h")).expect("beat"),
            "the name is 2@h's now"
        );
        a.leave_node("n1", "1@h").expect("not its row");
        assert_eq!(b.nodes().expect("nodes").len(), 1);
        b.leave_node("n1", "2@h").expect("leave");
        assert!(b.nodes().expect("nodes").is_empty());
    }
}

#[test]
fn a_run_owned_on_another_host_is_silent_only_once_its_owner_stops_renewing_it() {
    for mut fresh in backends() {
        if database_url(&fresh).is_none() {
            continue;
        }
        sync(&mut fresh, &[("tick", &minutely("tick"))], at(0));
        let store = fresh.store.as_mut();
        tick(
            store,
            &[slot_run("tick", at(60_000))],
            "9@elsewhere",
            59_000,
        )
        .expect("claim");
        let row = |store: &dyn Store| store.run_row("tick", 1).expect("read").expect("there");
        // Claimed at 59 s after the epoch: a claim time long past, and no sign of life yet.
        assert!(row(store).owner_silent, "never renewed, claimed long ago");
        store
            .renew_runs("9@elsewhere", Duration::from_secs(60))
            .expect("renew");
        assert!(!row(store).owner_silent, "just renewed");
        raw_sql(&fresh, "UPDATE runs SET seen_at = seen_at - 61000");
        let store = fresh.store.as_mut();
        assert!(row(store).owner_silent, "silent past its promise");
        // A node's heartbeat renews its runs too.
        store
            .join_node(&beat("far", "9@elsewhere"), LEASE, &|_| false)
            .expect("join");
        assert!(
            store
                .node_heartbeat(&beat("far", "9@elsewhere"))
                .expect("beat")
        );
        assert!(!row(store).owner_silent);
    }
}

#[test]
fn a_shared_store_mirrors_a_runs_events_and_receipt_until_the_run_is_deleted() {
    for mut fresh in backends() {
        sync(&mut fresh, &[("tick", &minutely("tick"))], at(0));
        let name = fresh.name;
        let store = fresh.store.as_mut();
        tick(store, &[slot_run("tick", at(60_000))], "1@h", 59_000).expect("claim");
        let line = |n: i64| (String::from("tick"), 1, n, format!("{{\"seq\":{n}}}"));
        store
            .mirror(
                &[line(1), line(2), ("ghost".into(), 9, 1, "{}".into())],
                &[("tick".into(), 1, "{\"v\":1}".into())],
            )
            .expect("mirror");
        // A line mirrored twice keeps its first text; a newer receipt replaces the older.
        store
            .mirror(
                &[
                    (String::from("tick"), 1, 2, "{\"again\":true}".into()),
                    line(3),
                ],
                &[("tick".into(), 1, "{\"v\":2}".into())],
            )
            .expect("mirror again");
        let events = store.mirrored_events("tick", 1, 1).expect("read");
        let receipt = store.mirrored_receipt("tick", 1).expect("read");
        if !store.mirrors() {
            assert_eq!(name, "sqlite");
            assert!(
                events.is_empty() && receipt.is_none(),
                "{name} mirrors nothing"
            );
            continue;
        }
        assert_eq!(
            events,
            [(2, "{\"seq\":2}".to_owned()), (3, "{\"seq\":3}".to_owned())],
            "{name}: after event 1, in order"
        );
        assert_eq!(receipt.as_deref(), Some("{\"v\":2}"));
        assert!(
            store
                .mirrored_events("ghost", 9, 0)
                .expect("read")
                .is_empty(),
            "no such run"
        );
        let end = jobs::run::RunEnd {
            status: jobs::run::RunStatus::Succeeded,
            attempts: 1,
            exit_code: Some(0),
            signal: None,
            error_code: None,
            message: None,
            started_at: None,
            finished_at: at(61_000),
            duration_ms: 0,
        };
        store.finish_run("tick", 1, &end).expect("finish");
        assert_eq!(store.delete_runs("tick", &[1]).expect("delete"), 1);
        assert!(
            store
                .mirrored_events("tick", 1, 0)
                .expect("read")
                .is_empty(),
            "gone with the run"
        );
        assert_eq!(store.mirrored_receipt("tick", 1).expect("read"), None);
    }
}
