//! Planning fragments: matching and updating them, their tags (moves with their blast
//! radius), the organization's default fragments, and how a part's fragment imports resolve
//! to the entries written into its config.

use super::*;

impl<'a> Planner<'a> {
    // -- Fragments ----------------------------------------------------------------------------

    pub(super) fn fragments(&mut self) {
        for df in &self.d.fragments {
            self.fragment(df);
            self.fragment_reach_and_tags(df);
        }
    }

    /// The machines that take a change to fragment `id` at the given imported versions
    /// (`None`: the latest revision), from the cloud's usage counts; `None` when unknown.
    pub(super) fn reach(
        &self,
        id: Option<&str>,
        versions: &[Option<String>],
    ) -> Option<BlastRadius> {
        let usage = self.o.fragment_usage.get(id?)?;
        let mut r = BlastRadius {
            machines: 0,
            machines_in_org: 0,
            by_version: vec![],
        };
        for u in usage.iter().filter(|u| versions.contains(&u.version)) {
            r.machines += i64::from(u.machines);
            r.machines_in_org += i64::from(u.machines_in_current_org);
            r.by_version.push(VersionUsage {
                version: u.version.clone().unwrap_or_else(|| "latest".into()),
                machines: i64::from(u.machines),
            });
        }
        Some(r)
    }

    /// After `df`'s own change: the blast radius of its config update, and its tag moves.
    pub(super) fn fragment_reach_and_tags(&mut self, df: &DesiredFragment) {
        let Some(matched) = self.fragments.get(&df.name).cloned() else {
            return; // ambiguous or otherwise unplannable: reported already
        };
        let existing = matched.existing().map(String::from);
        // The change that creates the fragment or writes its config, if any.
        let config_change = self.changes.iter().rposition(|c| {
            c.kind == Kind::Fragment
                && c.path == df.name
                && matches!(
                    c.op,
                    Op::CreateFragment { .. }
                        | Op::UpdateFragment {
                            config: Some(_),
                            ..
                        }
                )
        });
        let tags = df.tags.clone().unwrap_or_default();
        if let Some(i) = config_change
            && matches!(self.changes[i].op, Op::UpdateFragment { .. })
        {
            // Parts on the latest revision take the new config, and so do parts on a tag
            // that this apply moves to it.
            let mut versions = vec![None];
            versions.extend(
                tags.iter()
                    .filter(|(_, t)| *t == TagTarget::Current)
                    .map(|(tag, _)| Some(tag.clone())),
            );
            self.changes[i].blast_radius = self.reach(existing.as_deref(), &versions);
        }
        if df.tags.is_none() {
            return;
        }
        let fid = existing.as_deref();
        let observed_tags = fid
            .and_then(|id| self.o.fragment_tags.get(id))
            .cloned()
            .unwrap_or_default();
        let revisions = fid.and_then(|id| self.o.fragment_revisions.get(id));
        let current = fid
            .and_then(|id| self.o.fragments.iter().find(|f| f.id == id))
            .map(|f| f.revision.clone())
            .filter(|r| !r.is_empty() && config_change.is_none());
        let depends_on: Vec<String> = config_change
            .map(|i| self.changes[i].id.clone())
            .into_iter()
            .collect();
        for (tag, target) in &tags {
            let want = match target {
                TagTarget::Revision(r) => {
                    if revisions.is_some_and(|rs| !rs.is_empty() && !rs.contains(r)) {
                        self.errors.push(PlanError::Invalid {
                            kind: "fragment",
                            path: df.name.clone(),
                            message: format!(
                                "tag `{tag}` names revision {r}, which the fragment does not have (its revisions: {})\n  hint: use `current` for the revision this apply leaves the fragment at",
                                revisions.map(|rs| rs.join(", ")).unwrap_or_default()
                            ),
                        });
                        continue;
                    }
                    Some(r.clone())
                }
                TagTarget::Current => current.clone(),
            };
            let have = observed_tags
                .iter()
                .find(|t| &t.tag == tag)
                .map(|t| t.revision.clone());
            if want.is_some() && have == want {
                continue;
            }
            let shown = want
                .clone()
                .unwrap_or_else(|| "the revision this apply makes".into());
            let (action, why) = match &have {
                Some(h) => (Action::Update, format!("moves {h} → {shown}")),
                None => (Action::Create, format!("new, at {shown}")),
            };
            let mut c = change(
                action,
                Kind::FragmentTag,
                &format!("{}@{tag}", df.name),
                why,
                Op::SetFragmentTag {
                    fragment: matched.id_ref(),
                    tag: tag.clone(),
                    revision: want.clone(),
                },
            );
            c.resource_id = existing.clone();
            c.details.push(detail(
                "revision",
                have.as_deref(),
                Some(want.as_deref().unwrap_or("(after this apply)")),
            ));
            c.blast_radius = self.reach(fid, &[Some(tag.clone())]);
            c.depends_on = depends_on.clone();
            c.precondition = Some(Precondition::Fingerprint(tag_fingerprint(
                fid.unwrap_or(""),
                tag,
                have.as_deref(),
            )));
            self.push(c);
        }
        // Tags the cloud has and the manifest does not list.
        let Some(fid) = fid else {
            return;
        };
        for t in observed_tags
            .iter()
            .filter(|t| !tags.iter().any(|(tag, _)| tag == &t.tag))
        {
            let path = format!("{}@{}", df.name, t.tag);
            if !self.prune {
                self.unmanaged.push(Unmanaged {
                    kind: Kind::FragmentTag,
                    path,
                    id: fid.to_string(),
                });
                continue;
            }
            let mut c = change(
                Action::Delete,
                Kind::FragmentTag,
                &path,
                "not in the manifest; prune is on",
                Op::DeleteFragmentTag {
                    fragment: fid.to_string(),
                    tag: t.tag.clone(),
                },
            );
            c.resource_id = Some(fid.to_string());
            c.details.push(detail("revision", Some(&t.revision), None));
            c.blast_radius = self.reach(Some(fid), &[Some(t.tag.clone())]);
            c.precondition = Some(Precondition::Fingerprint(tag_fingerprint(
                fid,
                &t.tag,
                Some(&t.revision),
            )));
            self.push(c);
        }
    }

