//! The queue of a shared store: the leader's claims for the nodes carry no owner and the spec they
//! were claimed with; a worker takes each run once (two workers at once included), only with every
//! label its spec asks for, and may give back what it never started; a cancel ends a run no node has
//! taken; the last node to stop (and only the last) gives the untaken slots back to the job's
//! cursor; a commit for the nodes wakes the listeners. A store of one host has no queue.

use std::collections::BTreeSet;
use std::time::Duration;

use jobs::store::{NO_OWNER, NodeBeat, Store, Take, TakenRun, TickRecord, TickResult};

use crate::support::{Fresh, at, backends, database_url, minutely, raw_sql, slot_run, sync};

fn take_as(
    store: &mut dyn Store,
    owner: &str,
    node: &str,
    labels: &[&str],
    limit: usize,
) -> Vec<TakenRun> {
    let labels: Vec<String> = labels.iter().map(|l| (*l).to_owned()).collect();
    let take = Take {
        owner,
        node,
        labels: &labels,
        limit,
        dead_after: Duration::from_secs(300),
    };
    store
        .take_runs(&take, &mut |job: &str, seq: i64| {
            Ok(format!("runs/{job}/{seq}"))
        })
        .unwrap_or_else(|e| panic!("take as {node}: {e}"))
}

fn take(store: &mut dyn Store, owner: &str, node: &str, labels: &[&str]) -> Vec<TakenRun> {
    take_as(store, owner, node, labels, 10)
}

/// The good version's hash of each job, as the leader's records carry it.
fn hash(fresh: &Fresh, id: &str) -> String {
    raw_sql(
        fresh,
        &format!("SELECT good_hash FROM jobs WHERE id = '{id}'"),
    )
    .first()
    .and_then(|row| row[0].clone())
    .unwrap_or_else(|| panic!("{id} has a good version"))
}

fn claimed(job: &str, hash: &str, slot_ms: i64) -> TickRecord {
    let mut record = slot_run(job, at(slot_ms));
    if let TickRecord::Run { spec_hash, .. } = &mut record {
        hash.clone_into(spec_hash);
    }
    record
}

fn claim_for_nodes(store: &mut dyn Store, records: &[TickRecord], now_ms: i64) {
    let results = store
        .commit_tick(records, &[], &[], NO_OWNER, at(now_ms), &mut |_, _| {
            panic!("nothing is made for a run claimed for the nodes")
        })
        .unwrap_or_else(|e| panic!("commit: {e}"));
    for result in &results {
        assert!(
            matches!(result, TickResult::Recorded { prepared: None, .. }),
            "{results:?}"
        );
    }
}

fn second(fresh: &Fresh) -> Box<dyn Store> {
    let url = database_url(fresh).unwrap_or_else(|| panic!("a database"));
    jobs::store::open_postgres(&url, None).unwrap_or_else(|e| panic!("open {url}: {e}"))
}

