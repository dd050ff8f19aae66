//! The outbox part of the store's contract: notifications owed, leased fairly per endpoint, tried,
//! given back, and forgotten.

use chrono::{DateTime, Duration, Utc};
use jobs::duration::SpecDuration;
use jobs::notifier::Event;
use jobs::notifier::HomeFacts;
use jobs::notifier::fanout::{self, Outgoing};
use jobs::run::{RunEnd, RunStatus};
use jobs::spec::model::{HttpUrl, NotifierSpec, NotifyOn, NotifyTarget, Overlap, WebhookFormat};
use jobs::store::{DeliveryState, DeliveryTry, Store};

use crate::support::{at, backends, claim, sync};

fn webhook(url: &str) -> NotifierSpec {
    NotifierSpec {
        target: NotifyTarget::Webhook {
            url: HttpUrl::parse(url).unwrap_or_else(|_| panic!("a url: {url}")),
            format: WebhookFormat::Json,
            include_output: None,
        },
        on: vec![NotifyOn::SchedulerStarted, NotifyOn::SpecInvalid],
        timeout: SpecDuration::from_millis(10_000),
    }
}

fn home_event(url: &str, key: &str, when: DateTime<Utc>) -> Vec<Outgoing> {
    let notifications = fanout::for_home(
        Event::SchedulerStarted,
        &HomeFacts::default(),
        key,
        &[webhook(url)],
        "host",
        when,
    );
    assert_eq!(notifications.len(), 1, "a webhook hears a scheduler start");
    notifications
}

fn owed(store: &mut dyn Store, url: &str, key: &str, when: DateTime<Utc>) {
    store
        .enqueue(&home_event(url, key, when))
        .unwrap_or_else(|e| panic!("enqueue: {e}"));
}

fn all(_: &str) -> bool {
    true
}

fn delivered(when: DateTime<Utc>) -> DeliveryTry {
    DeliveryTry {
        at: when,
        delivered: true,
        http_status: Some(200),
        detail: None,
        took_ms: 3,
        next_try_at: None,
    }
}

fn failed(when: DateTime<Utc>, next: Option<DateTime<Utc>>) -> DeliveryTry {
    DeliveryTry {
        at: when,
        delivered: false,
        http_status: Some(500),
        detail: Some("http 500".into()),
        took_ms: 4,
        next_try_at: next,
    }
}

#[test]
fn a_backlog_behind_one_busy_endpoint_does_not_starve_the_others() {
    for mut fresh in backends() {
        let name = fresh.name;
        let store = fresh.store.as_mut();
        let start = at(1_800_000_000_000);
        // 300 owed to a hung endpoint first, then one to a healthy one.
        for n in 0..300 {
            owed(
                store,
                "http://hung.example:8000/ping",
                &format!("hung-{n}"),
                start + Duration::milliseconds(n),
            );
        }
        owed(
            store,
            "http://ok.example:8000/ping",
            "ok",
            start + Duration::seconds(1),
        );
        let now = start + Duration::seconds(2);
        // The hung endpoint has its two tries in flight already, so nothing more of it is admitted.
        let mut not_hung = |endpoint: &str| !endpoint.contains("hung");
        let taken = store
            .take_due("courier", now, None, 16, 2, &mut not_hung)
            .unwrap_or_else(|e| panic!("{name}: take: {e}"));
        let endpoints: Vec<&str> = taken.iter().map(|t| t.endpoint.as_str()).collect();
        assert_eq!(endpoints, ["http://ok.example:8000"], "{name}");

        // Left to itself, the hung endpoint is given at most two at a time, the oldest first.
        let taken = store
            .take_due("courier", now, None, 16, 2, &mut all)
            .unwrap_or_else(|e| panic!("{name}: take: {e}"));
        assert_eq!(taken.len(), 2, "{name}: {taken:?}");
        assert!(taken.iter().all(|t| t.endpoint.contains("hung")), "{name}");
        assert!(
            taken[0].body.at <= taken[1].body.at,
            "{name}: oldest first: {taken:?}"
        );
        // Those leased are no one else's until their lease ends.
        let more = store
            .take_due("other", now, None, 300, 300, &mut all)
            .unwrap_or_else(|e| panic!("{name}: take: {e}"));
        assert_eq!(more.len(), 298, "{name}");
        let counts = store
            .outbox_counts()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((counts.pending, counts.given_up), (301, 0), "{name}");
    }
}

