//! The defaults a home's `config.yaml` gives every spec, and merging them into a spec before it is
//! checked. Owns the merge rule (a spec's own value wins, field by field; a list is replaced whole);
//! must not read files or know where the defaults came from.

use serde_json::{Map, Value};

use crate::digest::content_hash;

/// Values to fill into every spec that leaves them out, as the config's `defaults:` mapping.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Defaults {
    values: Map<String, Value>,
    /// A hash of the values, mixed into each spec's content hash: a spec whose defaults changed is a
    /// changed spec, checked again and synced like an edit of its file.
    hash: String,
}

impl Defaults {
    /// Defaults from the config's `defaults:` mapping, already checked against the config schema.
    pub fn new(values: Map<String, Value>) -> Self {
        let hash = if values.is_empty() {
            String::new()
        } else {
            content_hash(canonical(&Value::Object(values.clone())).as_bytes())
        };
        Self { values, hash }
    }

    pub fn values(&self) -> &Map<String, Value> {
        &self.values
    }

    /// The content hash a spec file of these `bytes` has under these defaults: the file's own hash
    /// when there are none, so homes without a config keep the hashes they always had.
    pub fn spec_hash(&self, bytes: &[u8]) -> String {
        self.spec_hash_of(&content_hash(bytes))
    }

    /// As [`Defaults::spec_hash`], from the hash of the file's own bytes.
    pub fn spec_hash_of(&self, own: &str) -> String {
        if self.hash.is_empty() {
            own.to_owned()
        } else {
            content_hash(format!("{own} with defaults {}", self.hash).as_bytes())
        }
    }

    /// Fills what `spec` leaves out. Mappings merge key by key, recursively (a spec that sets
    /// `retry.max_attempts` still gets the default `retry.backoff`); anything else, lists included,
    /// is taken whole from the spec when it has it, so `notify: []` turns a default list off.
    pub fn apply(&self, spec: &mut Map<String, Value>) {
        merge(spec, &self.values);
    }
}

fn merge(into: &mut Map<String, Value>, defaults: &Map<String, Value>) {
    for (key, default) in defaults {
        match (into.get_mut(key), default) {
            (None, _) => {
                into.insert(key.clone(), default.clone());
            }
            (Some(Value::Object(own)), Value::Object(default)) => merge(own, default),
            // The spec's own value, whatever its type: a wrong type is the schema's to report.
            (Some(_), _) => {}
        }
    }
}

/// JSON with every mapping's keys sorted, so the hash does not depend on the order they were written.
fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|key| {
                    format!(
                        "{}:{}",
                        Value::String(key.clone()),
                        canonical(&map[key.as_str()])
                    )
                })
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn a_spec_keeps_its_own_fields_and_gets_the_ones_it_leaves_out() {
        let defaults = Defaults::new(map(json!({
            "run": {"timeout": "1h", "kill_grace": "30s"},
            "retry": {"max_attempts": 3, "backoff": "1m"},
            "retention": {"keep_last": 50},
        })));
        let mut spec = map(json!({
            "id": "a",
            "run": {"command": ["true"], "timeout": "5m"},
            "retry": {"max_attempts": 1},
        }));
        defaults.apply(&mut spec);
        assert_eq!(
            Value::Object(spec),
            json!({
                "id": "a",
                "run": {"command": ["true"], "timeout": "5m", "kill_grace": "30s"},
                "retry": {"max_attempts": 1, "backoff": "1m"},
                "retention": {"keep_last": 50},
            })
        );
    }

    #[test]
    fn a_list_in_the_spec_replaces_the_default_list_whole() {
        let defaults = Defaults::new(map(json!({"notify": [{"webhook": "http://a/"}]})));
        let mut spec = map(json!({"notify": []}));
        defaults.apply(&mut spec);
        assert_eq!(Value::Object(spec), json!({"notify": []}));
    }

    #[test]
    fn a_field_of_the_wrong_type_is_left_for_the_schema_to_report() {
        let defaults = Defaults::new(map(json!({"retry": {"backoff": "1m"}})));
        let mut spec = map(json!({"retry": "often"}));
        defaults.apply(&mut spec);
        assert_eq!(Value::Object(spec), json!({"retry": "often"}));
    }

    #[test]
    fn no_defaults_leave_a_files_hash_as_it_was_and_any_defaults_change_it() {
        let bytes = b"id: a\n";
        assert_eq!(Defaults::default().spec_hash(bytes), content_hash(bytes));
        let one = Defaults::new(map(json!({"retention": {"keep_last": 5, "keep_days": 2}})));
        let same = Defaults::new(map(json!({"retention": {"keep_days": 2, "keep_last": 5}})));
        let other = Defaults::new(map(json!({"retention": {"keep_last": 6, "keep_days": 2}})));
        assert_ne!(one.spec_hash(bytes), content_hash(bytes));
        assert_eq!(one.spec_hash(bytes), same.spec_hash(bytes));
        assert_ne!(one.spec_hash(bytes), other.spec_hash(bytes));
    }
}