#[test]
fn runs_claimed_for_the_nodes_are_taken_once_by_labels_and_can_be_given_back() {
    for mut fresh in backends() {
        let gpu = "id: gpu\nschedule: {every: 1m}\nrun:\n  command: [\"true\"]\n  nodes: [gpu]\n";
        let both =
            "id: both\nschedule: {every: 1m}\nrun:\n  command: [\"true\"]\n  nodes: [gpu, eu]\n";
        sync(
            &mut fresh,
            &[("any", &minutely("any")), ("gpu", gpu), ("both", both)],
            at(0),
        );
        if database_url(&fresh).is_none() {
            let store = fresh.store.as_mut();
            assert!(take(store, "1@a", "a", &["gpu"]).is_empty(), "no queue");
            assert!(!store.hand_back("any", 1, "1@a", false).expect("hand back"));
            assert!(store.release_untaken("1@a").expect("release").is_empty());
            assert!(store.work_signal().expect("signal").is_none());
            continue;
        }
        let signal = fresh.store.work_signal().expect("listen").expect("a queue");
        // The listener connects on a thread of its own, and says so once: let it settle first.
        std::thread::sleep(Duration::from_millis(800));
        let heard = signal.notified();
        tokio::pin!(heard);
        let records = [
            claimed("any", &hash(&fresh, "any"), 60_000),
            claimed("gpu", &hash(&fresh, "gpu"), 60_000),
            claimed("both", &hash(&fresh, "both"), 60_000),
        ];
        claim_for_nodes(fresh.store.as_mut(), &records, 59_500);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        runtime
            .block_on(async { tokio::time::timeout(Duration::from_secs(5), &mut heard).await })
            .expect("the commit wakes the listeners");
        let waiting = raw_sql(
            &fresh,
            "SELECT job_id, owner, spec_json IS NOT NULL FROM runs ORDER BY job_id",
        );
        let row = |job: &str| [Some(job.to_owned()), Some(String::new()), Some("t".into())];
        assert_eq!(
            waiting,
            [row("any"), row("both"), row("gpu")],
            "no owner, and the spec each was claimed with"
        );

        // A node without labels takes only what asks for none; one with gpu alone not what asks
        // for gpu and eu.
        let store = fresh.store.as_mut();
        let taken = take(store, "1@a", "a", &[]);
        assert_eq!(taken.len(), 1, "{taken:?}");
        let run = &taken[0];
        assert_eq!(
            (
                run.row.job_id.as_str(),
                run.row.owner.as_str(),
                run.row.node.as_deref()
            ),
            ("any", "1@a", Some("a"))
        );
        assert_eq!(run.row.run_dir.as_deref(), Some("runs/any/1"));
        let spec: jobs::spec::JobSpec =
            serde_json::from_str(run.spec_json.as_deref().expect("spec")).expect("a spec");
        assert_eq!(spec.id, "any");
        assert!(take(store, "1@a", "a", &[]).is_empty(), "taken once");
        let gpu_only = take(store, "2@b", "b", &["gpu"]);
        assert_eq!(
            gpu_only
                .iter()
                .map(|t| t.row.job_id.as_str())
                .collect::<Vec<_>>(),
            ["gpu"]
        );
        let spec: jobs::spec::JobSpec =
            serde_json::from_str(gpu_only[0].spec_json.as_deref().expect("spec")).expect("spec");
        assert_eq!(spec.run.nodes, ["gpu"]);
        let both_taken = take(store, "3@c", "c", &["eu", "gpu", "ssd"]);
        assert_eq!(
            both_taken
                .iter()
                .map(|t| t.row.job_id.as_str())
                .collect::<Vec<_>>(),
            ["both"]
        );

        // Only its owner gives a run back, and only before it started.
        assert!(!store.hand_back("any", 1, "2@b", false).expect("not b's"));
        store
            .record_starts(&[("both".to_owned(), 1, at(60_000))])
            .expect("started");
        assert!(!store.hand_back("both", 1, "3@c", false).expect("started"));
        assert!(store.hand_back("any", 1, "1@a", false).expect("a's"));
        let back = raw_sql(
            &fresh,
            "SELECT owner, node IS NULL, run_dir IS NULL FROM runs WHERE job_id = 'any'",
        );
        assert_eq!(
            back,
            [[Some(String::new()), Some("t".into()), Some("t".into())]]
        );
        let store = fresh.store.as_mut();
        let again = take(store, "2@b", "b", &["gpu"]);
        assert_eq!(
            again
                .iter()
                .map(|t| t.row.job_id.as_str())
                .collect::<Vec<_>>(),
            ["any"],
            "another node takes it"
        );
        assert!(store.hand_back("any", 1, "2@b", false).expect("b's"));
        // Taken waiting for an instance, it waits for one again once given back.
        assert!(store.hand_back("gpu", 1, "2@b", true).expect("b's"));
        let status = raw_sql(&fresh, "SELECT status FROM runs WHERE job_id = 'gpu'");
        assert_eq!(status, [[Some("queued".into())]]);

        // A run no node has taken ends with the cancel asked for it.
        let store = fresh.store.as_mut();
        store
            .request_cancel(
                &[("gpu".to_owned(), 1)],
                "me@here",
                Some("not needed"),
                at(61_000),
            )
            .expect("cancel");
        let cancelled = raw_sql(
            &fresh,
            "SELECT status, message FROM runs WHERE job_id = 'gpu'",
        );
        assert_eq!(
            cancelled,
            [[
                Some("cancelled".into()),
                Some("cancelled by me@here: not needed".into())
            ]]
        );

        // While another node may be alive, the last slot no node took stays for its worker; once
        // no other node is, it goes back to the job's cursor.
        raw_sql(
            &fresh,
            "UPDATE jobs SET next_slot = 120000 WHERE id = 'any'",
        );
        let store = fresh.store.as_mut();
        let beat = NodeBeat {
            node: "b".into(),
            owner: "2@b".into(),
            version: "1".into(),
            labels: Vec::new(),
            dead_after_ms: 300_000,
            runs_in_flight: 0,
            spec_hash: None,
        };
        store
            .join_node(&beat, Duration::from_secs(10), &|_| false)
            .expect("join");
        assert!(
            store.release_untaken("1@a").expect("release").is_empty(),
            "b may be alive"
        );
        store.leave_node("b", "2@b").expect("leave");
        assert_eq!(
            store.release_untaken("1@a").expect("release"),
            [("any".to_owned(), 1)]
        );
        let left = raw_sql(
            &fresh,
            "SELECT (SELECT COUNT(*) FROM runs WHERE job_id = 'any'), (SELECT next_slot FROM jobs WHERE id = 'any'),
                    (SELECT owner FROM runs WHERE job_id = 'both')",
        );
        assert_eq!(
            left,
            [[Some("0".into()), Some("60000".into()), Some("3@c".into())]]
        );
    }
}

