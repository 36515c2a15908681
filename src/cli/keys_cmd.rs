//! `fleetform keys list|rotate NAME`: the organization's API keys, and a new secret for one.
//! Also where `apply` hands the secrets of the keys it creates ([`KeysOutArgs`], [`deliver`]).
//!
//! A key's secret exists only once, when the cloud makes it (`CreateKey`, `RotateKey`). It is
//! written to a private file ([`crate::keyfile`], `--keys-out DIR`, default
//! `.fleetform/keys/NAME.env`), or with `--show-secrets` printed once on stdout instead, as
//! `export` lines; it is never in a plan, a saved plan, a log or an error. `keys list` shows
//! names, ids and roles, never a secret.
//!
//! `keys rotate` refuses the key the command itself runs with: rotating it would lock out
//! every process using it, this one included (rotate it with another owner key).

use super::output::ExitStatus;
use super::resolve;
use super::status_cmd::{emit, outln};
use super::{GlobalArgs, OutputFormat};
use crate::apply::NewKey;
use crate::cloud::CloudApi;
use crate::model::{ApiKey, Grant};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use std::path::PathBuf;

const LIST_HELP: &str = "\
Shows each key's name, id, when it was made and its roles; never a secret (the cloud does not
keep them to show).

Examples:
  fleetform keys list
  fleetform keys list --output json";

const ROTATE_HELP: &str = "\
Gives the key a new secret; the old one stops working. The new id and secret are written to
`--keys-out DIR/NAME.env` (0600; default .fleetform/keys), or printed once with --show-secrets.
The key fleetform runs with cannot be rotated by itself: use another owner key.

Examples:
  fleetform keys rotate ci-deploy
  fleetform keys rotate ci-deploy --keys-out secrets/ --yes
  fleetform keys rotate ci-deploy --show-secrets --yes    # prints export lines";

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List the organization's API keys: name, id, age and roles (never a secret).
    #[command(after_help = LIST_HELP)]
    List(ListArgs),
    /// Give an API key a new secret (written to a private file, or printed once).
    #[command(after_help = ROTATE_HELP)]
    Rotate(RotateArgs),
}

