//! `fleetform org …`: organizations the API key can see, their members and invites, and
//! public namespace availability.

use super::output::ExitStatus;
use super::resolve::{self, Places};
use super::status_cmd::{ago, emit, outln};
use super::{GlobalArgs, OutputFormat, target};
use crate::cloud::CloudApi;
use crate::model::{Grant, Organization, ResourceKind, Timestamp};
use anyhow::bail;
use clap::Subcommand;

const MEMBERS_HELP: &str = "\
Grants read `ROLE on KIND PATH`: `operator on location HQ/Assembly`, `owner on machine
HQ/Assembly/arm-01`, `owner on organization acme`.

Examples:
  fleetform org members
  fleetform org members --org acme --output json";

const NAMESPACE_HELP: &str = "\
A namespace holds lowercase letters, digits and dashes; one that does not is reported without
asking the cloud.

Exit codes:
  0  the namespace is available
  1  error (including a malformed namespace)
  2  the namespace is taken

Example:
  fleetform org namespace-available acme-robotics && echo free";

const LIST_HELP: &str = "\
Examples:
  fleetform org list --cloud https://app.viam.com:443   # with VIAM_API_KEY_ID and VIAM_API_KEY set
  fleetform org list -o json | jq -r '.[].name'";

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// List the organizations the API key can see.
    #[command(after_help = LIST_HELP)]
    List {
        /// `text` for people, `json` for programs.
        #[arg(short = 'o', long, value_enum, value_name = "FORMAT", default_value_t = OutputFormat::Text)]
        output: OutputFormat,
        /// Which cloud, and with which key.
        #[command(flatten)]
        cloud: super::target::CloudArgs,
    },
    /// List an organization's members and pending invites, with what each invite grants.
    #[command(after_help = MEMBERS_HELP)]
    Members {
        /// The organization (a name or an id). Default: the only one the API key sees.
        #[arg(long, value_name = "ORG")]
        org: Option<String>,
        /// `text` for people, `json` for programs.
        #[arg(short = 'o', long, value_enum, value_name = "FORMAT", default_value_t = OutputFormat::Text)]
        output: OutputFormat,
        /// Which cloud, and with which key.
        #[command(flatten)]
        cloud: super::target::CloudArgs,
    },
    /// Check whether a public namespace is free to claim (checks the format locally first).
    #[command(after_help = NAMESPACE_HELP)]
    NamespaceAvailable {
        /// The namespace, e.g. `acme-robotics`.
        #[arg(value_name = "NAME")]
        name: String,
        /// `text` for people, `json` for programs.
        #[arg(short = 'o', long, value_enum, value_name = "FORMAT", default_value_t = OutputFormat::Text)]
        output: OutputFormat,
        /// Which cloud, and with which key.
        #[command(flatten)]
        cloud: super::target::CloudArgs,
    },
}

pub async fn run(cmd: OrgCommand, global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    // A malformed namespace needs no cloud.
    if let OrgCommand::NamespaceAvailable { name, .. } = &cmd {
        check_namespace(name)?;
    }
    let target = match &cmd {
        OrgCommand::Members { org, .. } => resolve::connect_org(global, org.as_deref()).await?,
        _ => target::connect(global).await?,
    };
    let result = match cmd {
        OrgCommand::List { output, .. } => list(&target.client, output).await,
        OrgCommand::Members { org, output, .. } => {
            members(&target.client, org.as_deref(), output).await
        }
        OrgCommand::NamespaceAvailable { name, output, .. } => {
            namespace_available(&target.client, &name, output).await
        }
    };
    target.finish(result).await
}

async fn list(client: &dyn CloudApi, output: OutputFormat) -> anyhow::Result<ExitStatus> {
    let orgs = client.list_organizations().await?;
    let mut out = String::new();
    match output {
        OutputFormat::Json => outln!(out, "{}", serde_json::to_string_pretty(&orgs)?),
        OutputFormat::Text => {
            if orgs.is_empty() {
                outln!(out, "No organizations visible to this API key.");
            }
            for o in &orgs {
                let ns = if o.public_namespace.is_empty() {
                    String::new()
                } else {
                    format!("  namespace {}", o.public_namespace)
                };
                outln!(out, "{}  {}{ns}", o.id, o.name);
            }
        }
    }
    emit(&out)?;
    Ok(ExitStatus::Success)
}

/// A namespace is lowercase letters, digits and dashes.
fn check_namespace(name: &str) -> anyhow::Result<()> {
    if name.is_empty() {
        bail!(
            "the namespace is empty\nhint: a namespace holds lowercase letters, digits and dashes, e.g. `acme-robotics`"
        );
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        let suggestion: String = name
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        bail!(
            "namespace `{name}` contains {bad:?}: a namespace holds only lowercase letters, digits and dashes\nhint: try `{suggestion}`"
        );
    }
    Ok(())
}

async fn namespace_available(
    client: &dyn CloudApi,
    name: &str,
    output: OutputFormat,
) -> anyhow::Result<ExitStatus> {
    let available = client.namespace_available(name).await?;
    let mut out = String::new();
    match output {
        OutputFormat::Json => outln!(
            out,
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "namespace": name,
                "available": available,
            }))?
        ),
        OutputFormat::Text => {
            if available {
                outln!(out, "Namespace `{name}` is available.");
            } else {
                outln!(out, "Namespace `{name}` is taken.");
            }
        }
    }
    emit(&out)?;
    Ok(if available {
        ExitStatus::Success
    } else {
        ExitStatus::No
    })
}

/// What a grant applies to, for people: `(kind, path)`.
fn grant_target(g: &Grant, org: &Organization, places: &Places) -> (&'static str, String) {
    match g.resource_kind {
        ResourceKind::Organization => (
            "organization",
            if g.resource_id == org.id {
                org.name.clone()
            } else {
                g.resource_id.clone()
            },
        ),
        ResourceKind::Location => (
            "location",
            places
                .locations
                .iter()
                .find(|l| l.id == g.resource_id)
                .map_or_else(|| g.resource_id.clone(), |l| places.location_path(&l.id)),
        ),
        ResourceKind::Robot => (
            "machine",
            places
                .machines
                .iter()
                .find(|m| m.id == g.resource_id)
                .map_or_else(|| g.resource_id.clone(), |m| places.machine_path(m)),
        ),
    }
}

async fn members(
    client: &dyn CloudApi,
    org: Option<&str>,
    output: OutputFormat,
) -> anyhow::Result<ExitStatus> {
    let org = resolve::organization(client, org).await?;
    let (mut members, mut invites) = client.list_members(&org.id).await?;
    members.sort_by(|a, b| a.emails.cmp(&b.emails));
    invites.sort_by(|a, b| a.email.cmp(&b.email));
    let places = Places::load(client, &org.id, true).await?;
    let now = Timestamp::now();
    let mut out = String::new();
    match output {
        OutputFormat::Json => {
            let doc = serde_json::json!({
                "organization": { "id": org.id, "name": org.name },
                "members": members.iter().map(|m| serde_json::json!({
                    "user_id": m.user_id,
                    "emails": m.emails,
                    "date_added": m.date_added.map(|t| t.to_string()),
                })).collect::<Vec<_>>(),
                "invites": invites.iter().map(|i| serde_json::json!({
                    "email": i.email,
                    "created_on": i.created_on.map(|t| t.to_string()),
                    "grants": i.grants.iter().map(|g| {
                        let (kind, path) = grant_target(g, &org, &places);
                        serde_json::json!({
                            "role": g.role.as_str(),
                            "kind": kind,
                            "id": g.resource_id,
                            "path": path,
                        })
                    }).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            });
            outln!(out, "{}", serde_json::to_string_pretty(&doc)?);
        }
        OutputFormat::Text => {
            outln!(out, "Organization `{}` ({})", org.name, org.id);
            outln!(out);
            outln!(out, "Members ({}):", members.len());
            for m in &members {
                let emails = if m.emails.is_empty() {
                    "(no email)".to_string()
                } else {
                    m.emails.join(", ")
                };
                let added = m.date_added.map_or_else(
                    || "date unknown".to_string(),
                    |t| format!("{t} ({})", ago(Some(t), now)),
                );
                outln!(out, "  {emails}  added {added}  user {}", m.user_id);
            }
            outln!(out);
            outln!(out, "Invites ({}):", invites.len());
            for i in &invites {
                let invited = i
                    .created_on
                    .map_or_else(String::new, |t| format!("  invited {t}"));
                outln!(out, "  {}{invited}", i.email);
                for g in &i.grants {
                    let (kind, path) = grant_target(g, &org, &places);
                    outln!(out, "    {} on {kind} {path}", g.role.as_str());
                }
            }
        }
    }
    emit(&out)?;
    Ok(ExitStatus::Success)
}

impl OrgCommand {
    /// The cloud options of the subcommand.
    pub(super) fn cloud_args(&self) -> &super::target::CloudArgs {
        match self {
            OrgCommand::List { cloud, .. }
            | OrgCommand::Members { cloud, .. }
            | OrgCommand::NamespaceAvailable { cloud, .. } => cloud,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_are_checked_locally() {
        assert!(check_namespace("acme-robotics-2").is_ok());
        let e = check_namespace("Acme_Robotics").unwrap_err().to_string();
        assert!(e.contains("lowercase letters, digits and dashes"), "{e}");
        assert!(e.contains("hint: try `acme-robotics`"), "{e}");
        assert!(check_namespace("").is_err());
    }
}