#[test]
fn a_try_is_recorded_and_leases_given_back_are_anyones_at_once() {
    for mut fresh in backends() {
        let name = fresh.name;
        let store = fresh.store.as_mut();
        let start = at(1_800_000_000_000);
        owed(store, "http://a.example/hook", "one", start);
        owed(store, "http://b.example/hook", "two", start);
        let taken = store
            .take_due("first", start, None, 16, 2, &mut all)
            .unwrap_or_else(|e| panic!("{name}: take: {e}"));
        assert_eq!(taken.len(), 2, "{name}");
        assert!(taken.iter().all(|t| t.tries == 0), "{name}");
        // Enqueuing the same again owes nothing more.
        owed(store, "http://a.example/hook", "one", start);
        assert_eq!(
            store.outbox_counts().map(|c| c.pending).ok(),
            Some(2),
            "{name}"
        );

        // "first" tries the one to a, which fails, and stops: the one to b goes back.
        let a = taken
            .iter()
            .find(|t| t.endpoint.contains("a.example"))
            .unwrap_or_else(|| panic!("{name}: a"));
        // Before the lease on b (the timeout and a margin) runs out.
        let retry_at = start + Duration::seconds(20);
        store
            .record_try(&a.delivery_id, "first", &failed(start, Some(retry_at)))
            .unwrap_or_else(|e| panic!("{name}: record: {e}"));
        store
            .release_leases("first")
            .unwrap_or_else(|e| panic!("{name}: release: {e}"));
        let now = start + Duration::seconds(1);
        let second = store
            .take_due("second", now, None, 16, 2, &mut all)
            .unwrap_or_else(|e| panic!("{name}: take: {e}"));
        let endpoints: Vec<&str> = second.iter().map(|t| t.endpoint.as_str()).collect();
        assert_eq!(
            endpoints.len(),
            1,
            "{name}: only b, a waits for its next try: {second:?}"
        );
        assert!(endpoints[0].contains("b.example"), "{name}: {endpoints:?}");

        // a is due again at its next try, one try made.
        let again = store
            .take_due("second", retry_at, None, 16, 2, &mut all)
            .unwrap_or_else(|e| panic!("{name}: take: {e}"));
        assert_eq!(again.len(), 1, "{name}: {again:?}");
        assert_eq!(
            (again[0].delivery_id.as_str(), again[0].tries),
            (a.delivery_id.as_str(), 1)
        );

        // Delivered, then a late failure recorded by a stalled process: it stays delivered.
        store
            .record_try(&a.delivery_id, "second", &delivered(retry_at))
            .unwrap_or_else(|e| panic!("{name}: record: {e}"));
        store
            .record_try(&a.delivery_id, "first", &failed(retry_at, None))
            .unwrap_or_else(|e| panic!("{name}: record: {e}"));
        // b given up.
        store
            .record_try(&second[0].delivery_id, "second", &failed(now, None))
            .unwrap_or_else(|e| panic!("{name}: record: {e}"));
        let counts = store
            .outbox_counts()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((counts.pending, counts.given_up), (0, 1), "{name}");
        let given_up = store.given_up(10).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(given_up.len(), 1, "{name}");
        assert_eq!(given_up[0].delivery_id, second[0].delivery_id, "{name}");
        assert_eq!(given_up[0].state, DeliveryState::GivenUp, "{name}");
        assert_eq!(
            given_up[0].last_error.as_deref(),
            Some("http 500"),
            "{name}"
        );
        assert_eq!(given_up[0].done_at, Some(now), "{name}");
        assert_eq!(given_up[0].next_try_at, None, "{name}");
        // A try of a notification that is gone is nothing to record.
        store
            .record_try("no-such-id", "first", &delivered(now))
            .unwrap_or_else(|e| panic!("{name}: record: {e}"));
    }
}

#[test]
fn done_home_events_are_forgotten_and_pending_ones_kept() {
    for mut fresh in backends() {
        let name = fresh.name;
        let store = fresh.store.as_mut();
        let start = at(1_767_225_600_000);
        owed(store, "http://a.example/hook", "done", start);
        owed(store, "http://b.example/hook", "pending", start);
        let mut only_a = |endpoint: &str| endpoint.contains("a.example");
        let taken = store
            .take_due("courier", start, None, 16, 2, &mut only_a)
            .unwrap_or_else(|e| panic!("{name}: take: {e}"));
        assert_eq!(taken.len(), 1, "{name}");
        store
            .record_try(&taken[0].delivery_id, "courier", &delivered(start))
            .unwrap_or_else(|e| panic!("{name}: record: {e}"));
        assert_eq!(
            store.forget_home_events(start).ok(),
            Some(0),
            "{name}: not before it was done"
        );
        let later = start + Duration::days(100);
        assert_eq!(store.forget_home_events(later).ok(), Some(1), "{name}");
        assert_eq!(
            store.outbox_counts().map(|c| c.pending).ok(),
            Some(1),
            "{name}"
        );
    }
}