    /// The organization's default fragments, when the manifest manages them.
    pub(super) fn default_fragments(&mut self) {
        let Some(uses) = &self.d.default_fragments else {
            return;
        };
        let current: Vec<serde_json::Value> = self
            .o
            .organization
            .default_fragments
            .iter()
            .flatten()
            .map(import_entry)
            .collect();
        if self.imports_are(uses, &current) {
            return;
        }
        let planned = self.planned_imports(uses, &current);
        let org = self.o.organization.name.clone();
        let mut c = change(
            Action::Update,
            Kind::Organization,
            &org,
            "default fragments differ",
            Op::SetDefaultFragments {
                fragments: planned.clone(),
            },
        );
        c.resource_id = Some(self.o.organization.id.clone());
        c.config_before = Some(PlannedConfig {
            value: ConfigJson::empty(),
            fragments: observed_config(&serde_json::json!({ "fragments": current }), &[]).fragments,
            fragments_at: Some(0),
            sensitive: vec![],
        });
        c.config_after = Some(PlannedConfig {
            value: ConfigJson::empty(),
            fragments: planned,
            fragments_at: Some(0),
            sensitive: vec![],
        });
        c.depends_on = self.import_deps(uses);
        c.precondition = Some(Precondition::Fingerprint(default_fragments_fingerprint(
            &self.o.organization,
        )));
        self.push(c);
    }

    pub(super) fn fragment(&mut self, df: &DesiredFragment) {
        let o = self.o;
        let by_name = |name: &str| -> Vec<(String, &crate::model::Fragment)> {
            o.fragments
                .iter()
                .filter(|f| f.name == name)
                .map(|f| (f.id.clone(), f))
                .collect()
        };
        let Ok(found) = self.find(
            Kind::Fragment,
            &df.name,
            &df.identity,
            |_, id| o.fragments.iter().find(|f| f.id == id),
            |_, old| by_name(old),
            |_, name| by_name(name),
        ) else {
            return;
        };
        let config = PlannedConfig {
            value: df.config.json.clone(),
            sensitive: df.config.sensitive.clone(),
            ..PlannedConfig::default()
        };
        let Some((id, f)) = found else {
            let mut c = change(
                Action::Create,
                Kind::Fragment,
                &df.name,
                "declared, not in the cloud",
                Op::CreateFragment {
                    name: df.name.clone(),
                    config: config.clone(),
                    visibility: df.visibility,
                },
            );
            c.config_after = Some(config);
            c.precondition = Some(Precondition::Absent);
            c.details.push(detail(
                "visibility",
                None,
                Some(visibility_str(df.visibility)),
            ));
            let cid = self.push(c);
            self.place(&cid, None, Kind::Fragment, Some(""), &df.name);
            self.fragments
                .insert(df.name.clone(), Matched::Created(cid));
            return;
        };
        if !self.claim("fragment", &id, &df.name) {
            return;
        }
        self.fragments
            .insert(df.name.clone(), Matched::Existing(id.clone()));
        let renamed = f.name != df.name;
        let config_differs = ConfigJson::from_value(&f.config) != df.config.json;
        let vis_differs = f.visibility != df.visibility;
        if !(renamed || config_differs || vis_differs) {
            return;
        }
        let action = if config_differs || vis_differs {
            Action::Update
        } else {
            Action::Move
        };
        let mut c = change(
            action,
            Kind::Fragment,
            &df.name,
            reason(&[
                (renamed, "renamed"),
                (config_differs, "config differs"),
                (vis_differs, "visibility differs"),
            ]),
            Op::UpdateFragment {
                id: id.clone(),
                name: df.name.clone(),
                config: config_differs.then(|| config.clone()),
                visibility: vis_differs.then_some(df.visibility),
            },
        );
        c.resource_id = Some(id.clone());
        if renamed {
            c.from_path = Some(f.name.clone());
            c.details
                .push(detail("name", Some(&f.name), Some(&df.name)));
        }
        if vis_differs {
            c.details.push(detail(
                "visibility",
                Some(visibility_str(f.visibility)),
                Some(visibility_str(df.visibility)),
            ));
        }
        if config_differs {
            c.config_before = Some(PlannedConfig {
                value: ConfigJson::from_value(&f.config),
                sensitive: observed_sensitive(&f.config, &df.config.sensitive),
                ..PlannedConfig::default()
            });
            c.config_after = Some(config);
        }
        c.precondition = f.last_updated.map(Precondition::LastUpdated);
        let cid = self.push(c);
        if renamed {
            self.place(&cid, Some(&id), Kind::Fragment, Some(""), &df.name);
        }
    }

