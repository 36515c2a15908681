//! `fleetform force-unlock ID`: frees the organization's lease whoever holds it, e.g. after
//! a crash left it held until it expires. ID is the lease's fragment id, as shown in every
//! "the organization is locked" error. See [`crate::lease`].

use super::GlobalArgs;
use super::output::ExitStatus;
use clap::Args;

const AFTER_HELP: &str = "\
Example:
  # The \"locked\" error names the lease's id; free it once its holder is known to be gone
  fleetform force-unlock 9f2c1d4e-0b7a-4c52-9e61-3f0a8d2b7c11 --org acme";

/// Arguments of `fleetform force-unlock`.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct ForceUnlockArgs {
    /// The lease's id (shown in the "locked" error).
    #[arg(value_name = "ID")]
    pub id: String,

    /// The organization (a name or an id). Default: the only one the API key sees.
    #[arg(long, value_name = "ORG")]
    pub org: Option<String>,
    /// Which cloud, and with which key.
    #[command(flatten)]
    pub cloud: super::target::CloudArgs,
}

/// Runs `fleetform force-unlock`.
pub async fn run(args: ForceUnlockArgs, global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let target = super::resolve::connect_org(global, args.org.as_deref()).await?;
    let result = crate::lease::force_unlock(&target.client, &args.id).await;
    let held = target.finish(result).await?;
    let line = match held {
        Some(h) => format!(
            "Unlocked: the lease held by {} ({} on {}) is free.",
            h.holder, h.operation, h.host
        ),
        None => "The lease was not held; nothing to do.".to_string(),
    };
    eprintln!("{}", super::term::clean(&line));
    Ok(ExitStatus::Success)
}
