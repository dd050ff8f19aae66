//! What a spec sync changes in the `jobs` table, decided without SQL: the plan that brings the
//! stored rows in line with the loaded files, and what a spec found invalid owes the home's
//! notifiers. Shared by every backend, which reads the rows and writes the changes; must not touch
//! a database.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::notifier::fanout::{self, Outgoing};
use crate::notifier::{Event, HomeFacts, problems_message};
use crate::spec::SpecFile;
use crate::spec::load::loader_fingerprint;
use crate::spec::model::NotifierSpec;

/// One change a sync makes to the `jobs` table.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Change {
    Insert {
        id: String,
        path: String,
        hash: String,
        spec: Option<String>,
        problems: Option<String>,
    },
    Good {
        id: String,
        path: String,
        hash: String,
        spec: String,
        schedule_changed: bool,
    },
    Invalid {
        id: String,
        path: String,
        hash: String,
        problems: String,
    },
    Removed {
        id: String,
    },
}

/// The columns a sync compares against.
pub(super) struct SyncState {
    pub spec_path: String,
    pub spec_hash: String,
    pub good_hash: Option<String>,
    pub checked_by: Option<String>,
    pub spec_json: Option<String>,
    pub invalid: bool,
    pub present: bool,
}

/// Whether syncing `files` would change anything in a store whose jobs are `rows` (read with
/// [`crate::store::JobStore::job_rows`]): the same judgement as the sync's own first look, made on
/// rows a caller already holds, so an unchanged home is not read from the store twice.
pub fn would_change(
    rows: &[crate::store::JobRow],
    files: &[SpecFile],
    display_path: &dyn Fn(&SpecFile) -> String,
) -> bool {
    // A file without a row is a change, and planning every insert (each spec serialized) only to
    // throw the plan away cost a first start at 100,000 specs a third of a second and 100 MB.
    let ids: HashSet<&str> = rows.iter().map(|row| row.id.as_str()).collect();
    if files
        .iter()
        .any(|file| file.stem_id.as_deref().is_some_and(|id| !ids.contains(id)))
    {
        return true;
    }
    let state: HashMap<String, SyncState> = rows
        .iter()
        .map(|row| {
            (
                row.id.clone(),
                SyncState {
                    spec_path: row.spec_path.clone(),
                    spec_hash: row.spec_hash.clone(),
                    good_hash: row.good_hash.clone(),
                    checked_by: row.checked_by.clone(),
                    // Only a change needs the old spec, and this only asks whether there is one.
                    spec_json: None,
                    invalid: row.load_error.is_some(),
                    present: row.present,
                },
            )
        })
        .collect();
    !plan(&state, files, display_path).is_empty()
}

/// Pure: the changes that bring `rows` in line with `files`. The first file of an id wins, so a
/// duplicate (`a.yaml` beside `a.yml`) never disturbs the job.
pub(super) fn plan(
    rows: &HashMap<String, SyncState>,
    files: &[SpecFile],
    display_path: &dyn Fn(&SpecFile) -> String,
) -> Vec<Change> {
    let mut changes = Vec::new();
    let mut seen = HashSet::new();
    for file in files {
        let Some(id) = &file.stem_id else { continue };
        if !seen.insert(id.as_str()) {
            continue;
        }
        let path = display_path(file);
        let row = rows.get(id);
        match (&file.outcome, row) {
            (Ok(loaded), None) => changes.push(Change::Insert {
                id: id.clone(),
                path,
                hash: file.hash.clone(),
                spec: Some(loaded.json().to_string()),
                problems: None,
            }),
            (Ok(loaded), Some(row)) => {
                // A spec checked by another version of the loader is stored again, so that its
                // defaults are this version's.
                let unchanged = row.good_hash.as_deref() == Some(file.hash.as_str())
                    && row.spec_hash == file.hash
                    && !row.invalid
                    && row.present
                    && row.spec_path == path
                    && row.checked_by.as_deref() == Some(loader_fingerprint());
                if !unchanged {
                    let old_spec: Option<Value> = row
                        .spec_json
                        .as_deref()
                        .and_then(|t| serde_json::from_str(t).ok());
                    let old_schedule = old_spec
                        .as_ref()
                        .map(|s| s.get("schedule").unwrap_or(&Value::Null));
                    changes.push(Change::Good {
                        id: id.clone(),
                        path,
                        hash: file.hash.clone(),
                        spec: loaded.json().to_string(),
                        schedule_changed: old_schedule
                            != Some(
                                &serde_json::to_value(&loaded.spec.schedule).unwrap_or_default(),
                            ),
                    });
                }
            }
            (Err(problems), row) => {
                let problems = serde_json::to_string(problems).unwrap_or_else(|_| "[]".into());
                match row {
                    None => changes.push(Change::Insert {
                        id: id.clone(),
                        path,
                        hash: file.hash.clone(),
                        spec: None,
                        problems: Some(problems),
                    }),
                    Some(row)
                        if row.spec_hash != file.hash
                            || !row.invalid
                            || !row.present
                            || row.spec_path != path =>
                    {
                        changes.push(Change::Invalid {
                            id: id.clone(),
                            path,
                            hash: file.hash.clone(),
                            problems,
                        });
                    }
                    Some(_) => {}
                }
            }
        }
    }
    let mut gone: Vec<&String> = rows
        .iter()
        .filter(|(id, row)| row.present && !seen.contains(id.as_str()))
        .map(|(id, _)| id)
        .collect();
    gone.sort();
    changes.extend(
        gone.into_iter()
            .map(|id| Change::Removed { id: id.clone() }),
    );
    changes
}

/// What a change that finds a spec invalid owes the home's notifiers (`spec_invalid`), once per
/// version of the file (its path and content hash name the occurrence, so the delivery id repeats
/// and the outbox keeps the first).
pub(super) fn announce_invalid(
    change: &Change,
    notifiers: &[NotifierSpec],
    now: DateTime<Utc>,
) -> Option<Vec<Outgoing>> {
    let (id, path, hash, problems) = match change {
        Change::Insert {
            id,
            path,
            hash,
            problems: Some(problems),
            ..
        }
        | Change::Invalid {
            id,
            path,
            hash,
            problems,
        } => (id, path, hash, problems),
        _ => return None,
    };
    if notifiers.is_empty() {
        return None;
    }
    let problems = serde_json::from_str::<Vec<Value>>(problems).unwrap_or_default();
    let message = problems_message(problems.iter().filter_map(|p| {
        Some((
            p.get("line").and_then(Value::as_u64),
            p.get("message")?.as_str()?,
        ))
    }));
    let facts = HomeFacts {
        job_id: Some(id.clone()),
        path: Some(path.clone()),
        message: Some(message),
    };
    Some(fanout::for_home(
        Event::SpecInvalid,
        &facts,
        &format!("{path}:{hash}"),
        notifiers,
        &crate::run::host(),
        now,
    ))
}
