//! `fleetform cloud init`, `fleetform cloud serve` and `fleetform cloud accept-invite`.

use super::output::ExitStatus;
use crate::localcloud::{self, Faults, ServerOptions};
use anyhow::Context;
use clap::{Args, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

const SERVE_HELP: &str = "\
Examples:
  eval \"$(fleetform cloud init --db fleet.db)\"       # an organization and its key
  fleetform cloud serve --db fleet.db --listen 127.0.0.1:8080
  fleetform plan fleet.yaml --cloud http://127.0.0.1:8080   # in another shell

  # A distant, flaky cloud, for trying retries
  fleetform cloud serve --db fleet.db --latency 80ms --error-rate 0.05

  # Simulated machines; those whose config sets speed above 100 go offline 5s after it
  fleetform cloud serve --db fleet.db --simulate-machines \\
    --sim-fail '/components/0/attributes/speed_degs_per_sec>100' --sim-delay 5s";

#[derive(Debug, Subcommand)]
pub enum CloudCommand {
    /// Create a local cloud store with an organization and an API key, and print the key as
    /// `export VIAM_API_KEY_ID=…` / `export VIAM_API_KEY=…` lines (the only time it is shown).
    ///
    /// Running it again on the same store adds another organization and key.
    ///
    /// Example: eval "$(fleetform cloud init --db fleet.db)"
    Init(InitArgs),
    /// Serve a local cloud over gRPC (plaintext HTTP/2) until SIGINT or SIGTERM.
    ///
    /// Prints `listening on http://ADDR` once ready. Point fleetform at it with
    /// `--cloud http://ADDR` and the key printed by `fleetform cloud init`; the official Viam
    /// SDKs work too (dial with insecure=True).
    #[command(after_help = SERVE_HELP)]
    Serve(ServeArgs),
    /// Accept a pending invite in a local cloud store, as the invited person would in the
    /// Viam app: they become a member holding the invite's roles. Prints their user id.
    ///
    /// Example: fleetform cloud accept-invite --db fleet.db --org ORG_ID ops@acme.example
    AcceptInvite(AcceptInviteArgs),
}

#[derive(Debug, Args)]
pub struct AcceptInviteArgs {
    /// The SQLite database file.
    #[arg(long, value_name = "FILE", default_value = ".fleetform/cloud.db")]
    pub db: PathBuf,
    /// The organization's id.
    #[arg(long, value_name = "ORG_ID")]
    pub org: String,
    /// The invited email.
    #[arg(value_name = "EMAIL")]
    pub email: String,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The SQLite database file (created if missing).
    #[arg(long, value_name = "FILE", default_value = ".fleetform/cloud.db")]
    pub db: PathBuf,
    /// Name of the organization to create.
    #[arg(long, value_name = "NAME", default_value = "local")]
    pub org: String,
    /// Email of the organization's founding member.
    #[arg(long, value_name = "EMAIL", default_value = "owner@fleetform.local")]
    pub owner_email: String,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The SQLite database file (created if missing; run `cloud init` for credentials).
    #[arg(long, value_name = "FILE", default_value = ".fleetform/cloud.db")]
    pub db: PathBuf,
    /// Address to listen on. Port 0 picks a free port. Binding anything but loopback exposes
    /// the cloud to the network.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Delay added to every call, e.g. 20ms (to simulate a distant cloud).
    #[arg(long, value_name = "DURATION", default_value = "0ms", value_parser = super::ranges::latency)]
    pub latency: Duration,
    /// Probability (0 to 1) that an app call fails with UNAVAILABLE before doing anything.
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = parse_probability)]
    pub error_rate: f64,
    /// Probability (0 to 1) that an app call does its work, then fails with UNAVAILABLE.
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = parse_probability)]
    pub drop_after_commit_rate: f64,
    /// How long access tokens stay valid.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = super::ranges::token_ttl)]
    pub token_ttl: Duration,
    /// Close a connection that has had no traffic (and no open log tail) for this long.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = super::ranges::idle_timeout)]
    pub idle_timeout: Duration,
    #[command(flatten)]
    pub sim: SimArgs,
}

