//! Planning the organization's settings: its name (when the manifest finds it by `id:`), its
//! public namespace and its default region, each only when the manifest says. One change
//! sets whichever differ. Whether a setting may change (Viam sets a public namespace once) is
//! the cloud's to say: apply reports its refusal.

use super::*;

impl<'a> Planner<'a> {
    pub(super) fn organization_settings(&mut self) {
        let org = &self.o.organization;
        let wanted = &self.d.settings;
        let differs = |want: &Option<String>, have: &str| {
            want.as_deref().filter(|w| *w != have).map(String::from)
        };
        let name = differs(&wanted.name, &org.name);
        let public_namespace = differs(&wanted.public_namespace, &org.public_namespace);
        let region = differs(&wanted.region, &org.default_region);
        if name.is_none() && public_namespace.is_none() && region.is_none() {
            return;
        }
        let mut c = change(
            Action::Update,
            Kind::Organization,
            wanted.name.as_deref().unwrap_or(&org.name),
            reason(&[
                (name.is_some(), "renamed"),
                (public_namespace.is_some(), "public namespace differs"),
                (region.is_some(), "region differs"),
            ]),
            Op::UpdateOrganization {
                name: name.clone(),
                public_namespace: public_namespace.clone(),
                region: region.clone(),
            },
        );
        c.resource_id = Some(org.id.clone());
        let empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
        if let Some(n) = &name {
            c.from_path = Some(org.name.clone());
            c.details.push(detail("name", Some(&org.name), Some(n)));
        }
        if let Some(ns) = &public_namespace {
            c.details.push(detail(
                "public_namespace",
                empty(&org.public_namespace).as_deref(),
                Some(ns),
            ));
        }
        if let Some(r) = &region {
            c.details.push(detail(
                "region",
                empty(&org.default_region).as_deref(),
                Some(r),
            ));
        }
        c.precondition = Some(Precondition::Fingerprint(org_settings_fingerprint(org)));
        self.push(c);
    }
}
