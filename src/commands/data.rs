//! The `Data` of a command: a metaflow tree checked node by node, or one
//! module's data checked against Kazoo's schema for it plus Crossbar's rules.

use serde_json::{Map, Value};

use crate::kapi::schema::{SchemaError, schemas};

/// A metaflow node (`metaflow.json`, recursive through `children`), and each
/// node's `data` against `metaflows.<module>` where Kazoo has that schema.
/// Modules without one (Konami Pro's, say) are passed on unchecked.
pub fn check_flow(node: &Value, at: &str) -> Vec<SchemaError> {
    let mut errors = schemas()
        .validate("metaflow", node, at)
        .err()
        .unwrap_or_default();
    check_modules(node, at, &mut errors);
    errors
}

fn check_modules(node: &Value, at: &str, errors: &mut Vec<SchemaError>) {
    let Some(obj) = node.as_object() else {
        return;
    };
    let data = obj.get("data");
    match obj.get("module").and_then(Value::as_str) {
        Some(module) => {
            let schema = format!("metaflows.{module}");
            if schemas().has(&schema) {
                let empty = Value::Object(Map::new());
                let data = data.unwrap_or(&empty);
                if data.is_object() {
                    let at = format!("{at}/data");
                    errors.extend(
                        schemas()
                            .validate(&schema, data, &at)
                            .err()
                            .unwrap_or_default(),
                    );
                }
            }
        }
        // The channels doc's own example nests the node one level too deep
        // (WIRE.md §9.20): point at the misplaced module, not only the gap.
        None => {
            if let Some(depth) = misplaced_module(obj) {
                errors.push(SchemaError {
                    path: format!("{at}{}/module", "/data".repeat(depth)),
                    message: format!(
                        "module is nested {depth} level(s) too deep: it belongs at {at}/module"
                    ),
                });
            }
        }
    }
    if let Some(children) = obj.get("children").and_then(Value::as_object) {
        for (key, child) in children {
            check_modules(
                child,
                &format!("{at}/children/{}", pointer_token(key)),
                errors,
            );
        }
    }
}

/// How many `data` levels down a node without `module` has one, if any.
fn misplaced_module(node: &Map<String, Value>) -> Option<usize> {
    let mut at = node;
    for depth in 1..=4 {
        at = at.get("data")?.as_object()?;
        if at.contains_key("module") {
            return Some(depth);
        }
    }
    None
}

/// One action's `Data`: `metaflows.<action>` where it exists (not for `park`,
/// `unpark`), then what Crossbar itself insists on before publishing (WIRE.md §6.2).
pub fn check_action(action: &str, data: &Value, at: &str) -> Vec<SchemaError> {
    let schema = format!("metaflows.{action}");
    let mut errors = if schemas().has(&schema) {
        schemas()
            .validate(&schema, data, at)
            .err()
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let required: &[&str] = match action {
        "transfer" => &["target"],
        "callflow" => &["id"],
        "intercept" => &["target_type", "target_id"],
        _ => &[],
    };
    for key in required {
        let present = data
            .get(*key)
            .is_some_and(|v| !v.is_null() && v.as_str() != Some(""));
        if !present {
            errors.push(SchemaError {
                path: format!("{at}/{key}"),
                message: format!("{action} needs {key}"),
            });
        }
    }
    errors
}

/// Fills the one default of `metaflow.json`, `data: {}`, on every node, as
/// Crossbar's validation does before it publishes (WIRE.md §6.2's `flow`).
pub fn with_default_data(mut node: Value) -> Value {
    if let Some(obj) = node.as_object_mut() {
        obj.entry("data")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(Value::Object(children)) = obj.get_mut("children") {
            for child in children.values_mut() {
                *child = with_default_data(std::mem::take(child));
            }
        }
    }
    node
}

/// A JSON-pointer reference token (RFC 6901: `~` → `~0`, `/` → `~1`).
fn pointer_token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn paths(errors: Vec<SchemaError>) -> Vec<String> {
        errors.into_iter().map(|e| e.path).collect()
    }

    #[test]
    fn valid_trees_pass() {
        let tree = json!({
            "module": "hold", "data": {"unhold_key": "5"},
            "children": {"_": {"module": "transfer", "data": {"target": "2600", "leg": "bleg"}}}
        });
        assert!(check_flow(&tree, "/Data").is_empty());
        assert!(check_flow(&json!({"module": "konami_pro_only"}), "/Data").is_empty());
    }

    #[test]
    fn nested_too_deep_names_the_misplaced_module() {
        let p = paths(check_flow(&json!({"data": {"module": "hangup"}}), "/Data"));
        assert_eq!(p, ["/Data/module", "/Data/data/module"]);
        // The doc's whole PUT body pasted as the node.
        let p = paths(check_flow(
            &json!({"data": {"data": {"module": "hangup"}}}),
            "/Data",
        ));
        assert_eq!(p, ["/Data/module", "/Data/data/data/module"]);
        let p = paths(check_flow(
            &json!({"data": {"x": {"module": "hangup"}}}),
            "/Data",
        ));
        assert_eq!(p, ["/Data/module"]);
    }

    #[test]
    fn module_data_is_checked_down_the_children() {
        let tree = json!({
            "module": "hangup",
            "children": {"1/2": {"module": "play", "data": {"leg": "everyone"}},
                         "3": {"module": "pivot"}}
        });
        let p = paths(check_flow(&tree, "/Data"));
        assert_eq!(
            p,
            [
                "/Data/children/1~12/data/leg",
                "/Data/children/3/data/voice_url"
            ]
        );
        let p = paths(check_flow(&json!({"module": "hold", "data": []}), "/Data"));
        assert_eq!(p, ["/Data/data"]);
    }

    #[test]
    fn crossbar_rules_for_actions() {
        assert_eq!(
            paths(check_action("transfer", &json!({}), "/Data")),
            ["/Data/target"]
        );
        assert_eq!(
            paths(check_action("transfer", &json!({"target": ""}), "/Data")),
            ["/Data/target"]
        );
        assert_eq!(
            paths(check_action("transfer", &json!({"target": 2600}), "/Data")),
            ["/Data/target"]
        );
        assert!(check_action("transfer", &json!({"target": "2600"}), "/Data").is_empty());
        assert_eq!(
            paths(check_action("callflow", &json!({}), "/Data")),
            ["/Data/id"]
        );
        assert_eq!(
            paths(check_action(
                "intercept",
                &json!({"target_type": "phone"}),
                "/Data"
            )),
            ["/Data/target_type", "/Data/target_id"]
        );
        assert_eq!(
            paths(check_action("audio_level", &json!({"level": 9}), "/Data")),
            ["/Data/level"]
        );
        assert!(check_action("park", &json!({"anything": 1}), "/Data").is_empty());
    }

    #[test]
    fn default_data_on_every_node_only() {
        let tree = json!({"module": "a", "children": {"x": {"module": "b", "data": {"k": 1}}, "y": {"module": "c"}}});
        assert_eq!(
            with_default_data(tree),
            json!({"module": "a", "data": {}, "children": {
                "x": {"module": "b", "data": {"k": 1}}, "y": {"module": "c", "data": {}}}})
        );
    }
}
