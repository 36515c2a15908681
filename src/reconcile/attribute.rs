//! Drift attribution: for every config drift of an existing part, who last changed the part
//! in the cloud and when, from the part's newest history entry (one `GetRobotPartHistory`
//! with limit 1 per drifted part, bounded like every observation read).
//!
//! Attribution only explains a change: [`super::prepare`] turns a failure to read it into a
//! warning, and the plan stays right.

use crate::cloud::CloudApi;
use crate::cloud::observe::{ObserveError, ObserveOptions, attribute};
use crate::plan::{Attribution, Op, PartRef, Plan};

/// How drift made with this process's own API key is attributed (see
/// [`super::Options::own_key_id`]).
pub const OWN_KEY: &str = "this key (fleetform)";

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
    let ids: Vec<String> = drifted_parts(plan).map(String::from).collect();
    if ids.is_empty() {
        return Ok(());
    }
    let newest = attribute(api, &ids, opts).await?;
    for change in &mut plan.changes {
        if let Some(entry) = drifted(&change.op).and_then(|id| newest.get(id)) {
            let who = entry.edited_by.as_ref().map(|e| {
                if Some(e.value.as_str()) == own_key_id {
                    OWN_KEY.to_string()
                } else {
                    e.value.clone()
                }
            });
            change.attribution = Some(Attribution {
                when: entry.when,
                who,
            });
        }
    }
    Ok(())
}
