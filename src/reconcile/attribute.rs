//! Drift attribution: for every config drift of an existing part, who last changed the part
//! in the cloud and when, from the part's newest history entry (one `GetRobotPartHistory`
//! with limit 1 per drifted part, bounded like every observation read).
//!
//! Who is said in words ([`editor_in_words`]): our own key as [`OWN_KEY`], a member by the
//! email the cloud gives for them, and another API key as `API key <id>`. The history entry
//! gives only an API key's id (`AuthenticatorInfo.value`), not its name, and fleetform reads
//! no list of the organization's keys, so a key's name cannot be shown; its id and kind are.
//!
//! Attribution only explains a change: [`super::prepare`] turns a failure to read it into a
//! warning, and the plan stays right.

use crate::cloud::CloudApi;
use crate::cloud::observe::{ObserveError, ObserveOptions, attribute};
use crate::model::{Editor, HistoryEntry};
use crate::plan::{Attribution, Op, PartRef, Plan};
use std::collections::BTreeMap;

/// How drift made with this process's own API key is attributed (see
/// [`super::Options::own_key_id`]).
pub const OWN_KEY: &str = "this key (fleetform)";

/// Who made an edit, in words: [`OWN_KEY`] for the key `own_key_id` (the one this process
/// writes with), a member's email (`web-oauth`: the cloud gives the email), `API key <id>`
/// for another API key (the cloud gives no key names), else the value and its kind.
pub fn editor_in_words(e: &Editor, own_key_id: Option<&str>) -> String {
    match e.kind.as_str() {
        _ if Some(e.value.as_str()) == own_key_id => OWN_KEY.to_string(),
        "api-key" => format!("API key {}", e.value),
        "web-oauth" | "" => e.value.clone(),
        kind => format!("{} ({kind})", e.value),
    }
}

/// The part id of a change that is a config drift of an existing part.
fn drifted(op: &Op) -> Option<&str> {
    match op {
        Op::UpdatePart {
            part: PartRef::Existing(id),
            config: Some(_),
            ..
        } => Some(id),
        _ => None,
    }
}

/// The ids of the parts whose config drifted, in plan order.
pub fn drifted_parts(plan: &Plan) -> impl Iterator<Item = &str> {
    plan.changes.iter().filter_map(|c| drifted(&c.op))
}

/// Sets `attribution` on every config drift of an existing part. Editors equal to
/// `own_key_id` are named [`OWN_KEY`].
pub async fn attribute_drift(
    api: &dyn CloudApi,
    plan: &mut Plan,
    opts: &ObserveOptions,
    own_key_id: Option<&str>,
) -> Result<(), ObserveError> {
    let newest = read(api, plan, opts).await?;
    record(plan, &newest, own_key_id);
    Ok(())
}

/// The reads of [`attribute_drift`]: the newest history entry of every drifted part of `plan`,
/// by part id (none read when nothing drifted).
pub async fn read(
    api: &dyn CloudApi,
    plan: &Plan,
    opts: &ObserveOptions,
) -> Result<BTreeMap<String, HistoryEntry>, ObserveError> {
    let ids: Vec<String> = drifted_parts(plan).map(String::from).collect();
    if ids.is_empty() {
        return Ok(BTreeMap::new());
    }
    attribute(api, &ids, opts).await
}

/// Writes what [`read`] found into the drifted changes of `plan`.
pub fn record(plan: &mut Plan, newest: &BTreeMap<String, HistoryEntry>, own_key_id: Option<&str>) {
    for change in &mut plan.changes {
        if let Some(entry) = drifted(&change.op).and_then(|id| newest.get(id)) {
            let who = entry
                .edited_by
                .as_ref()
                .map(|e| editor_in_words(e, own_key_id));
            change.attribution = Some(Attribution {
                when: entry.when,
                who,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn editors_are_named_in_words() {
        let ed = |kind: &str, value: &str| Editor {
            kind: kind.into(),
            value: value.into(),
        };
        let own = Some("k-1");
        assert_eq!(editor_in_words(&ed("api-key", "k-1"), own), OWN_KEY);
        assert_eq!(editor_in_words(&ed("api-key", "k-2"), own), "API key k-2");
        assert_eq!(
            editor_in_words(&ed("web-oauth", "alice@acme.example"), own),
            "alice@acme.example"
        );
        assert_eq!(
            editor_in_words(&ed("location-secret", "s-1"), None),
            "s-1 (location-secret)"
        );
        assert_eq!(editor_in_words(&ed("", "someone"), None), "someone");
    }
}
