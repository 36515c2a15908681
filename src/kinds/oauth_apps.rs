//! OAuth apps (`access: oauth_apps:`), a registered kind (see [`crate::kinds`]) with RPCs of
//! its own: `ListOAuthApps`, `ReadOAuthApp`, `CreateOAuthApp`, `UpdateOAuthApp` and
//! `DeleteOAuthApp` of Viam's AppService. The local cloud's half is [`local`].
//!
//! - **Identity**: an app is its `name` (Viam's `client_name`), unique in the manifest. Two
//!   apps of that name in the cloud is a plan error naming both client ids: fleetform does
//!   not guess which one is meant (rename or delete one in the Viam app).
//! - **What is managed**: every field of the app's config: `redirect_uris`, `origin_uris`,
//!   `logout_uri`, `invite_redirect_uri` (absent: none), `client_authentication`, `pkce`,
//!   `url_validation` (absent: `required`, `required`, `exact_match`, the strictest values)
//!   and `grants` (at least one). Lists are compared as sets (their order is not kept).
//!   Values are Viam's enum names in lowercase without their prefix
//!   (`CLIENT_AUTHENTICATION_NOT_REQUIRED_WHEN_USING_PKCE` is
//!   `not_required_when_using_pkce`).
//! - **Planning**: a declared app the cloud lacks is created; one whose config differs is
//!   updated (name and whole config, as `UpdateOAuthApp` takes them), with one detail per
//!   field that differs; an app not declared is reported as unmanaged, or deleted with
//!   `prune`. A saved plan is stale when the app changed (or a same-named app appeared,
//!   for a create) since the plan was made.
//! - **Observing**: `ListOAuthApps`, then `ReadOAuthApp` per client id, at most the
//!   observation's read concurrency at a time.
//! - **The client secret is a secret**: it is dropped as each app is read and as one is
//!   created, so no plan, saved plan, `Observed` value, log line, error or import holds it.
//!   Read a new app's secret in the Viam app (or with `ReadOAuthApp`).

pub mod local;

use super::{ExecContext, KindOp, KindPlanner, ResourceKind};
use crate::apply::{ExecError, ExecResult, with_unknown_outcome};
use crate::cloud::{CloudApi, CloudError};
use crate::manifest::section::{Importer, SectionValidator, YPath, check_name_chars, closest};
use crate::plan::{Action, Change, Detail, Kind, PlanError, Precondition, Unmanaged, fingerprint};
use crate::proto::viam::app::v1 as pb;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// The OAuth apps kind.
pub struct OAuthApps;

/// Its key: in plans, JSON output and `Desired::kinds` / `Observed::kinds`.
const KEY: &str = "oauth_app";

impl Kind {
    /// An OAuth app; its path is the app's name.
    #[allow(non_upper_case_globals)]
    pub const OAuthApp: Kind = Kind::Registered(KEY);
}

/// `ClientAuthentication` values by their manifest names.
const CLIENT_AUTHENTICATION: &[(&str, i32)] = &[
    ("required", pb::ClientAuthentication::Required as i32),
    ("not_required", pb::ClientAuthentication::NotRequired as i32),
    (
        "not_required_when_using_pkce",
        pb::ClientAuthentication::NotRequiredWhenUsingPkce as i32,
    ),
];

/// `PKCE` values by their manifest names.
const PKCE: &[(&str, i32)] = &[
    ("required", pb::Pkce::Required as i32),
    ("not_required", pb::Pkce::NotRequired as i32),
    (
        "not_required_when_using_client_authentication",
        pb::Pkce::NotRequiredWhenUsingClientAuthentication as i32,
    ),
];

/// `URLValidation` values by their manifest names.
const URL_VALIDATION: &[(&str, i32)] = &[
    ("exact_match", pb::UrlValidation::ExactMatch as i32),
    ("allow_wildcards", pb::UrlValidation::AllowWildcards as i32),
];

/// `EnabledGrant` values by their manifest names.
const GRANTS: &[(&str, i32)] = &[
    (
        "authorization_code",
        pb::EnabledGrant::AuthorizationCode as i32,
    ),
    ("implicit", pb::EnabledGrant::Implicit as i32),
    ("password", pb::EnabledGrant::Password as i32),
    ("refresh_token", pb::EnabledGrant::RefreshToken as i32),
    ("device_code", pb::EnabledGrant::DeviceCode as i32),
];

