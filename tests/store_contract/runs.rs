//! The runs part of the store's contract.

use jobs::spec::model::Overlap;
use jobs::store::Claimed;

use crate::support::{at, backends, claim, minutely, sync};

#[test]
fn a_manual_claim_counts_against_max_instances_and_numbers_runs_from_one() {
    for mut fresh in backends() {
        sync(&mut fresh, &[("a", &minutely("a"))], at(0));
        let store = fresh.store.as_mut();
        let first = claim(store, "a", "1@h", at(1_000), 1, Overlap::Skip);
        assert!(
            matches!(first, Ok(Claimed::Running(1))),
            "{}: {first:?}",
            fresh.name
        );
        let second = claim(store, "a", "1@h", at(2_000), 1, Overlap::Skip);
        assert!(
            second
                .as_ref()
                .is_err_and(|e| e.starts_with("max_instances_reached")),
            "{}: {second:?}",
            fresh.name
        );
        let queued = claim(store, "a", "1@h", at(3_000), 1, Overlap::Queue);
        assert!(
            matches!(queued, Ok(Claimed::Queued(2))),
            "{}: {queued:?}",
            fresh.name
        );
    }
}