    /// Where an import's fragment is: a declared fragment by name, or any fragment by id.
    pub(super) fn import_ref(&self, u: &FragmentUse) -> Option<IdRef> {
        match &u.fragment {
            FragmentRef::Name(n) => self.fragments.get(n).map(Matched::id_ref),
            FragmentRef::Id(id) => Some(IdRef::Existing(id.clone())),
        }
    }

    /// The id of an import's fragment when it is in the cloud (`None` while it is yet to be
    /// created).
    fn existing_import_id<'u>(&'u self, u: &'u FragmentUse) -> Option<&'u str> {
        match &u.fragment {
            FragmentRef::Name(n) => self.fragments.get(n).and_then(Matched::existing),
            FragmentRef::Id(id) => Some(id),
        }
    }

    /// Whether `uses` are, in order, import `entries` by meaning (see [`import_meaning`]). An
    /// import of a fragment yet to be created matches nothing.
    fn imports_are(&self, uses: &[FragmentUse], entries: &[serde_json::Value]) -> bool {
        uses.len() == entries.len()
            && uses.iter().zip(entries).all(|(u, e)| {
                self.existing_import_id(u)
                    .is_some_and(|id| import_means(e, id, &u.options))
            })
    }

    /// [`Self::imports_are`] for the imports of the observed `config`, whose `fragments`
    /// entries are parsed once per distinct text.
    pub(super) fn imports_match(&mut self, uses: &[FragmentUse], config: &'a ConfigJson) -> bool {
        let text = config.fragments_text();
        if let Some(text) = text
            && !self.observed_imports.contains_key(text)
        {
            self.observed_imports.insert(text, config.imports());
        }
        let entries = text.map_or(&[][..], |t| &self.observed_imports[t]);
        self.imports_are(uses, entries)
    }

    /// The planned import entries for `uses`. An entry whose meaning the cloud already holds
    /// (in `current`) is kept exactly as the cloud has it: a bare id stays a bare id, and key
    /// order and unknown keys survive. Others are written `{"id": …, <options as written>}`.
    pub(super) fn planned_imports(
        &self,
        uses: &[FragmentUse],
        current: &[serde_json::Value],
    ) -> Vec<PlannedImport> {
        uses.iter()
            .filter_map(|u| {
                let fragment = self.import_ref(u)?;
                let kept = self
                    .existing_import_id(u)
                    .and_then(|id| current.iter().find(|e| import_means(e, id, &u.options)));
                let entry = match kept {
                    Some(e) => e.clone(),
                    None => {
                        let mut o = serde_json::Map::new();
                        o.insert("id".into(), serde_json::Value::String(String::new()));
                        o.extend(u.options.clone());
                        serde_json::Value::Object(o)
                    }
                };
                Some(PlannedImport { fragment, entry })
            })
            .collect()
    }

    /// Changes that create fragments these imports name.
    pub(super) fn import_deps(&self, uses: &[FragmentUse]) -> Vec<String> {
        uses.iter()
            .filter_map(|u| match &u.fragment {
                FragmentRef::Name(n) => match self.fragments.get(n) {
                    Some(Matched::Created(c)) => Some(c.clone()),
                    _ => None,
                },
                FragmentRef::Id(_) => None,
            })
            .collect()
    }
}