/// The wire value of `name` in `table`.
fn value_of(table: &[(&str, i32)], name: &str) -> i32 {
    table
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(0, |(_, v)| *v)
}

/// The manifest name of wire value `v` (`unspecified`, or `unknown(v)` for a value this
/// version does not know).
fn name_of(table: &[(&str, i32)], v: i32) -> String {
    match table.iter().find(|(_, x)| *x == v) {
        Some((n, _)) => n.to_string(),
        None if v == 0 => "unspecified".into(),
        None => format!("unknown({v})"),
    }
}

/// An app as written in the manifest.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    redirect_uris: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    origin_uris: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    logout_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    invite_redirect_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_authentication: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pkce: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    url_validation: Option<String>,
    #[serde(default)]
    grants: Vec<String>,
}

/// An app in its desired form, and as observed (without its secret): the enum values by
/// their manifest names, lists sorted and without repeats.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Spec {
    name: String,
    redirect_uris: Vec<String>,
    origin_uris: Vec<String>,
    logout_uri: String,
    invite_redirect_uri: String,
    client_authentication: String,
    pkce: String,
    url_validation: String,
    grants: Vec<String>,
}

/// An app the cloud holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct ObservedApp {
    client_id: String,
    #[serde(flatten)]
    spec: Spec,
}