#[test]
fn two_workers_taking_at_once_never_take_one_run_twice() {
    for mut fresh in backends() {
        let Some(_) = database_url(&fresh) else {
            continue;
        };
        let ids: Vec<String> = (0..40).map(|i| format!("j{i:02}")).collect();
        let specs: Vec<(String, String)> =
            ids.iter().map(|id| (id.clone(), minutely(id))).collect();
        let refs: Vec<(&str, &str)> = specs
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        sync(&mut fresh, &refs, at(0));
        let records: Vec<TickRecord> = ids
            .iter()
            .map(|id| claimed(id, &hash(&fresh, id), 60_000))
            .collect();
        claim_for_nodes(fresh.store.as_mut(), &records, 59_500);
        let workers: Vec<std::thread::JoinHandle<Vec<(String, i64)>>> = ["1@a", "2@b"]
            .into_iter()
            .map(|owner| {
                let mut store = second(&fresh);
                std::thread::spawn(move || {
                    let mut mine = Vec::new();
                    loop {
                        let taken = take_as(store.as_mut(), owner, owner, &[], 3);
                        if taken.is_empty() {
                            return mine;
                        }
                        mine.extend(taken.into_iter().map(|t| (t.row.job_id, t.row.seq)));
                    }
                })
            })
            .collect();
        let mut all = Vec::new();
        for worker in workers {
            all.extend(worker.join().expect("a worker"));
        }
        let distinct: BTreeSet<&(String, i64)> = all.iter().collect();
        assert_eq!(all.len(), 40, "every run taken: {all:?}");
        assert_eq!(distinct.len(), 40, "none twice: {all:?}");
        let unowned = raw_sql(&fresh, "SELECT COUNT(*) FROM runs WHERE owner = ''");
        assert_eq!(unowned, [[Some("0".into())]]);
    }
}