/// Where the secrets of new keys go.
#[derive(Clone, Debug, Default, Args)]
pub struct KeysOutArgs {
    /// The directory that receives each new API key's id and secret, one private file
    /// (0600) per key: `DIR/NAME.env`. Default: .fleetform/keys.
    #[arg(long, value_name = "DIR")]
    pub keys_out: Option<PathBuf>,
    /// Print each new API key's id and secret once on stdout (`export` lines) instead of
    /// writing a file. Anyone who sees them can act as the key.
    #[arg(long, conflicts_with = "keys_out")]
    pub show_secrets: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
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

#[derive(Debug, Args)]
pub struct RotateArgs {
    /// The key's name (or its id).
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Rotate without asking for confirmation.
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// The organization (a name or an id). Default: the only one the API key sees.
    #[arg(long, value_name = "ORG")]
    pub org: Option<String>,
    #[command(flatten)]
    pub out: KeysOutArgs,
    /// Which cloud, and with which key.
    #[command(flatten)]
    pub cloud: super::target::CloudArgs,
}

impl KeysCommand {
    pub(super) fn cloud_args(&self) -> &super::target::CloudArgs {
        match self {
            KeysCommand::List(a) => &a.cloud,
            KeysCommand::Rotate(a) => &a.cloud,
        }
    }
}

/// Runs `fleetform keys …`.
pub async fn run(cmd: KeysCommand, global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let org = match &cmd {
        KeysCommand::List(a) => a.org.clone(),
        KeysCommand::Rotate(a) => a.org.clone(),
    };
    let target = resolve::connect_org(global, org.as_deref()).await?;
    let result = match &cmd {
        KeysCommand::List(args) => list(args, &target.client).await,
        KeysCommand::Rotate(args) => rotate(args, &target.client).await,
    };
    target.finish(result).await
}

/// `operator on location abcde12345`.
fn grant_label(g: &Grant) -> String {
    format!(
        "{} on {} {}",
        g.role.as_str(),
        g.resource_kind.as_str(),
        g.resource_id
    )
}

async fn list(args: &ListArgs, api: &dyn CloudApi) -> anyhow::Result<ExitStatus> {
    let org = resolve::organization(api, args.org.as_deref()).await?;
    let keys = api
        .list_keys(&org.id)
        .await
        .with_context(|| format!("cannot list the API keys of organization `{}`", org.name))?;
    let own = api.own_key_id();
    let mut out = String::new();
    match args.output {
        OutputFormat::Json => {
            let doc: Vec<serde_json::Value> = keys
                .iter()
                .map(|k| {
                    serde_json::json!({
                        "id": k.id,
                        "name": k.name,
                        "created_on": k.created_on.map(|t| t.to_string()),
                        "roles": k.grants.iter().map(grant_label).collect::<Vec<_>>(),
                        "in_use_by_fleetform": own.as_deref() == Some(k.id.as_str()),
                    })
                })
                .collect();
            outln!(out, "{}", serde_json::to_string_pretty(&doc)?);
        }
        OutputFormat::Text => {
            outln!(
                out,
                "Organization `{}`: {} API key{}",
                org.name,
                keys.len(),
                if keys.len() == 1 { "" } else { "s" }
            );
            for k in &keys {
                let name = if k.name.is_empty() {
                    "(no name)"
                } else {
                    &k.name
                };
                let mark = if own.as_deref() == Some(k.id.as_str()) {
                    "  (this key)"
                } else {
                    ""
                };
                let roles: Vec<String> = k.grants.iter().map(grant_label).collect();
                outln!(out, "  {name}  {}  {}{mark}", k.id, roles.join(", "));
            }
        }
    }
    emit(&super::term::clean(&out))?;
    Ok(ExitStatus::Success)
}

/// The one key named (or with the id) `wanted`.
fn find<'a>(keys: &'a [ApiKey], wanted: &str) -> anyhow::Result<&'a ApiKey> {
    let by_name: Vec<&ApiKey> = keys.iter().filter(|k| k.name == wanted).collect();
    match by_name.as_slice() {
        [one] => return Ok(one),
        [] => {}
        many => bail!(
            "{} API keys are named `{wanted}` ({})\nhint: name the one you mean by its id",
            many.len(),
            many.iter()
                .map(|k| k.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
    keys.iter().find(|k| k.id == wanted).ok_or_else(|| {
        anyhow::anyhow!("no API key named `{wanted}`\nhint: `fleetform keys list` shows them")
    })
}

async fn rotate(args: &RotateArgs, api: &dyn CloudApi) -> anyhow::Result<ExitStatus> {
    let org = resolve::organization(api, args.org.as_deref()).await?;
    let keys = api
        .list_keys(&org.id)
        .await
        .with_context(|| format!("cannot list the API keys of organization `{}`", org.name))?;
    let key = find(&keys, &args.name)?;
    if api.own_key_id().as_deref() == Some(key.id.as_str()) {
        bail!(
            "API key `{}` ({}) is the key this command runs with; rotating it would lock out every process using it\nhint: rotate it with another key that owns the organization",
            args.name,
            key.id
        );
    }
    if !args.yes {
        eprintln!(
            "{}",
            super::term::clean(&format!(
                "Rotating API key `{}` ({}) gives it a new secret; whatever uses the old one stops working.",
                args.name, key.id
            ))
        );
        super::apply_cmd::ask_yes(
            "Rotate?",
            "rotate",
            "check what uses the key, then pass --yes",
        )?;
    }
    let secret = api
        .rotate_key(&key.id)
        .await
        .with_context(|| format!("cannot rotate API key `{}`", args.name))?;
    let name = if key.name.is_empty() {
        key.id.clone()
    } else {
        key.name.clone()
    };
    deliver(&args.out, vec![NewKey { name, secret }])?;
    Ok(ExitStatus::Success)
}

/// Hands the secrets of `keys` over, as `out` says: printed on stdout (`--show-secrets`), or
/// written one private file each. A file that cannot be written is an error naming the key
/// and how to get a new secret; the others are still written.
pub fn deliver(out: &KeysOutArgs, keys: Vec<NewKey>) -> anyhow::Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    if out.show_secrets {
        let mut text = String::new();
        for k in &keys {
            // The one place fleetform prints an API key: on request, for `eval`.
            text.push_str(&super::term::clean(&crate::keyfile::contents(
                &k.name, &k.secret,
            )));
        }
        return emit(&text);
    }
    let dir = out
        .keys_out
        .clone()
        .unwrap_or_else(|| PathBuf::from(crate::keyfile::DEFAULT_DIR));
    let mut failed = vec![];
    for k in &keys {
        match crate::keyfile::write(&dir, &k.name, &k.secret) {
            Ok(path) => eprintln!(
                "{}",
                super::term::clean(&format!(
                    "API key `{}` ({}): id and secret written to {} (shown nowhere else)",
                    k.name,
                    k.secret.id,
                    path.display()
                ))
            ),
            Err(e) => failed.push(format!("`{}` ({}): {e}", k.name, k.secret.id)),
        }
    }
    if !failed.is_empty() {
        bail!(
            "cannot write the secret of API key {}\nhint: `fleetform keys rotate NAME` gives a key a new secret",
            failed.join(", ")
        );
    }
    Ok(())
}
