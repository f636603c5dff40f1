//! JSON Schema validation of the messages we read and write. Every file of
//! `schemas/` is compiled in (see `build.rs`); `$ref`s resolve between them by
//! `_id`, never over the network.

use std::collections::HashMap;
use std::sync::LazyLock;

use jsonschema::error::ValidationErrorKind;
use jsonschema::{Draft, Validator};
use serde::Serialize;
use serde_json::Value;

/// `(id, text)` for every `schemas/*.json`.
pub const FILES: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/schemas.rs"));

/// One failed check, addressed by a JSON pointer into the validated document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SchemaError {
    pub path: String,
    pub message: String,
}

pub struct Schemas {
    validators: HashMap<&'static str, Validator>,
}

fn base_uri(id: &str) -> String {
    format!("json-schema:///{id}")
}

impl Schemas {
    fn load() -> Self {
        let docs: Vec<(&'static str, Value)> = FILES
            .iter()
            .map(|(id, text)| {
                let v: Value = serde_json::from_str(text)
                    .unwrap_or_else(|e| panic!("schemas/{id}.json is not JSON: {e}"));
                (*id, v)
            })
            .collect();
        let registry = jsonschema::Registry::new()
            .extend(
                docs.iter()
                    .map(|(id, v)| (base_uri(id), Draft::Draft4.create_resource(v.clone()))),
            )
            .and_then(|r| r.prepare())
            .unwrap_or_else(|e| panic!("schemas/ do not form a registry: {e}"));
        let validators = docs
            .iter()
            .map(|(id, v)| {
                let val = jsonschema::options()
                    .with_draft(Draft::Draft4)
                    .with_registry(&registry)
                    .with_base_uri(base_uri(id))
                    .build(v)
                    .unwrap_or_else(|e| panic!("schemas/{id}.json does not compile: {e}"));
                (*id, val)
            })
            .collect();
        Self { validators }
    }

    pub fn has(&self, id: &str) -> bool {
        self.validators.contains_key(id)
    }

    /// Validates `doc` against schema `id` (the file name without `.json`).
    /// `prefix` is prepended to every error path (e.g. `/Data` when validating a
    /// request's `Data` against a module schema). An unknown id is an error.
    pub fn validate(&self, id: &str, doc: &Value, prefix: &str) -> Result<(), Vec<SchemaError>> {
        let Some(v) = self.validators.get(id) else {
            return Err(vec![SchemaError {
                path: prefix.to_owned(),
                message: format!("no schema {id}"),
            }]);
        };
        let errors: Vec<SchemaError> = v
            .iter_errors(doc)
            .map(|e| {
                // A missing property is addressed by where it should be, so the
                // path names the field to add, not only its parent.
                let at = match e.kind() {
                    ValidationErrorKind::Required {
                        property: Value::String(p),
                    } => e.instance_path().join(p.as_str()),
                    _ => e.instance_path().clone(),
                };
                SchemaError {
                    path: format!("{prefix}{at}"),
                    message: e.to_string(),
                }
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// The compiled schemas, built on first use.
pub fn schemas() -> &'static Schemas {
    static S: LazyLock<Schemas> = LazyLock::new(Schemas::load);
    &S
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::fixture;
    use serde_json::json;

    #[test]
    fn every_schema_compiles_and_refs_resolve() {
        let s = schemas();
        assert!(s.has("metaflow") && s.has("metaflows.callflow") && s.has("kapi.metaflow.flow"));
        // metaflows.callflow refs callflows.action; metaflow refs itself.
        let node = json!({"module": "hangup", "children": {"_": {"module": "break", "data": {}}}});
        s.validate("metaflow", &node, "").unwrap();
    }

    #[test]
    fn kazoo_examples_validate() {
        let s = schemas();
        for (id, f) in [
            (
                "kapi.call.query_account_channels_req",
                "query_account_channels_req.from-crossbar.json",
            ),
            (
                "kapi.call.query_account_channels_resp",
                "query_account_channels_resp.from-ecallmgr-4.3.json",
            ),
            (
                "kapi.call.query_channels_resp",
                "query_channels_resp.fields-all.from-ecallmgr-4.3.json",
            ),
            (
                "kapi.call.channel_status_resp",
                "channel_status_resp.active.json",
            ),
            (
                "kapi.call.channel_status_resp",
                "channel_status_resp.terminated.json",
            ),
            ("kapi.metaflow.flow", "metaflow.flow.from-crossbar.json"),
            (
                "kapi.metaflow.action",
                "metaflow.action.transfer.from-crossbar.json",
            ),
        ] {
            s.validate(id, &fixture(f), "")
                .unwrap_or_else(|e| panic!("{f}: {e:?}"));
        }
    }

    #[test]
    fn errors_carry_json_pointers() {
        let bad = json!({"data": {"data": {"module": "hangup"}}});
        let errs = schemas().validate("metaflow", &bad, "/Data").unwrap_err();
        assert!(errs.iter().any(|e| e.path == "/Data/module"), "{errs:?}");
        let errs = schemas()
            .validate("metaflow", &json!({"children": {"a/b": {}}}), "")
            .unwrap_err();
        assert!(
            errs.iter().any(|e| e.path == "/children/a~1b/module"),
            "{errs:?}"
        );
        let bad = json!({"module": 5});
        let errs = schemas().validate("metaflow", &bad, "/Data").unwrap_err();
        assert_eq!(errs[0].path, "/Data/module");
        assert!(schemas().validate("nope", &bad, "").is_err());
    }
}
