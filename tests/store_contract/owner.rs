//! The owner part of the store's contract: the scheduler's row is claimed, renewed and released
//! only by its owner, on the store's clock.

use chrono::{Duration, Utc};

use crate::support::backends;

#[test]
fn the_owner_row_is_renewed_and_released_only_by_its_owner() {
    for mut fresh in backends() {
        let name = fresh.name;
        let store = fresh.store.as_mut();
        assert_eq!(store.owner().expect("read"), None, "{name}");
        let before = Utc::now() - Duration::minutes(1);
        store.claim_owner("41@alpha", "1.0.0").expect("claim");
        let owner = store.owner().expect("read").expect("claimed");
        assert_eq!(
            (owner.pid, owner.host.as_str(), owner.version.as_str()),
            (41, "alpha", "1.0.0"),
            "{name}"
        );
        assert_eq!(owner.started_at, owner.heartbeat_at, "{name}: one instant");
        // The store's clock: this test's server runs beside it, so the clocks agree within a minute.
        let after = Utc::now() + Duration::minutes(1);
        assert!(
            before < owner.started_at && owner.started_at < after,
            "{name}: {owner:?}"
        );

        assert!(
            !store.heartbeat("41@beta").expect("beat"),
            "{name}: another host"
        );
        assert!(
            !store.heartbeat("42@alpha").expect("beat"),
            "{name}: another pid"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(store.heartbeat("41@alpha").expect("beat"), "{name}");
        let beaten = store.owner().expect("read").expect("still");
        assert_eq!(beaten.started_at, owner.started_at, "{name}");
        assert!(
            beaten.heartbeat_at > owner.heartbeat_at,
            "{name}: {beaten:?}"
        );

        store.release_owner("41@beta").expect("release");
        assert!(
            store.owner().expect("read").is_some(),
            "{name}: not its row"
        );
        // A successor replaces the row; its predecessor can no longer renew or clear it.
        store.claim_owner("7@beta", "1.1.0").expect("successor");
        assert!(!store.heartbeat("41@alpha").expect("beat"), "{name}");
        store.release_owner("41@alpha").expect("release");
        let successor = store.owner().expect("read").expect("kept");
        assert_eq!(
            (successor.pid, successor.host.as_str()),
            (7, "beta"),
            "{name}"
        );
        store.release_owner("7@beta").expect("release");
        assert_eq!(store.owner().expect("read"), None, "{name}");

        assert!(
            store.claim_owner("alpha", "1.0.0").is_err(),
            "{name}: not pid@host"
        );
        assert!(store.heartbeat("x@alpha").is_err(), "{name}: not pid@host");
    }
}

#[test]
fn a_postgresql_store_connects_again_after_its_connection_is_cut() {
    for fresh in crate::support::backends() {
        if crate::support::database_url(&fresh).is_none() {
            continue;
        }
        assert!(fresh.store.job_rows().is_ok());
        crate::support::raw_sql(
            &fresh,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
        // The call that finds the connection gone may fail; the store is back by the next one.
        let first = fresh.store.job_rows();
        let second = fresh.store.job_rows();
        assert!(
            second.is_ok(),
            "first: {first:?}, second: {:?}",
            second.as_ref().err().map(ToString::to_string)
        );
    }
}
