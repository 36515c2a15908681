//! `fleetform secrets list|rotate LOCATION`: a location's secrets (the legacy credential
//! machines in a location may authenticate with).
//!
//! `secrets list --show-secrets` is the one place fleetform ever prints a secret value;
//! everything else shows ids only.
//!
//! # Rotation
//! A location holds at most 2 secrets and must never be left with none. `rotate` makes the
//! location hold exactly one secret, a new one:
//! 1. while the location is at the maximum (2), delete the oldest (another one remains);
//! 2. create the new secret;
//! 3. delete every remaining old secret, oldest first (the new one remains).
//!
//! A valid secret exists at every moment. If a step fails, the error says what was already
//! done; running `rotate` again finishes the job.

use super::output::ExitStatus;
use super::resolve;
use super::status_cmd::{ago, emit, outln};
use super::{GlobalArgs, OutputFormat};
use crate::cloud::CloudApi;
use crate::model::{LocationSecret, Timestamp};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};

/// The most secrets a location may hold at once.
const MAX_SECRETS: usize = 2;

const LIST_HELP: &str = "\
Secret values are shown only with --show-secrets: this is the only fleetform command that ever
prints one. Anyone who sees a value can act as a machine of the location.

Examples:
  fleetform secrets list HQ/Assembly
  fleetform secrets list abcde12345 --output json
  fleetform secrets list HQ/Assembly --show-secrets     # prints the values";

const ROTATE_HELP: &str = "\
Creates a new secret and deletes the old ones, so the location ends with exactly one secret, the
new one. A location holds at most 2 secrets: when it already has 2, the oldest is deleted first.
It is never left without a secret. Machines that authenticate with an old secret stop working
until they get the new one (`fleetform secrets list LOCATION --show-secrets`).

It first shows what it will create and delete and asks for confirmation on a terminal;
elsewhere (CI) pass --yes.

Examples:
  fleetform secrets rotate HQ/Assembly
  fleetform secrets rotate abcde12345 --yes --output json";

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// List a location's secrets: id, when created, age and state (values only with
    /// --show-secrets).
    #[command(after_help = LIST_HELP)]
    List(ListArgs),
    /// Replace a location's secrets with one new secret (never leaving it without one).
    #[command(after_help = ROTATE_HELP)]
    Rotate(RotateArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// The location: a path such as `HQ/Assembly`, or a location id.
    #[arg(value_name = "LOCATION")]
    pub location: String,

    /// The organization (a name or an id). Default: the only one the API key sees.
    #[arg(long, value_name = "ORG")]
    pub org: Option<String>,

    /// Also print each secret's value. The only place fleetform prints a secret.
    #[arg(long)]
    pub show_secrets: bool,

    /// `text` for people, `json` for programs.
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT", default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Which cloud, and with which key.
    #[command(flatten)]
    pub cloud: super::target::CloudArgs,
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    /// The location: a path such as `HQ/Assembly`, or a location id.
    #[arg(value_name = "LOCATION")]
    pub location: String,

    /// Rotate without asking for confirmation.
    #[arg(short = 'y', long)]
    pub yes: bool,

    /// The organization (a name or an id). Default: the only one the API key sees.
    #[arg(long, value_name = "ORG")]
    pub org: Option<String>,

    /// `text` for people, `json` for programs.
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT", default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Which cloud, and with which key.
    #[command(flatten)]
    pub cloud: super::target::CloudArgs,
}

/// Runs `fleetform secrets …`.
pub async fn run(cmd: SecretsCommand, global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let org = match &cmd {
        SecretsCommand::List(a) => a.org.clone(),
        SecretsCommand::Rotate(a) => a.org.clone(),
    };
    let target = resolve::connect_org(global, org.as_deref()).await?;
    let result = match &cmd {
        SecretsCommand::List(args) => list(args, &target.client).await,
        SecretsCommand::Rotate(args) => rotate_leased(args, &target.client).await,
    };
    target.finish(result).await
}

/// Oldest first.
fn sorted(mut secrets: Vec<LocationSecret>) -> Vec<LocationSecret> {
    secrets.sort_by(|a, b| (a.created_on, &a.id).cmp(&(b.created_on, &b.id)));
    secrets
}

