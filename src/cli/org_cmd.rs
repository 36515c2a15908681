//! `fleetform org …`: organizations the API key can see.

use super::{GlobalArgs, OutputFormat, target};
use crate::cloud::CloudApi;
use clap::Subcommand;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// List the organizations the API key can see.
    List {
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
}

pub async fn run(cmd: OrgCommand, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let target = target::connect(global).await?;
    let result = match cmd {
        OrgCommand::List { output } => list(&target.client, output).await,
    };
    target.close().await?;
    result
}

async fn list(client: &dyn CloudApi, output: OutputFormat) -> anyhow::Result<ExitCode> {
    let orgs = client.list_organizations().await?;
    match output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&orgs)?),
        OutputFormat::Text => {
            if orgs.is_empty() {
                println!("No organizations visible to this API key.");
            }
            for o in &orgs {
                let ns = if o.public_namespace.is_empty() {
                    String::new()
                } else {
                    format!("  namespace {}", o.public_namespace)
                };
                println!("{}  {}{ns}", o.id, o.name);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
