//! The cancel part of the store's contract: a request is recorded once per run, only for a run in
//! flight, and its owner finds it.

use jobs::run::RunStatus;
use jobs::store::Requested;

use crate::history::{finish, running};
use crate::support::{at, backends, minutely, sync};

#[test]
fn a_request_is_recorded_once_and_only_for_runs_in_flight() {
    for mut fresh in backends() {
        sync(&mut fresh, &[("a", &minutely("a"))], at(0));
        let first = running(&mut fresh, "a", at(1_000));
        let second = running(&mut fresh, "a", at(2_000));
        finish(&mut fresh, "a", second, RunStatus::Succeeded, at(3_000));
        let name = fresh.name;
        let store = fresh.store.as_mut();
        let runs = [
            ("a".to_owned(), first),
            ("a".to_owned(), second),
            ("a".to_owned(), 99),
        ];
        let answers = store
            .request_cancel(&runs, "me@h", Some("why"), at(5_000))
            .expect("request");
        assert_eq!(
            answers,
            [
                Requested::New,
                Requested::NotInFlight(Some(RunStatus::Succeeded)),
                Requested::NotInFlight(None),
            ],
            "{name}"
        );
        let again = store
            .request_cancel(&runs[..1], "you@h", None, at(6_000))
            .expect("again");
        let [Requested::Already(earlier)] = again.as_slice() else {
            panic!("{name}: {again:?}");
        };
        assert_eq!(
            earlier.message(),
            "cancelled by me@h: why",
            "{name}: the first stands"
        );
        let kept = store.cancel_request("a", first).expect("read");
        assert_eq!(kept.as_ref(), Some(earlier), "{name}");
        assert_eq!(
            kept.map(|r| (r.requested_at, r.by)),
            Some((at(5_000), "me@h".to_owned())),
            "{name}"
        );
        assert_eq!(
            store.cancel_request("a", second).expect("read"),
            None,
            "{name}"
        );
        // Every run here is owned by 1@h; a request for an ended run was never recorded.
        assert_eq!(
            store.cancels_for_owner("1@h").expect("owner"),
            [("a".to_owned(), first)],
            "{name}"
        );
        assert!(
            store.cancels_for_owner("2@h").expect("owner").is_empty(),
            "{name}"
        );
        // Once the run ends, its owner has nothing left to carry out.
        finish(&mut fresh, "a", first, RunStatus::Cancelled, at(7_000));
        assert!(
            fresh
                .store
                .cancels_for_owner("1@h")
                .expect("owner")
                .is_empty(),
            "{name}"
        );
    }
}
