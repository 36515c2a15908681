//! Planning metadata: for every declaration with a `metadata:` key, one change that replaces
//! the owner's metadata when it differs from the declared map (compared semantically: key
//! order and the spelling of numbers aside). Declarations without the key leave the
//! metadata alone. A resource this plan creates gets its metadata set after the create,
//! unless the declared map is empty (a new resource has none).

use super::*;
use crate::model::{Metadata, MetadataOwner, MetadataTarget};

impl<'a> Planner<'a> {
    pub(super) fn metadata(&mut self) {
        for dm in &self.d.metadata {
            let Some((target, path, after)) = self.metadata_target(&dm.owner) else {
                continue; // its owner could not be planned; that error is reported already
            };
            let wanted = serde_json::Value::Object(dm.data.clone());
            let (observed, key) = match &target {
                MetadataRef::Organization(id) => {
                    let t = MetadataTarget::Organization(id.clone());
                    (self.o.metadata_of(&t), Some(t.key()))
                }
                MetadataRef::Location(IdRef::Existing(id)) => {
                    let t = MetadataTarget::Location(id.clone());
                    (self.o.metadata_of(&t), Some(t.key()))
                }
                MetadataRef::Machine(IdRef::Existing(id)) => {
                    let t = MetadataTarget::Machine(id.clone());
                    (self.o.metadata_of(&t), Some(t.key()))
                }
                MetadataRef::Part(PartRef::Existing(id)) => {
                    let t = MetadataTarget::Part(id.clone());
                    (self.o.metadata_of(&t), Some(t.key()))
                }
                _ => (None, None),
            };
            let reason = match (&key, observed) {
                // A new resource has no metadata.
                (None, _) if dm.data.is_empty() => continue,
                (None, _) => "metadata of a new resource",
                (Some(_), Some(o))
                    if canonical_eq(&serde_json::Value::Object(o.clone()), &wanted) =>
                {
                    continue;
                }
                (Some(_), Some(_)) => "metadata differs",
                (Some(_), None) => "metadata was not read from the cloud; set as declared",
            };
            let mut c = change(
                Action::Update,
                Kind::Metadata,
                &path,
                reason,
                Op::SetMetadata {
                    target: target.clone(),
                    data: dm.data.clone(),
                },
            );
            c.details = metadata_details(observed, &dm.data);
            c.depends_on.extend(after);
            if let Some(key) = &key {
                c.resource_id = key.split_once(':').map(|(_, id)| id.to_string());
                if observed.is_some() {
                    c.precondition = Some(Precondition::Fingerprint(metadata_fingerprint(
                        key, observed,
                    )));
                }
            }
            self.push(c);
        }
    }

    /// Where `owner` is (now, or after the change that creates it), its path, and that change.
    fn metadata_target(
        &self,
        owner: &MetadataOwner,
    ) -> Option<(MetadataRef, String, Option<String>)> {
        let created = |m: &Matched| match m {
            Matched::Created(c) => Some(c.clone()),
            Matched::Existing(_) => None,
        };
        Some(match owner {
            MetadataOwner::Organization => (
                MetadataRef::Organization(self.o.organization.id.clone()),
                self.o.organization.name.clone(),
                None,
            ),
            MetadataOwner::Location(path) => {
                let m = self.locations.get(path)?;
                (MetadataRef::Location(m.id_ref()), path.clone(), created(m))
            }
            MetadataOwner::Machine(path) => {
                let m = self.machines.get(path)?;
                (MetadataRef::Machine(m.id_ref()), path.clone(), created(m))
            }
            MetadataOwner::Part(path) => {
                let (r, c) = self.parts.get(path)?;
                (MetadataRef::Part(r.clone()), path.clone(), c.clone())
            }
        })
    }
}

/// One detail per key that is added, removed or changed.
fn metadata_details(before: Option<&Metadata>, after: &Metadata) -> Vec<Detail> {
    let empty = Metadata::new();
    let before = before.unwrap_or(&empty);
    let mut keys: BTreeSet<&String> = before.keys().collect();
    keys.extend(after.keys());
    keys.into_iter()
        .filter_map(|k| {
            let (b, a) = (before.get(k), after.get(k));
            if let (Some(b), Some(a)) = (b, a)
                && canonical_eq(b, a)
            {
                return None;
            }
            // Strings as themselves (renderers quote them as they quote names), the rest as
            // compact canonical JSON.
            let text = |v: Option<&serde_json::Value>| {
                v.map(|v| match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => canonical(other).to_string(),
                })
            };
            Some(Detail {
                field: format!("metadata.{k}"),
                before: text(b),
                after: text(a),
            })
        })
        .collect()
}
