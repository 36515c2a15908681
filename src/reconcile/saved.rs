//! Saved plans (`fleetform plan --out FILE`, applied by `fleetform apply FILE`): writing one,
//! reading one back, and restoring its sensitive values.
//!
//! A saved plan is the [`Plan`] exactly as serde writes it, with sensitive values masked: each
//! appears only as its SHA-256 hash, salted with a fresh random salt per plan, saved as the
//! file's last field, `sensitive_salt` (see [`crate::sensitive::salted`]). Before applying,
//! every sensitive value is resolved again from the environment and must hash to what the plan
//! was made with ([`restore_sensitive`]). Its version is the plan's `format_version` field
//! ([`crate::plan::PLAN_FORMAT_VERSION`]). Whether the cloud still matches it is
//! [`super::apply`]'s stale check. Writing and reading go straight between the plan and the
//! text: reading scans the text once for its version and salt (building nothing), then once
//! into the plan.

use crate::plan::{self, Op, Plan};
use serde_json::Value;
use sha2::Digest;

/// Why a saved plan cannot be used. Messages name the resource and never a value.
#[derive(Debug, thiserror::Error)]
pub enum SavedPlanError {
    /// Written by another version of fleetform.
    #[error(
        "the plan file has format_version {found}; this fleetform reads 1 and 2\nhint: plan again with this version"
    )]
    Version { found: u64 },
    /// Versioned as a plan, but not one.
    #[error("the plan file is not a valid fleetform plan")]
    Invalid(#[source] serde_json::Error),
    /// A sensitive value cannot be resolved from the environment.
    #[error(
        "{kind} {path}: {message}\nhint: the saved plan needs the same environment it was made with"
    )]
    Unresolved {
        kind: &'static str,
        path: String,
        message: String,
    },
    /// A sensitive value resolves, but not to the value the plan was made with.
    #[error(
        "{kind} {path}: the value of {env} differs from the one the plan was made with\nhint: plan again, or restore the environment"
    )]
    Changed {
        kind: &'static str,
        path: String,
        env: String,
    },
}

/// `plan` as a saved plan file: pretty JSON, known secrets marked, sensitive hashes salted.
/// Ends with a newline. Written straight from the plan (no JSON tree of the whole plan: a
/// cold plan of a large fleet is tens of megabytes of configs).
pub fn to_json(plan: &Plan) -> String {
    /// The plan's fields in their order, then the salt.
    #[derive(serde::Serialize)]
    struct File<'a> {
        #[serde(flatten)]
        plan: &'a Plan,
        #[serde(skip_serializing_if = "Option::is_none")]
        sensitive_salt: Option<String>,
    }
    let (plan, salt) = salted(plan);
    // Plans hold only strings, numbers, booleans, sequences and string-keyed maps, so
    // serializing them cannot fail.
    let mut out = serde_json::to_string_pretty(&File {
        plan: &plan,
        sensitive_salt: salt,
    })
    .expect("a plan serializes to JSON");
    out.push('\n');
    out
}

/// `plan` with known secrets marked and every sensitive hash salted with a fresh salt; the
/// salt, when there was anything to salt. Saved plans and `--output json` both go through it.
pub fn salted(plan: &Plan) -> (Plan, Option<String>) {
    let mut plan = crate::sensitive::with_known_secrets_marked(plan).into_owned();
    let salt = crate::sensitive::new_salt();
    let any = crate::sensitive::rewrite_hashes(&mut plan, &|h| crate::sensitive::salted(&salt, h));
    (plan, any.then_some(salt))
}

/// The plan in `text`, with the salt of its sensitive hashes; `None` when `text` is not a plan
/// file at all (a JSON object with a `format_version`).
pub fn read(text: &str) -> Option<Result<(Plan, Option<String>), SavedPlanError>> {
    if !text.trim_start().starts_with('{') {
        return None;
    }
    /// What says whether the text is a plan file, read first (the rest skipped, nothing of
    /// it built) so that a plan of tens of megabytes is parsed once, into the plan itself.
    #[derive(serde::Deserialize)]
    struct Head {
        format_version: Option<Value>,
        sensitive_salt: Option<Value>,
    }
    let head: Head = serde_json::from_str(text).ok()?;
    let found = head.format_version?.as_u64()?;
    if !plan::READABLE_PLAN_FORMAT_VERSIONS
        .iter()
        .any(|v| u64::from(*v) == found)
    {
        return Some(Err(SavedPlanError::Version { found }));
    }
    let salt = head
        .sensitive_salt
        .and_then(|s| s.as_str().map(String::from));
    Some(
        serde_json::from_str::<Plan>(text)
            .map(|mut plan| {
                // Read into the current shape: written again, it is the current version.
                plan.format_version = plan::PLAN_FORMAT_VERSION;
                (plan, salt)
            })
            .map_err(SavedPlanError::Invalid),
    )
}