/// Simulated machines (`cloud serve`, and the in-process local cloud).
#[derive(Clone, Debug, Args)]
pub struct SimArgs {
    /// Run an agent per part that fetches its config, reports in (online) and writes logs.
    #[arg(long)]
    pub simulate_machines: bool,
    /// Make parts whose config (or an imported fragment) matches `<json-pointer><op><value>`
    /// unhealthy, e.g. `/components/0/attributes/speed_degs_per_sec>100`; op is one of
    /// = != > >= < <=. Repeatable. Needs --simulate-machines.
    #[arg(long, value_name = "RULE", requires = "simulate_machines")]
    pub sim_fail: Vec<localcloud::FailRule>,
    /// How a failing part shows it: `offline` (it stops reporting in) or `errors` (it logs
    /// an error each tick).
    #[arg(long, value_name = "MODE", default_value = "offline", value_parser = parse_fail_mode)]
    pub sim_fail_as: localcloud::FailMode,
    /// How long after fetching a matching config a part starts failing.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = super::ranges::sim_delay)]
    pub sim_delay: Duration,
    /// How often each simulated machine fetches its config and reports in.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = super::ranges::sim_tick)]
    pub sim_tick: Duration,
}

impl Default for SimArgs {
    fn default() -> Self {
        SimArgs {
            simulate_machines: false,
            sim_fail: vec![],
            sim_fail_as: localcloud::FailMode::Offline,
            sim_delay: Duration::ZERO,
            sim_tick: Duration::from_secs(1),
        }
    }
}

impl SimArgs {
    /// The simulation these flags ask for; `None` without `--simulate-machines`.
    pub fn options(&self) -> Option<localcloud::SimOptions> {
        self.simulate_machines.then(|| localcloud::SimOptions {
            tick: self.sim_tick,
            fail: self.sim_fail.clone(),
            delay: self.sim_delay,
            mode: self.sim_fail_as,
        })
    }
}

fn parse_fail_mode(s: &str) -> Result<localcloud::FailMode, String> {
    match s {
        "offline" => Ok(localcloud::FailMode::Offline),
        "errors" => Ok(localcloud::FailMode::Errors),
        _ => Err(format!("{s:?} is not `offline` or `errors`")),
    }
}

fn parse_probability(s: &str) -> Result<f64, String> {
    let p: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number; expected a probability such as 0.1"))?;
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(format!("{p} is not between 0 and 1"))
    }
}

pub async fn run(cmd: CloudCommand) -> anyhow::Result<ExitStatus> {
    match cmd {
        CloudCommand::Init(args) => {
            let key = localcloud::init(&args.db, &args.org, &args.owner_email)
                .with_context(|| format!("cannot initialise {}", args.db.display()))?;
            eprintln!(
                "Created organization {:?} ({}) in {}.",
                args.org,
                key.org_id,
                args.db.display()
            );
            // The one place a key is ever printed: on request, for `eval`.
            crate::sayln!("export VIAM_API_KEY_ID={}", key.key_id);
            crate::sayln!("export VIAM_API_KEY={}", key.key.expose());
            Ok(ExitStatus::Success)
        }
        CloudCommand::Serve(args) => serve(args).await,
        CloudCommand::AcceptInvite(args) => {
            if !args.db.exists() {
                anyhow::bail!(
                    "no local cloud store at {}\nhint: `fleetform cloud init --db FILE` makes one",
                    args.db.display()
                );
            }
            let user = localcloud::accept_invite(&args.db, &args.org, &args.email)
                .with_context(|| format!("cannot accept the invite of {:?}", args.email))?;
            eprintln!(
                "{} is now a member of organization {}.",
                args.email, args.org
            );
            crate::sayln!("{user}");
            Ok(ExitStatus::Success)
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitStatus> {
    let opts = ServerOptions {
        db: args.db.clone(),
        listen: args.listen,
        faults: Faults {
            latency: args.latency,
            error_rate: args.error_rate,
            drop_after_commit_rate: args.drop_after_commit_rate,
            unimplemented: &[],
        },
        token_ttl: args.token_ttl,
        idle_timeout: args.idle_timeout,
        simulate: args.sim.options(),
    };
    if !args.listen.ip().is_loopback() {
        eprintln!(
            "warning: listening on {}, which is reachable from other machines",
            args.listen
        );
    }
    // Handlers first: a signal that arrives as soon as we say we are listening is honoured.
    let stop = super::signals::shutdown()?;
    let server = localcloud::start(&opts).await?;
    crate::sayln!("listening on {}", server.endpoint());
    if !opts.faults.is_none() {
        let f = &opts.faults;
        eprintln!(
            "fault injection on: latency {:?}, error rate {}, drop-after-commit rate {}",
            f.latency, f.error_rate, f.drop_after_commit_rate
        );
    }
    if let Some(sim) = &opts.simulate {
        eprintln!(
            "simulated machines on: every {:?}, {} failure rule(s) after {:?}",
            sim.tick,
            sim.fail.len(),
            sim.delay
        );
    }
    stop.await;
    eprintln!("shutting down: finishing in-flight calls");
    server.shutdown().await?;
    Ok(ExitStatus::Success)
}
