//! The queue of a shared store: the leader's claims for the nodes carry no owner and the spec they
//! were claimed with; a worker takes each run once, only with the labels its spec asks for, and
//! may give back what it never started; the last node to stop gives the untaken slots back to the
//! job's cursor; a commit for the nodes wakes the listeners. A store of one host has no queue.

use std::time::Duration;

use jobs::store::{NO_OWNER, Store, Take, TakenRun, TickRecord, TickResult};

use crate::support::{at, backends, database_url, minutely, raw_sql, slot_run, sync};

fn take(store: &mut dyn Store, owner: &str, node: &str, labels: &[&str]) -> Vec<TakenRun> {
    let labels: Vec<String> = labels.iter().map(|l| (*l).to_owned()).collect();
    let take = Take {
        owner,
        node,
        labels: &labels,
        limit: 10,
        dead_after: Duration::from_secs(300),
        now: at(60_000),
    };
    store
        .take_runs(&take, &mut |job: &str, seq: i64| {
            Ok(format!("runs/{job}/{seq}"))
        })
        .unwrap_or_else(|e| panic!("take as {node}: {e}"))
}

fn claimed(job: &str, hash: &str, slot_ms: i64) -> TickRecord {
    let mut record = slot_run(job, at(slot_ms));
    if let TickRecord::Run { spec_hash, .. } = &mut record {
        hash.clone_into(spec_hash);
    }
    record
}

#[test]
fn runs_claimed_for_the_nodes_are_taken_once_by_labels_and_can_be_given_back() {
    for mut fresh in backends() {
        let gpu = "id: gpu\nschedule: {every: 1m}\nrun:\n  command: [\"true\"]\n  nodes: [gpu]\n";
        sync(
            &mut fresh,
            &[("any", &minutely("any")), ("gpu", gpu)],
            at(0),
        );
        if database_url(&fresh).is_none() {
            let store = fresh.store.as_mut();
            assert!(take(store, "1@a", "a", &["gpu"]).is_empty(), "no queue");
            assert!(!store.hand_back("any", 1, "1@a").expect("hand back"));
            assert!(store.release_untaken().expect("release").is_empty());
            assert!(store.work_signal().expect("signal").is_none());
            continue;
        }
        let hashes = raw_sql(&fresh, "SELECT id, good_hash FROM jobs ORDER BY id");
        let hash = |id: &str| -> String {
            hashes
                .iter()
                .find(|row| row[0].as_deref() == Some(id))
                .and_then(|row| row[1].clone())
                .unwrap_or_else(|| panic!("{id} has a good version"))
        };
        let signal = fresh.store.work_signal().expect("listen").expect("a queue");
        let heard = signal.notified();
        tokio::pin!(heard);
        // The listener connects on a thread of its own: give it a moment before the commit.
        std::thread::sleep(Duration::from_millis(500));
        let store = fresh.store.as_mut();
        let records = [
            claimed("any", &hash("any"), 60_000),
            claimed("gpu", &hash("gpu"), 60_000),
        ];
        let results = store
            .commit_tick(&records, &[], &[], NO_OWNER, at(59_500), &mut |_, _| {
                panic!("nothing is made for a run claimed for the nodes")
            })
            .expect("commit");
        for result in &results {
            assert!(
                matches!(result, TickResult::Recorded { prepared: None, .. }),
                "{results:?}"
            );
        }
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
        assert_eq!(
            waiting,
            [
                [Some("any".into()), Some(String::new()), Some("t".into())],
                [Some("gpu".into()), Some(String::new()), Some("t".into())],
            ],
            "no owner, and the spec each was claimed with"
        );

        // A node without the label takes only what asks for none.
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
        let gpu_run = take(store, "2@b", "b", &["gpu", "eu"]);
        assert_eq!(gpu_run.len(), 1);
        assert_eq!(gpu_run[0].row.job_id, "gpu");
        let spec: jobs::spec::JobSpec =
            serde_json::from_str(gpu_run[0].spec_json.as_deref().expect("spec")).expect("a spec");
        assert_eq!(spec.run.nodes, ["gpu"]);

        // Only its owner gives a run back, and only before it started.
        assert!(!store.hand_back("any", 1, "2@b").expect("not b's"));
        assert!(store.hand_back("any", 1, "1@a").expect("a's"));
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
        assert_eq!(again.len(), 1, "another node takes it");
        assert!(store.hand_back("any", 1, "2@b").expect("b's"));

        // The last node to stop gives the untaken slot back to the job's cursor; the run b holds
        // stays b's.
        raw_sql(
            &fresh,
            "UPDATE jobs SET next_slot = 120000 WHERE id = 'any'",
        );
        let store = fresh.store.as_mut();
        assert_eq!(
            store.release_untaken().expect("release"),
            [("any".to_owned(), 1)]
        );
        let left = raw_sql(
            &fresh,
            "SELECT (SELECT COUNT(*) FROM runs WHERE job_id = 'any'), (SELECT next_slot FROM jobs WHERE id = 'any'),
                    (SELECT owner FROM runs WHERE job_id = 'gpu')",
        );
        assert_eq!(
            left,
            [[Some("0".into()), Some("60000".into()), Some("2@b".into())]]
        );
    }
}