fn set(items: impl IntoIterator<Item = String>) -> Vec<String> {
    items
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

impl Spec {
    /// The app as `ReadOAuthApp` answers it (its secret is not kept).
    fn from_wire(client_name: String, c: Option<pb::OAuthConfig>) -> Spec {
        let c = c.unwrap_or_default();
        Spec {
            name: client_name,
            redirect_uris: set(c.redirect_uris),
            origin_uris: set(c.origin_uris),
            logout_uri: c.logout_uri,
            invite_redirect_uri: c.invite_redirect_uri,
            client_authentication: name_of(CLIENT_AUTHENTICATION, c.client_authentication),
            pkce: name_of(PKCE, c.pkce),
            url_validation: name_of(URL_VALIDATION, c.url_validation),
            grants: set(c.enabled_grants.iter().map(|&g| name_of(GRANTS, g))),
        }
    }

    fn config(&self) -> pb::OAuthConfig {
        pb::OAuthConfig {
            client_authentication: value_of(CLIENT_AUTHENTICATION, &self.client_authentication),
            pkce: value_of(PKCE, &self.pkce),
            url_validation: value_of(URL_VALIDATION, &self.url_validation),
            origin_uris: self.origin_uris.clone(),
            redirect_uris: self.redirect_uris.clone(),
            logout_uri: self.logout_uri.clone(),
            enabled_grants: self.grants.iter().map(|g| value_of(GRANTS, g)).collect(),
            invite_redirect_uri: self.invite_redirect_uri.clone(),
        }
    }

    /// Each managed field as text, for details: `(field, value)`.
    fn fields(&self) -> [(&'static str, String); 8] {
        [
            ("redirect_uris", self.redirect_uris.join(", ")),
            ("origin_uris", self.origin_uris.join(", ")),
            ("logout_uri", self.logout_uri.clone()),
            ("invite_redirect_uri", self.invite_redirect_uri.clone()),
            ("client_authentication", self.client_authentication.clone()),
            ("pkce", self.pkce.clone()),
            ("url_validation", self.url_validation.clone()),
            ("grants", self.grants.join(", ")),
        ]
    }

    /// What a saved plan's change on app `client_id` assumed.
    fn fingerprint(&self, client_id: &str) -> String {
        let text = serde_json::to_string(self).expect("an app serializes");
        fingerprint(&["oauth_app", client_id, &text])
    }
}

/// Its operations, as written in a plan.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op")]
enum AppOp {
    #[serde(rename = "create_oauth_app")]
    Create { app: Spec },
    #[serde(rename = "update_oauth_app")]
    Update { client_id: String, app: Spec },
    #[serde(rename = "delete_oauth_app")]
    Delete { client_id: String },
}

/// The apps the cloud holds for `org_id`: `ListOAuthApps`, then `ReadOAuthApp` per client id
/// (at most `limit` at a time); an app deleted between the two is left out.
async fn list_apps(
    api: &dyn CloudApi,
    org_id: &str,
    limit: usize,
) -> Result<Vec<ObservedApp>, CloudError> {
    let request = pb::ListOAuthAppsRequest {
        org_id: org_id.to_string(),
    };
    let ids: pb::ListOAuthAppsResponse = super::call(api, "ListOAuthApps", false, &request).await?;
    let read = crate::cloud::observe::bounded(&ids.client_ids, limit.max(1), |id| async move {
        match read_app(api, org_id, id).await {
            Err(e) if e.is_not_found() => Ok(None),
            other => other.map(Some),
        }
    })
    .await?;
    Ok(read.into_iter().flatten().collect())
}

/// App `client_id` (`ReadOAuthApp`), without its secret.
async fn read_app(
    api: &dyn CloudApi,
    org_id: &str,
    client_id: &str,
) -> Result<ObservedApp, CloudError> {
    let request = pb::ReadOAuthAppRequest {
        org_id: org_id.to_string(),
        client_id: client_id.to_string(),
    };
    let answer: pb::ReadOAuthAppResponse =
        super::call(api, "ReadOAuthApp", false, &request).await?;
    Ok(ObservedApp {
        client_id: client_id.to_string(),
        spec: Spec::from_wire(answer.client_name, answer.oauth_config),
    })
}

/// Its desired form (`None`: not managed).
fn desired(value: Option<&Value>) -> Option<Vec<Spec>> {
    value.map(|v| Vec::<Spec>::deserialize(v).expect("OAuth apps in their desired form"))
}

/// What it observed (`None`: not read).
fn observed(value: Option<&Value>) -> Option<Vec<ObservedApp>> {
    value.map(|v| Vec::<ObservedApp>::deserialize(v).expect("OAuth apps as observed"))
}

/// How many reads observing may have in flight when the caller gives no limit (stale checks,
/// read-backs after an unknown outcome).
const READS: usize = 8;

#[async_trait::async_trait]
impl ResourceKind for OAuthApps {
    fn key(&self) -> &'static str {
        KEY
    }

    fn label(&self) -> &'static str {
        "OAuth app"
    }

    fn ops(&self) -> &'static [&'static str] {
        &["create_oauth_app", "update_oauth_app", "delete_oauth_app"]
    }

    fn check_op(&self, body: &Value) -> Result<(), String> {
        KindOp::parse::<AppOp>(body).map(|_| ())
    }

    fn section(&self) -> &'static str {
        "oauth_apps"
    }

    fn schema(&self) -> (Value, Vec<(&'static str, Value)>) {
        let names = |t: &[(&'static str, i32)]| t.iter().map(|(n, _)| *n).collect::<Vec<_>>();
        let uris = |what: &str| {
            json!({
                "description": what,
                "type": "array",
                "items": { "type": "string", "minLength": 1 }
            })
        };
        let section = json!({
            "description": "The organization's OAuth applications. Absent: OAuth apps are not managed. A listed app is created or made to match; apps not listed are left alone unless `prune: true`. Client secrets are never read into plans: read a new app's secret in the Viam app.",
            "type": "array",
            "items": { "$ref": "#/$defs/oauth_app" }
        });
        let app = json!({
            "title": "OAuth app",
            "description": "An OAuth application, named by its client name (unique in the manifest).",
            "type": "object",
            "additionalProperties": false,
            "required": ["name", "grants"],
            "properties": {
                "name": {
                    "description": "The client name.",
                    "type": "string",
                    "minLength": 1
                },
                "redirect_uris": uris("The URIs the authorization server may redirect to."),
                "origin_uris": uris("The origins allowed to make requests."),
                "logout_uri": { "description": "Where to send users after they log out.", "type": "string", "minLength": 1 },
                "invite_redirect_uri": { "description": "Where to send users who accept an invitation.", "type": "string", "minLength": 1 },
                "client_authentication": {
                    "description": "Whether clients authenticate with the client secret (default `required`).",
                    "enum": names(CLIENT_AUTHENTICATION)
                },
                "pkce": {
                    "description": "Whether clients must use PKCE (default `required`).",
                    "enum": names(PKCE)
                },
                "url_validation": {
                    "description": "How redirect URIs are matched (default `exact_match`).",
                    "enum": names(URL_VALIDATION)
                },
                "grants": {
                    "description": "The OAuth grant types the app may use.",
                    "type": "array",
                    "minItems": 1,
                    "items": { "enum": names(GRANTS) }
                }
            }
        });
        (section, vec![("oauth_app", app)])
    }

    fn validate(&self, v: &mut SectionValidator<'_, '_>, raw: &Value, list: &YPath) -> Value {
        let apps = match Vec::<RawApp>::deserialize(raw) {
            Ok(a) => a,
            Err(e) => {
                v.err(
                    list,
                    format!("oauth_apps: {e}"),
                    "see the manifest reference for `oauth_apps`",
                );
                return json!([]);
            }
        };
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        let mut out = vec![];
        for (i, a) in apps.iter().enumerate() {
            let at = list.idx(i);
            let mut ok = check_app_name(v, &a.name, &at);
            if ok && let Some(first) = seen.get(a.name.as_str()) {
                v.err(
                    &at.key("name"),
                    format!("duplicate OAuth app `{}` (first at line {first})", a.name),
                    "one entry per app: OAuth apps are identified by their name",
                );
                ok = false;
            }
            seen.entry(&a.name).or_insert_with(|| v.line(&at));
            for (field, uris) in [
                ("redirect_uris", &a.redirect_uris),
                ("origin_uris", &a.origin_uris),
            ] {
                for (j, uri) in uris.iter().enumerate() {
                    ok &= check_uri(v, uri, &at.key(field).idx(j));
                }
            }
            for (field, uri) in [
                ("logout_uri", &a.logout_uri),
                ("invite_redirect_uri", &a.invite_redirect_uri),
            ] {
                if let Some(uri) = uri {
                    ok &= check_uri(v, uri, &at.key(field));
                }
            }
            let mut choice = |field: &str, table: &[(&str, i32)], value: &Option<String>| {
                let value = value.as_deref().unwrap_or(table[0].0);
                let known = check_value(v, table, value, &at.key(field));
                ok &= known;
                value.to_string()
            };
            let client_authentication = choice(
                "client_authentication",
                CLIENT_AUTHENTICATION,
                &a.client_authentication,
            );
            let pkce = choice("pkce", PKCE, &a.pkce);
            let url_validation = choice("url_validation", URL_VALIDATION, &a.url_validation);
            if a.grants.is_empty() {
                v.err(
                    &at,
                    format!("OAuth app `{}` has no `grants`", a.name),
                    "list the grant types it may use, e.g. `grants: [authorization_code, refresh_token]`",
                );
                ok = false;
            }
            for (j, g) in a.grants.iter().enumerate() {
                ok &= check_value(v, GRANTS, g, &at.key("grants").idx(j));
            }
            if !ok {
                continue;
            }
            out.push(Spec {
                name: a.name.clone(),
                redirect_uris: set(a.redirect_uris.iter().cloned()),
                origin_uris: set(a.origin_uris.iter().cloned()),
                logout_uri: a.logout_uri.clone().unwrap_or_default(),
                invite_redirect_uri: a.invite_redirect_uri.clone().unwrap_or_default(),
                client_authentication,
                pkce,
                url_validation,
                grants: set(a.grants.iter().cloned()),
            });
        }
        json!(out)
    }

    fn export(&self, desired: &Value) -> Value {
        let apps = self::desired(Some(desired)).unwrap_or_default();
        let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
        let raw: Vec<RawApp> = apps
            .into_iter()
            .map(|s| RawApp {
                logout_uri: some(&s.logout_uri),
                invite_redirect_uri: some(&s.invite_redirect_uri),
                client_authentication: Some(s.client_authentication),
                pkce: Some(s.pkce),
                url_validation: Some(s.url_validation),
                name: s.name,
                redirect_uris: s.redirect_uris,
                origin_uris: s.origin_uris,
                grants: s.grants,
            })
            .collect();
        json!(raw)
    }

    /// Every app the cloud holds, by name. Apps sharing a name, and apps whose config holds
    /// a value this version does not know, are left out (with a warning), and so left alone.
    fn import(&self, i: &mut Importer<'_, '_>) -> Option<Value> {
        let apps = observed(i.observed().kinds.get(KEY))?;
        let mut by_name: BTreeMap<&str, Vec<&ObservedApp>> = BTreeMap::new();
        for a in &apps {
            by_name.entry(&a.spec.name).or_default().push(a);
        }
        let mut out = vec![];
        for (name, same) in by_name {
            if let [one] = same.as_slice() {
                if representable(&one.spec) {
                    out.push(one.spec.clone());
                } else {
                    i.warn(format!(
                        "OAuth app `{name}` ({}) is left out: its config holds a value fleetform does not know",
                        one.client_id
                    ));
                }
            } else {
                let ids: Vec<&str> = same.iter().map(|a| a.client_id.as_str()).collect();
                i.warn(format!(
                    "OAuth apps named `{name}` are left out: the cloud has {} of them ({})",
                    ids.len(),
                    ids.join(", ")
                ));
            }
        }
        (!out.is_empty()).then(|| json!(out))
    }

    fn reads(&self) -> &'static str {
        "the OAuth apps"
    }

    async fn observe(
        &self,
        api: &dyn CloudApi,
        org_id: &str,
        limit: usize,
    ) -> Result<Value, CloudError> {
        Ok(json!(list_apps(api, org_id, limit).await?))
    }

    fn plan(&self, p: &mut KindPlanner<'_, '_>) {
        let (Some(wanted), Some(apps)) = (
            desired(p.desired().kinds.get(KEY)),
            observed(p.observed().kinds.get(KEY)),
        ) else {
            return;
        };
        let mut by_name: BTreeMap<&str, Vec<&ObservedApp>> = BTreeMap::new();
        for a in &apps {
            by_name.entry(&a.spec.name).or_default().push(a);
        }
        for w in &wanted {
            match by_name.remove(w.name.as_str()).as_deref() {
                None | Some([]) => {
                    let op = AppOp::Create { app: w.clone() };
                    let mut c = app_change(Action::Create, &w.name, "not in the cloud", None, &op);
                    c.details = details(&Spec::default(), w);
                    c.precondition = Some(Precondition::Absent);
                    p.push(c);
                }
                Some([have]) if have.spec == *w => {}
                Some([have]) => {
                    let op = AppOp::Update {
                        client_id: have.client_id.clone(),
                        app: w.clone(),
                    };
                    let mut c = app_change(
                        Action::Update,
                        &w.name,
                        "config differs",
                        Some(&have.client_id),
                        &op,
                    );
                    c.details = details(&have.spec, w);
                    c.precondition = Some(Precondition::Fingerprint(
                        have.spec.fingerprint(&have.client_id),
                    ));
                    p.push(c);
                }
                Some(same) => {
                    let ids: Vec<&str> = same.iter().map(|a| a.client_id.as_str()).collect();
                    p.error(PlanError::Invalid {
                        kind: "OAuth app",
                        path: w.name.clone(),
                        message: format!(
                            "the cloud has {} OAuth apps of this name ({}); fleetform does not guess which one is meant\n  hint: rename or delete all but one of them in the Viam app",
                            ids.len(),
                            ids.join(", ")
                        ),
                    });
                }
            }
        }
        for have in by_name.into_values().flatten() {
            if p.prune() {
                let op = AppOp::Delete {
                    client_id: have.client_id.clone(),
                };
                let mut c = app_change(
                    Action::Delete,
                    &have.spec.name,
                    "not in the manifest; prune is on",
                    Some(&have.client_id),
                    &op,
                );
                c.precondition = Some(Precondition::Fingerprint(
                    have.spec.fingerprint(&have.client_id),
                ));
                p.push(c);
            } else {
                p.unmanaged(Unmanaged {
                    kind: Kind::OAuthApp,
                    path: have.spec.name.clone(),
                    id: have.client_id.clone(),
                });
            }
        }
    }

    async fn execute(&self, cx: &ExecContext<'_>, body: &Value) -> ExecResult {
        let op: AppOp = KindOp::parse(body).map_err(ExecError::Other)?;
        let (api, org_id) = (cx.api, cx.org_id);
        match &op {
            AppOp::Create { app } => {
                let request = pb::CreateOAuthAppRequest {
                    org_id: org_id.to_string(),
                    client_name: app.name.clone(),
                    oauth_config: Some(app.config()),
                };
                with_unknown_outcome(
                    || async {
                        let made: pb::CreateOAuthAppResponse =
                            super::call(api, "CreateOAuthApp", true, &request).await?;
                        // The secret is dropped here: it never leaves this call.
                        Ok(Some(made.client_id))
                    },
                    || async {
                        let apps = list_apps(api, org_id, READS).await?;
                        Ok(apps
                            .into_iter()
                            .find(|a| a.spec.name == app.name)
                            .map(|a| Some(a.client_id)))
                    },
                )
                .await
            }
            AppOp::Update { client_id, app } => {
                let request = pb::UpdateOAuthAppRequest {
                    org_id: org_id.to_string(),
                    client_id: client_id.clone(),
                    client_name: app.name.clone(),
                    oauth_config: Some(app.config()),
                };
                with_unknown_outcome(
                    || async {
                        let _: pb::UpdateOAuthAppResponse =
                            super::call(api, "UpdateOAuthApp", true, &request).await?;
                        Ok(None)
                    },
                    || async {
                        let now = read_app(api, org_id, client_id).await?;
                        Ok((now.spec == *app).then_some(None))
                    },
                )
                .await
            }
            AppOp::Delete { client_id } => {
                let request = pb::DeleteOAuthAppRequest {
                    org_id: org_id.to_string(),
                    client_id: client_id.clone(),
                };
                with_unknown_outcome(
                    || async {
                        let _: pb::DeleteOAuthAppResponse =
                            super::call(api, "DeleteOAuthApp", true, &request).await?;
                        Ok(None)
                    },
                    || async {
                        match read_app(api, org_id, client_id).await {
                            Err(e) if e.is_not_found() => Ok(Some(None)),
                            Err(e) => Err(e),
                            Ok(_) => Ok(None),
                        }
                    },
                )
                .await
            }
        }
    }

    async fn stale(
        &self,
        api: &dyn CloudApi,
        org_id: &str,
        change: &Change,
    ) -> Result<Option<String>, CloudError> {
        match &change.precondition {
            Some(Precondition::Absent) => {
                let apps = list_apps(api, org_id, READS).await?;
                Ok(apps.iter().any(|a| a.spec.name == change.path).then(|| {
                    "an OAuth app of this name was created since the plan was made".into()
                }))
            }
            Some(Precondition::Fingerprint(fp)) => {
                let id = change.resource_id.as_deref().unwrap_or_default();
                match read_app(api, org_id, id).await {
                    Err(e) if e.is_not_found() => {
                        Ok(Some("it was deleted since the plan was made".into()))
                    }
                    Err(e) => Err(e),
                    Ok(now) => Ok((&now.spec.fingerprint(id) != fp)
                        .then(|| "it changed since the plan was made".into())),
                }
            }
            _ => Ok(None),
        }
    }
}

/// A change of app `name`.
fn app_change(
    action: Action,
    name: &str,
    reason: &str,
    client_id: Option<&str>,
    op: &AppOp,
) -> Change {
    let mut c = Change::new(
        action,
        Kind::OAuthApp,
        name,
        reason,
        KindOp::op(Kind::OAuthApp, op),
    );
    c.resource_id = client_id.map(str::to_string);
    c
}

/// One detail per field that differs between `have` and `want`.
fn details(have: &Spec, want: &Spec) -> Vec<Detail> {
    let some = |s: String| (!s.is_empty()).then_some(s);
    have.fields()
        .into_iter()
        .zip(want.fields())
        .filter(|((_, b), (_, a))| a != b)
        .map(|((field, before), (_, after))| Detail {
            field: field.to_string(),
            before: some(before),
            after: some(after),
        })
        .collect()
}

/// Whether the manifest can declare `s`: every enum value is one it names.
fn representable(s: &Spec) -> bool {
    let known = |t: &[(&str, i32)], v: &str| t.iter().any(|(n, _)| *n == v);
    known(CLIENT_AUTHENTICATION, &s.client_authentication)
        && known(PKCE, &s.pkce)
        && known(URL_VALIDATION, &s.url_validation)
        && !s.grants.is_empty()
        && s.grants.iter().all(|g| known(GRANTS, g))
        && check_name_chars(&s.name).is_ok()
        && s.name.trim() == s.name
}

fn check_app_name(v: &mut SectionValidator<'_, '_>, name: &str, at: &YPath) -> bool {
    let problem = if name.trim().is_empty() {
        Some("OAuth app name must not be empty".to_string())
    } else if name.trim() != name {
        Some(format!(
            "OAuth app name `{name}` has leading or trailing whitespace"
        ))
    } else {
        check_name_chars(name)
            .err()
            .map(|p| format!("OAuth app name {p}"))
    };
    match problem {
        Some(p) => {
            v.err(
                &at.key("name"),
                p,
                "give the app a name of printable characters, as shown in the Viam app",
            );
            false
        }
        None => true,
    }
}

fn check_uri(v: &mut SectionValidator<'_, '_>, uri: &str, at: &YPath) -> bool {
    if uri.is_empty() || uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        v.err(
            at,
            format!("`{}` is not a URI", uri.escape_debug()),
            "write a URI without spaces, such as `https://dash.example.com/callback`",
        );
        return false;
    }
    true
}

