//! The home's config.yaml: defaults every spec gets, checked like a spec, its last good version in
//! force while it is invalid.

use crate::common::{TestHome, manual_spec};

fn retention(home: &TestHome, job: &str) -> serde_json::Value {
    let (json, code) = home.json(&["show", job]);
    assert_eq!(code, 0, "{json}");
    json["data"]["retention"].clone()
}

#[test]
fn defaults_fill_what_a_spec_leaves_out_and_a_specs_own_value_wins() {
    let home = TestHome::new();
    std::fs::write(
        home.path().join("config.yaml"),
        "defaults:\n  retention:\n    keep_last: 2\n    keep_days: 7\n  run:\n    timeout: 1h\n",
    )
    .expect("write config");
    home.spec("plain.yaml", manual_spec("plain"));
    home.spec(
        "own.yaml",
        "id: own\nrun:\n  command: [\"true\"]\n  timeout: 5m\nretention:\n  keep_last: 9\n",
    );
    assert_eq!(
        retention(&home, "plain"),
        serde_json::json!({"keep_last": 2, "keep_days": 7})
    );
    assert_eq!(
        retention(&home, "own"),
        serde_json::json!({"keep_last": 9, "keep_days": 7})
    );
    let (json, _) = home.json(&["show", "own"]);
    assert_eq!(json["data"]["run"]["timeout"], "5m", "{json}");
    let (json, _) = home.json(&["show", "plain"]);
    assert_eq!(json["data"]["run"]["timeout"], "1h", "{json}");
}

#[test]
fn validate_reports_a_bad_config_at_its_position_and_the_last_good_one_stays_in_force() {
    let home = TestHome::new();
    let config = home.path().join("config.yaml");
    std::fs::write(&config, "defaults:\n  retention:\n    keep_last: 2\n").expect("write");
    home.spec("a.yaml", manual_spec("a"));
    assert_eq!(retention(&home, "a"), serde_json::json!({"keep_last": 2}));

    std::fs::write(&config, "defaults:\n  retention:\n    keep_lst: 3\n").expect("write");
    let outcome = home.run(&["validate"]);
    assert_eq!(outcome.code, 4, "{}{}", outcome.stdout, outcome.stderr);
    assert!(
        outcome.stdout.contains(
            "config.yaml:3:5: /defaults/retention/keep_lst: unknown field \"keep_lst\"; did you mean \"keep_last\"?"
        ),
        "{}",
        outcome.stdout
    );
    let (json, _) = home.json(&["validate", config.to_str().expect("utf-8")]);
    assert_eq!(json["data"]["invalid"], 1, "{json}");
    assert_eq!(
        retention(&home, "a"),
        serde_json::json!({"keep_last": 2}),
        "the last good config stays in force"
    );

    std::fs::remove_file(&config).expect("remove");
    assert_eq!(
        retention(&home, "a"),
        serde_json::json!({}),
        "without a config there are no defaults"
    );
    assert_eq!(home.run(&["validate"]).code, 0);
}

#[test]
fn a_home_without_a_config_or_with_an_empty_one_runs_as_before() {
    let home = TestHome::new();
    home.spec("a.yaml", manual_spec("a"));
    let before = home.count("SELECT COUNT(*) FROM home_config");
    assert_eq!(before, 0);
    std::fs::write(home.path().join("config.yaml"), "# nothing yet\n").expect("write");
    let outcome = home.run(&["run", "a"]);
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert_eq!(retention(&home, "a"), serde_json::json!({}));
}

#[test]
fn the_scheduler_notices_a_config_change_at_once_not_at_its_next_rescan() {
    let home = TestHome::new();
    home.spec("a.yaml", manual_spec("a"));
    let scheduler = crate::common::start_scheduler(&home, &[]);
    crate::common::wait_until("the scheduler to start", 10, || {
        crate::common::scheduler_log(&home).contains("scheduler started")
    });
    std::fs::write(
        home.path().join("config.yaml"),
        "defaults:\n  retention:\n    keep_last: 4\n",
    )
    .expect("write config");
    // The periodic rescan comes every 30 s; the watch sees the file within a second or two.
    crate::common::wait_until("the new default in the stored spec", 10, || {
        home.count(
            "SELECT COUNT(*) FROM jobs WHERE id = 'a' AND spec_json LIKE '%\"keep_last\":4%'",
        ) == 1
    });
    assert_eq!(crate::common::stop(scheduler), 0);
}

#[test]
fn a_default_notify_list_reaches_specs_without_their_own_and_an_empty_list_opts_out() {
    let home = TestHome::new();
    std::fs::write(
        home.path().join("config.yaml"),
        "defaults:\n  notify:\n    - webhook: http://127.0.0.1:9/team-hook\n",
    )
    .expect("write config");
    home.spec("plain.yaml", manual_spec("plain"));
    home.spec(
        "quiet.yaml",
        "id: quiet\nrun:\n  command: [\"true\"]\nnotify: []\n",
    );
    assert_eq!(home.run(&["validate"]).code, 0);
    assert_eq!(home.run(&["list"]).code, 0);
    let with_hook = |id: &str| {
        home.count(&format!(
            "SELECT COUNT(*) FROM jobs WHERE id = '{id}' AND spec_json LIKE '%team-hook%'"
        ))
    };
    assert_eq!(with_hook("plain"), 1);
    assert_eq!(with_hook("quiet"), 0);
}