fn state(s: &LocationSecret) -> &'static str {
    if s.enabled { "enabled" } else { "disabled" }
}

/// A secret as JSON: never its value unless `show` is set.
fn secret_json(s: &LocationSecret, now: Timestamp, show: bool) -> serde_json::Value {
    let mut v = serde_json::json!({
        "id": s.id,
        "created_on": s.created_on.map(|t| t.to_string()),
        "age_seconds": s.created_on.map(|t| t.seconds_until(now).max(0)),
        "state": state(s),
    });
    if show {
        v["secret"] = serde_json::Value::String(s.secret.expose().to_string());
    }
    v
}

async fn list(args: &ListArgs, api: &dyn CloudApi) -> anyhow::Result<ExitStatus> {
    let org = resolve::organization(api, args.org.as_deref()).await?;
    let (path, location) = resolve::resolve_location(api, &org.id, &args.location).await?;
    let secrets = sorted(
        api.location_secrets(&location.id)
            .await
            .with_context(|| format!("cannot read the secrets of location `{path}`"))?,
    );
    let now = Timestamp::now();
    let mut out = String::new();
    match args.output {
        OutputFormat::Json => {
            let doc = serde_json::json!({
                "location": { "id": location.id, "path": path },
                "secrets": secrets.iter().map(|s| secret_json(s, now, args.show_secrets)).collect::<Vec<_>>(),
            });
            outln!(out, "{}", serde_json::to_string_pretty(&doc)?);
        }
        OutputFormat::Text => {
            outln!(
                out,
                "Location `{path}` ({}): {} secret{}",
                location.id,
                secrets.len(),
                if secrets.len() == 1 { "" } else { "s" }
            );
            for s in &secrets {
                let created = s
                    .created_on
                    .map_or_else(|| "(unknown)".to_string(), |t| t.to_string());
                let age = ago(s.created_on, now).replace(" ago", " old");
                let mut line = format!("  {}  created {created}  {age}  {}", s.id, state(s));
                if args.show_secrets {
                    line.push_str(&format!("  secret {}", s.secret.expose()));
                }
                outln!(out, "{line}");
            }
            if !args.show_secrets && !secrets.is_empty() {
                eprintln!("(values hidden; pass --show-secrets to print them)");
            }
        }
    }
    emit(&out)?;
    Ok(ExitStatus::Success)
}

/// [`rotate`] under the organization's lease ([`crate::lease`]), refused at once if another
/// fleetform holds it.
async fn rotate_leased(
    args: &RotateArgs,
    client: &crate::cloud::Client,
) -> anyhow::Result<ExitStatus> {
    let api: std::sync::Arc<dyn CloudApi> = std::sync::Arc::new(client.clone());
    let org = resolve::organization(api.as_ref(), args.org.as_deref()).await?;
    let guard = crate::lease::Guard::take(
        std::sync::Arc::clone(&api),
        &org.id,
        "secrets rotate",
        std::time::Duration::ZERO,
    )
    .await?;
    let result = rotate(args, client).await;
    guard.release().await;
    result
}

