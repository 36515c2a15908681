//! `${env:NAME}` references inside config strings.
//!
//! Every string value of a config (inline or from a file; keys are left alone) may contain
//! `${env:NAME}` with NAME matching `[A-Za-z_][A-Za-z0-9_]*`; it is replaced by the value of
//! that environment variable. `$${env:NAME}` is the escape for a literal `${env:NAME}`; any
//! other `$` is literal. A string that used at least one reference is *sensitive*: it is
//! recorded as a [`SensitiveValue`] with its JSON pointer, the variables it used, and the
//! SHA-256 of the resolved string. The values themselves never reach a message.

use crate::model::SensitiveValue;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// What went wrong with one reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnvProblem {
    /// `${env:NAME}` where NAME is not set.
    Missing { pointer: String, name: String },
    /// `${env:` with no closing `}`, or a NAME that is not a valid variable name.
    Malformed { pointer: String, reference: String },
}

/// The outcome of resolving one config.
#[derive(Debug, Default)]
pub struct Resolution {
    pub sensitive: Vec<SensitiveValue>,
    pub problems: Vec<EnvProblem>,
    /// Each variable used, with the SHA-256 (hex) of its value, for the manifest digest.
    pub used: BTreeMap<String, String>,
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Resolves every reference inside `value` in place.
pub fn resolve_config(value: &mut Value, env: &dyn Fn(&str) -> Option<String>) -> Resolution {
    let mut out = Resolution::default();
    walk(value, &mut String::new(), env, &mut out);
    out
}

fn walk(
    value: &mut Value,
    pointer: &mut String,
    env: &dyn Fn(&str) -> Option<String>,
    out: &mut Resolution,
) {
    match value {
        Value::String(s) => {
            if !s.contains("${env:") {
                return;
            }
            match resolve_str(s, env) {
                Ok(r) => {
                    if !r.names.is_empty() {
                        out.sensitive.push(SensitiveValue {
                            pointer: pointer.clone(),
                            template: s.clone(),
                            env: r.names.clone(),
                            sha256: sha256_hex(r.value.as_bytes()),
                        });
                    }
                    for (name, hash) in r.hashes {
                        out.used.insert(name, hash);
                    }
                    *s = r.value;
                }
                Err(problems) => out.problems.extend(problems.into_iter().map(|p| match p {
                    StrProblem::Missing(name) => EnvProblem::Missing {
                        pointer: pointer.clone(),
                        name,
                    },
                    StrProblem::Malformed(reference) => EnvProblem::Malformed {
                        pointer: pointer.clone(),
                        reference,
                    },
                })),
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&i.to_string());
                walk(item, pointer, env, out);
                pointer.truncate(len);
            }
        }
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&escape_pointer_token(k));
                walk(v, pointer, env, out);
                pointer.truncate(len);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// RFC 6901 escaping of one reference token.
pub fn escape_pointer_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// One string, resolved.
#[derive(Debug, PartialEq, Eq)]
pub struct Resolved {
    pub value: String,
    /// Variables used, in order of first use.
    pub names: Vec<String>,
    /// Each variable used with the SHA-256 of its value.
    pub hashes: Vec<(String, String)>,
}

/// A problem inside one string.
#[derive(Debug, PartialEq, Eq)]
pub enum StrProblem {
    Missing(String),
    Malformed(String),
}

const PREFIX: &str = "${env:";

/// Resolves the references in one string; reports every problem in it.
pub fn resolve_str(
    s: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Resolved, Vec<StrProblem>> {
    let mut value = String::with_capacity(s.len());
    let mut names: Vec<String> = Vec::new();
    let mut hashes = Vec::new();
    let mut problems = Vec::new();
    let mut rest = s;
    while let Some(at) = rest.find('$') {
        value.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix('$').filter(|t| t.starts_with(PREFIX)) {
            // `$${env:` is the escape for a literal `${env:`.
            value.push_str(PREFIX);
            rest = &after[PREFIX.len()..];
        } else if let Some(after) = tail.strip_prefix(PREFIX) {
            let Some(end) = after.find('}') else {
                problems.push(StrProblem::Malformed(truncate(tail)));
                value.push_str(tail);
                rest = "";
                continue;
            };
            let name = &after[..end];
            rest = &after[end + 1..];
            if !valid_name(name) {
                problems.push(StrProblem::Malformed(format!("{PREFIX}{name}}}")));
                continue;
            }
            match env(name) {
                Some(v) => {
                    if !names.iter().any(|n| n == name) {
                        names.push(name.to_string());
                        hashes.push((name.to_string(), sha256_hex(v.as_bytes())));
                    }
                    value.push_str(&v);
                }
                None => problems.push(StrProblem::Missing(name.to_string())),
            }
        } else {
            value.push('$');
            rest = &tail[1..];
        }
    }
    value.push_str(rest);
    if problems.is_empty() {
        Ok(Resolved {
            value,
            names,
            hashes,
        })
    } else {
        Err(problems)
    }
}

fn truncate(s: &str) -> String {
    let mut out: String = s.chars().take(40).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// `[A-Za-z_][A-Za-z0-9_]*`.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("s3cret".into()),
            "HOST" => Some("db.local".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn resolves_references_and_escapes() {
        let r = resolve_str("postgres://u:${env:TOKEN}@${env:HOST}/${env:TOKEN}", &env)
            .expect("resolves");
        assert_eq!(r.value, "postgres://u:s3cret@db.local/s3cret");
        assert_eq!(r.names, ["TOKEN", "HOST"]);
        let lit = resolve_str("cost $5, $${env:TOKEN} and $$x", &env).expect("resolves");
        assert_eq!(lit.value, "cost $5, ${env:TOKEN} and $$x");
        assert!(lit.names.is_empty());
        assert_eq!(
            resolve_str("${env:EMPTY}", &env).map(|r| r.value),
            Ok(String::new())
        );
    }

    #[test]
    fn reports_missing_and_malformed_references() {
        assert_eq!(
            resolve_str("${env:NOPE} ${env:1BAD} ${env:TOKEN", &env),
            Err(vec![
                StrProblem::Missing("NOPE".into()),
                StrProblem::Malformed("${env:1BAD}".into()),
                StrProblem::Malformed("${env:TOKEN".into()),
            ])
        );
    }

    #[test]
    fn records_sensitive_pointers_and_hashes() {
        let mut v = json!({"a/b": [{"pw": "${env:TOKEN}"}], "plain": "x", "lit": "$${env:TOKEN}"});
        let r = resolve_config(&mut v, &env);
        assert!(r.problems.is_empty());
        assert_eq!(v["a/b"][0]["pw"], "s3cret");
        assert_eq!(v["lit"], "${env:TOKEN}");
        assert_eq!(r.sensitive.len(), 1);
        assert_eq!(r.sensitive[0].pointer, "/a~1b/0/pw");
        assert_eq!(r.sensitive[0].env, ["TOKEN"]);
        assert_eq!(r.sensitive[0].sha256, sha256_hex(b"s3cret"));
        assert_eq!(r.used.get("TOKEN"), Some(&sha256_hex(b"s3cret")));
    }
}