/// A saved plan holds sensitive values only as hashes: resolves each again from `env` and
/// checks it is the value the plan was made with, then puts it back where apply writes it.
pub fn restore_sensitive(
    plan: &mut Plan,
    env: &dyn Fn(&str) -> Option<String>,
    salt: Option<&str>,
) -> Result<(), SavedPlanError> {
    for change in &mut plan.changes {
        let cfg = match &mut change.op {
            Op::CreateFragment { config, .. } => Some(config),
            Op::UpdateFragment { config, .. }
            | Op::CreatePart { config, .. }
            | Op::UpdatePart { config, .. } => config.as_mut(),
            _ => None,
        };
        let Some(cfg) = cfg else { continue };
        if cfg.sensitive.is_empty() {
            continue;
        }
        let mut restored = cfg.value.to_value();
        for s in &cfg.sensitive {
            let value = crate::manifest::resolve_template(&s.template, env).map_err(|message| {
                SavedPlanError::Unresolved {
                    kind: change.kind.as_str(),
                    path: change.path.clone(),
                    message,
                }
            })?;
            let hash = hex::encode(sha2::Sha256::digest(value.as_bytes()));
            let hash = salt.map_or(hash.clone(), |salt| crate::sensitive::salted(salt, &hash));
            if hash != s.sha256 {
                return Err(SavedPlanError::Changed {
                    kind: change.kind.as_str(),
                    path: change.path.clone(),
                    env: s.env.join(", "),
                });
            }
            if let Some(slot) = restored.pointer_mut(&s.pointer) {
                *slot = Value::String(value);
            }
        }
        cfg.value = crate::model::ConfigJson::from_value(&restored);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_versioned_json_objects_are_plans() {
        assert!(read("version: 1\norganization: acme\n").is_none());
        assert!(read("{\"organization\": \"acme\"}").is_none());
        assert!(matches!(
            read("{\"format_version\": 99}"),
            Some(Err(SavedPlanError::Version { found: 99 }))
        ));
        assert!(matches!(
            read("{\"format_version\": 1, \"changes\": 3}"),
            Some(Err(SavedPlanError::Invalid(_)))
        ));
    }

    /// A plan saved before timestamps were RFC 3339 (format_version 1, `{seconds, nanos}`)
    /// still loads, with the same times; a new one writes RFC 3339 (format_version 2).
    #[test]
    fn plans_saved_with_protobuf_timestamps_still_load() {
        let t = crate::model::Timestamp {
            seconds: 1_767_225_600,
            nanos: 123_456_789,
        };
        let plan = Plan {
            format_version: plan::PLAN_FORMAT_VERSION,
            manifest_digest: "d1gest".into(),
            organization_id: "org-1".into(),
            organization_name: "acme".into(),
            prune: false,
            target: None,
            rollout: None,
            changes: vec![plan::Change {
                id: "c1".into(),
                resource_id: Some("p1".into()),
                attribution: Some(plan::Attribution {
                    when: Some(t),
                    who: Some("alice@acme.example".into()),
                }),
                precondition: Some(plan::Precondition::LastUpdated(t)),
                ..plan::Change::new(
                    plan::Action::Update,
                    plan::Kind::Part,
                    "HQ/arm/arm-main",
                    "config differs",
                    Op::UpdatePart {
                        part: plan::PartRef::Existing("p1".into()),
                        name: "arm-main".into(),
                        config: None,
                    },
                )
            }],
            unmanaged: vec![],
            notices: vec![],
        };
        // As an earlier fleetform wrote it: version 1, protobuf timestamps.
        let proto = serde_json::json!({"seconds": t.seconds, "nanos": t.nanos});
        let mut doc = serde_json::to_value(&plan).unwrap();
        doc["format_version"] = 1.into();
        doc["changes"][0]["attribution"]["when"] = proto.clone();
        doc["changes"][0]["precondition"]["last_updated"] = proto;
        let (old, _) = match read(&doc.to_string()) {
            Some(Ok(p)) => p,
            Some(Err(e)) => panic!("{e}"),
            None => panic!("not read as a plan"),
        };
        let change = &old.changes[0];
        assert_eq!(change.attribution.as_ref().unwrap().when, Some(t));
        assert_eq!(
            change.precondition,
            Some(plan::Precondition::LastUpdated(t)),
            "exact to the nanosecond"
        );
        let again = to_json(&old);
        assert!(
            again.contains("\"2026-01-01T00:00:00.123456789Z\""),
            "{again}"
        );
        assert!(!again.contains("\"seconds\""), "{again}");
        assert!(again.contains("\"format_version\": 2"), "{again}");
        let (new, _) = read(&again).unwrap().unwrap();
        assert_eq!(new.changes[0].precondition, change.precondition);
    }
}