async fn rotate(args: &RotateArgs, api: &dyn CloudApi) -> anyhow::Result<ExitStatus> {
    let org = resolve::organization(api, args.org.as_deref()).await?;
    let (path, location) = resolve::resolve_location(api, &org.id, &args.location).await?;
    if !args.yes {
        let old = sorted(
            api.location_secrets(&location.id)
                .await
                .with_context(|| format!("cannot read the secrets of location `{path}`"))?,
        );
        let now = Timestamp::now();
        eprintln!(
            "{}",
            super::term::clean(&format!(
                "Rotating the secrets of location `{path}` ({}) will create one new secret and \
                 delete {}:",
                location.id,
                match old.len() {
                    0 => "nothing".to_string(),
                    1 => "the old one".to_string(),
                    n => format!("the {n} old ones"),
                }
            ))
        );
        for s in &old {
            let age = ago(s.created_on, now).replace(" ago", " old");
            eprintln!("{}", super::term::clean(&format!("  - {} ({age})", s.id)));
        }
        eprintln!(
            "Machines that authenticate with an old secret stop working until they get the new one."
        );
        super::apply_cmd::ask_yes(
            "Rotate?",
            "rotate",
            "check which machines use the location's secrets, then pass --yes",
        )?;
    }
    let (created, deleted) = rotate_secrets(api, &location.id, &path).await?;
    let now = Timestamp::now();
    let remaining = sorted(
        api.location_secrets(&location.id)
            .await
            .with_context(|| format!("cannot read the secrets of location `{path}`"))?,
    );
    let mut out = String::new();
    match args.output {
        OutputFormat::Json => {
            let doc = serde_json::json!({
                "location": { "id": location.id, "path": path },
                "created": created,
                "deleted": deleted,
                "secrets": remaining.iter().map(|s| secret_json(s, now, false)).collect::<Vec<_>>(),
            });
            outln!(out, "{}", serde_json::to_string_pretty(&doc)?);
        }
        OutputFormat::Text => {
            outln!(
                out,
                "Rotated the secrets of location `{path}` ({}):",
                location.id
            );
            outln!(out, "  + created {created}");
            for id in &deleted {
                outln!(out, "  - deleted {id}");
            }
            outln!(
                out,
                "Machines that use a location secret need the new one: fleetform secrets list {path} --show-secrets"
            );
        }
    }
    emit(&out)?;
    Ok(ExitStatus::Success)
}

/// Performs the rotation (see the module docs); returns the new secret's id and the deleted
/// ids, in the order deleted.
pub async fn rotate_secrets(
    api: &dyn CloudApi,
    location_id: &str,
    path: &str,
) -> anyhow::Result<(String, Vec<String>)> {
    let old = sorted(
        api.location_secrets(location_id)
            .await
            .with_context(|| format!("cannot read the secrets of location `{path}`"))?,
    );
    let mut old_ids: Vec<String> = old.iter().map(|s| s.id.clone()).collect();
    let mut deleted: Vec<String> = vec![];
    let done = |deleted: &[String]| {
        if deleted.is_empty() {
            "nothing was changed".to_string()
        } else {
            format!("already deleted: {}", deleted.join(", "))
        }
    };

    // 1. Make room: at the maximum, the oldest goes first (another one remains).
    while old_ids.len() >= MAX_SECRETS {
        let oldest = old_ids.remove(0);
        api.delete_location_secret(location_id, &oldest)
            .await
            .with_context(|| {
                format!(
                    "cannot delete the oldest secret {oldest} of location `{path}` to make room ({})",
                    done(&deleted)
                )
            })?;
        deleted.push(oldest);
    }

    // 2. The new secret.
    let after = api
        .create_location_secret(location_id)
        .await
        .with_context(|| {
            format!(
                "cannot create a new secret for location `{path}` ({}; the location keeps {})\nhint: run `fleetform secrets rotate {path}` again",
                done(&deleted),
                if old_ids.is_empty() { "no secret".to_string() } else { old_ids.join(", ") }
            )
        })?;
    let new: Vec<&LocationSecret> = after
        .iter()
        .filter(|s| !old_ids.contains(&s.id) && !deleted.contains(&s.id))
        .collect();
    let created = match new.as_slice() {
        [one] => one.id.clone(),
        _ => bail!(
            "created a secret for location `{path}` but cannot tell which one it is (the location now holds {}); the old secrets were kept\nhint: check with `fleetform secrets list {path}`",
            after
                .iter()
                .map(|s| s.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };

    // 3. The remaining old ones, oldest first; the new one always remains.
    for id in old_ids {
        api.delete_location_secret(location_id, &id)
            .await
            .with_context(|| {
                format!(
                    "created the new secret {created} for location `{path}`, but cannot delete the old secret {id} ({})\nhint: run `fleetform secrets rotate {path}` again",
                    done(&deleted)
                )
            })?;
        deleted.push(id);
    }
    Ok((created, deleted))
}

impl SecretsCommand {
    /// The cloud options of the subcommand.
    pub(super) fn cloud_args(&self) -> &super::target::CloudArgs {
        match self {
            SecretsCommand::List(a) => &a.cloud,
            SecretsCommand::Rotate(a) => &a.cloud,
        }
    }
}
