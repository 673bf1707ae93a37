//! vm-provisioner-libvirt's merges of registry documents: a deep merge of maps, in which
//! lists of objects that all have a `name` are merged item by item by that name (new names
//! appended), and any other value of the later document replaces the earlier one.

use serde_json::{Map, Value};

/// `b` merged into `a` as vmp's `strategic_merge` does.
pub fn strategic_merge(a: &Map<String, Value>, b: &Map<String, Value>) -> Map<String, Value> {
    let mut merged = a.clone();
    for (key, value) in b {
        let combined = match (merged.get(key), value) {
            (Some(Value::Object(old)), Value::Object(new)) => {
                Value::Object(strategic_merge(old, new))
            }
            (Some(Value::Array(old)), Value::Array(new)) => Value::Array(merge_lists(old, new)),
            _ => value.clone(),
        };
        merged.insert(key.clone(), combined);
    }
    merged
}

/// Lists of named objects merge by name; other lists are replaced.
fn merge_lists(a: &[Value], b: &[Value]) -> Vec<Value> {
    let named = |list: &[Value]| list.iter().all(|item| item.get("name").is_some());
    if !(named(a) && named(b)) {
        return b.to_vec();
    }
    let mut merged = a.to_vec();
    for item in b {
        let at = merged
            .iter()
            .position(|old| old.get("name") == item.get("name"));
        match (at, item) {
            (Some(i), Value::Object(new)) => {
                if let Value::Object(old) = &merged[i] {
                    merged[i] = Value::Object(strategic_merge(old, new));
                }
            }
            _ => merged.push(item.clone()),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn merge(a: Value, b: Value) -> Value {
        Value::Object(strategic_merge(
            a.as_object().unwrap(),
            b.as_object().unwrap(),
        ))
    }

    #[test]
    fn merges_named_lists_by_name() {
        let a =
            json!({"vms": [{"name": "a", "x": 1, "d": {"k": 1}}, {"name": "b"}], "tags": ["x"]});
        let b =
            json!({"vms": [{"name": "a", "y": 2, "d": {"j": 2}}, {"name": "c"}], "tags": ["y"]});
        assert_eq!(
            merge(a, b),
            json!({"vms": [{"name": "a", "x": 1, "d": {"k": 1, "j": 2}, "y": 2}, {"name": "b"}, {"name": "c"}], "tags": ["y"]})
        );
    }

    #[test]
    fn later_scalars_and_unnamed_lists_win() {
        let a = json!({"v": 1, "l": [{"name": "a"}], "m": {"k": "old"}});
        let b = json!({"v": 2, "l": [{"x": 1}], "m": "flat"});
        assert_eq!(merge(a, b), json!({"v": 2, "l": [{"x": 1}], "m": "flat"}));
    }
}