#[test]
fn an_invalid_config_is_announced_once_per_version() {
    for mut fresh in backends() {
        let name = fresh.name;
        let store = fresh.store.as_mut();
        let start = at(1_800_000_000_000);
        let turned = |store: &mut dyn Store, hash: &str, key: &str| {
            store
                .config_turned_invalid(hash, &home_event("http://a.example/hook", key, start))
                .unwrap_or_else(|e| panic!("{name}: {e}"))
        };
        assert!(turned(store, "h1", "k1"), "{name}: new");
        assert!(
            !turned(store, "h1", "k1b"),
            "{name}: the same version again"
        );
        assert_eq!(
            store.outbox_counts().map(|c| c.pending).ok(),
            Some(1),
            "{name}: owed once"
        );
        assert!(turned(store, "h2", "k2"), "{name}: another version");
        assert_eq!(
            store.outbox_counts().map(|c| c.pending).ok(),
            Some(2),
            "{name}"
        );
    }
}

#[test]
fn a_spec_turned_invalid_owes_the_home_notifiers_once_per_version() {
    for mut fresh in backends() {
        let name = fresh.name;
        let dir = fresh.dir.path().join("jobs");
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let notifiers = [webhook("http://team.example/hook")];
        let sync_broken = |fresh: &mut crate::support::Fresh, text: &str, ms: i64| {
            std::fs::write(dir.join("c.yaml"), text).unwrap_or_else(|e| panic!("{e}"));
            let files = jobs::spec::load_dir(&dir, at(ms)).unwrap_or_else(|e| panic!("{e}"));
            fresh
                .store
                .sync_specs(
                    &files,
                    &|f| f.path.display().to_string(),
                    &notifiers,
                    at(ms),
                )
                .unwrap_or_else(|e| panic!("{name}: sync: {e}"))
        };
        let broken = "id: c\nschedule: {every: banana}\nrun:\n  command: [\"true\"]\n";
        assert_eq!(
            sync_broken(&mut fresh, broken, 1_000).invalid,
            ["c"],
            "{name}"
        );
        assert_eq!(
            sync_broken(&mut fresh, broken, 2_000).invalid.len(),
            0,
            "{name}"
        );
        let pending =
            |fresh: &crate::support::Fresh| fresh.store.outbox_counts().map(|c| c.pending).ok();
        assert_eq!(pending(&fresh), Some(1), "{name}");
        let other = "id: c\nschedule: {every: pear}\nrun:\n  command: [\"true\"]\n";
        assert_eq!(
            sync_broken(&mut fresh, other, 3_000).invalid,
            ["c"],
            "{name}"
        );
        assert_eq!(
            pending(&fresh),
            Some(2),
            "{name}: another version of the file"
        );
    }
}

#[test]
fn a_runs_notifications_reach_an_endpoint_in_the_order_owed() {
    for mut fresh in backends() {
        let name = fresh.name;
        let spec = "id: a\nrun:\n  command: [\"true\"]\nnotify:\n  - webhook: http://a.example/hook\n    on: [started, succeeded]\n";
        sync(&mut fresh, &[("a", spec)], at(0));
        let store = fresh.store.as_mut();
        let claimed = claim(store, "a", "1@h", at(1_000), 1, Overlap::Skip);
        assert!(claimed.is_ok(), "{name}: {claimed:?}");
        // Started and ended within the same millisecond: the start is still owed first.
        store
            .record_starts(&[("a".into(), 1, at(2_000))])
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let end = RunEnd {
            status: RunStatus::Succeeded,
            attempts: 1,
            exit_code: Some(0),
            signal: None,
            error_code: None,
            message: None,
            started_at: Some(at(2_000)),
            finished_at: at(2_000),
            duration_ms: 0,
        };
        store
            .finish_run("a", 1, &end)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let records = store
            .notifications_of_run("a", 1)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let events: Vec<&str> = records.iter().map(|r| r.event.as_str()).collect();
        assert_eq!(events, ["started", "succeeded"], "{name}");
        assert_eq!(store.pending_of_run("a", 1).ok(), Some(2), "{name}");

        let taken = store
            .take_due("courier", at(3_000), Some(("a", 1)), 16, 4, &mut all)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            taken.len(),
            1,
            "{name}: the end waits for the start: {taken:?}"
        );
        assert_eq!(taken[0].delivery_id, records[0].delivery_id, "{name}");
        assert_eq!(taken[0].run, Some(("a".to_owned(), 1)), "{name}");
        store
            .record_try(&taken[0].delivery_id, "courier", &delivered(at(3_000)))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let next = store
            .take_due("courier", at(3_000), Some(("a", 1)), 16, 4, &mut all)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(next.len(), 1, "{name}");
        assert_eq!(next[0].delivery_id, records[1].delivery_id, "{name}");
        let records = store
            .notifications_of_run("a", 1)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(records[0].state, DeliveryState::Delivered, "{name}");
        assert_eq!(records[0].tries.len(), 1, "{name}");
        assert_eq!(records[0].tries[0].event, "notify_sent", "{name}");
        assert_eq!(records[0].tries[0].http_status, Some(200), "{name}");
        assert_eq!(records[0].tries[0].took_ms, 3, "{name}");
        assert_eq!(store.pending_of_run("a", 1).ok(), Some(1), "{name}");
    }
}