fn check_value(
    v: &mut SectionValidator<'_, '_>,
    table: &[(&str, i32)],
    value: &str,
    at: &YPath,
) -> bool {
    let names: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
    if names.contains(&value) {
        return true;
    }
    let mut hint = String::new();
    if let Some(s) = closest(value, &names) {
        hint = format!("did you mean `{s}`? ");
    }
    hint.push_str(&format!("allowed values: {}", names.join(", ")));
    v.err(at, format!("unknown value `{value}`"), hint);
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        Spec {
            name: "dash".into(),
            redirect_uris: vec!["https://a.example/cb".into()],
            origin_uris: vec![],
            logout_uri: String::new(),
            invite_redirect_uri: String::new(),
            client_authentication: "required".into(),
            pkce: "not_required_when_using_client_authentication".into(),
            url_validation: "allow_wildcards".into(),
            grants: vec!["authorization_code".into(), "refresh_token".into()],
        }
    }

    #[test]
    fn a_spec_goes_to_the_wire_and_back_unchanged() {
        let s = spec();
        let c = s.config();
        assert_eq!(
            c.pkce,
            pb::Pkce::NotRequiredWhenUsingClientAuthentication as i32
        );
        assert_eq!(c.url_validation, pb::UrlValidation::AllowWildcards as i32);
        assert_eq!(
            c.enabled_grants,
            vec![
                pb::EnabledGrant::AuthorizationCode as i32,
                pb::EnabledGrant::RefreshToken as i32
            ]
        );
        assert_eq!(Spec::from_wire("dash".into(), Some(c)), s);
    }

    #[test]
    fn values_this_version_does_not_know_are_named_and_not_imported() {
        let c = pb::OAuthConfig {
            pkce: 9,
            ..spec().config()
        };
        let s = Spec::from_wire("dash".into(), Some(c));
        assert_eq!(s.pkce, "unknown(9)");
        assert!(!representable(&s));
        assert!(representable(&spec()));
        let unset = Spec::from_wire("dash".into(), None);
        assert_eq!(unset.client_authentication, "unspecified");
    }

    #[test]
    fn details_name_only_the_fields_that_differ() {
        let have = spec();
        let want = Spec {
            logout_uri: "https://a.example/bye".into(),
            grants: vec!["authorization_code".into()],
            ..spec()
        };
        let d = details(&have, &want);
        let got: Vec<(&str, Option<&str>, Option<&str>)> = d
            .iter()
            .map(|d| (d.field.as_str(), d.before.as_deref(), d.after.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("logout_uri", None, Some("https://a.example/bye")),
                (
                    "grants",
                    Some("authorization_code, refresh_token"),
                    Some("authorization_code")
                ),
            ]
        );
        assert_ne!(have.fingerprint("x"), want.fingerprint("x"));
        assert_ne!(have.fingerprint("x"), have.fingerprint("y"));
    }

    #[test]
    fn operations_are_checked_as_they_are_read() {
        let body = json!({"op": "delete_oauth_app", "client_id": "c"});
        assert!(OAuthApps.check_op(&body).is_ok());
        assert!(
            OAuthApps
                .check_op(&json!({"op": "update_oauth_app"}))
                .is_err()
        );
    }
}
