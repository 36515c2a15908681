//! `fleetform rollout status|pause|resume|abort`: see and steer the organization's staged
//! rollout ([`crate::rollout`]); and the rollout lines `apply` prints. Parse, call the
//! library, print.
//!
//! `pause`, `resume` and `abort` write requests to the rollout record in the cloud; the apply
//! running the rollout reads them between waves (pause) or at its next health poll (abort).
//! No apply running: the next `apply` rolls back an aborted rollout before planning.

use super::GlobalArgs;
use super::output::ExitStatus;
use crate::cloud::{Client, CloudApi};
use crate::rollout::{Progress, Recovered, RolloutOutcome, Status};
use clap::{Args, Subcommand};
use std::sync::Arc;

const AFTER_HELP: &str = "\
Examples:
  fleetform rollout status                 # waves, machines and their health
  fleetform rollout pause                  # no new wave starts until resumed
  fleetform rollout resume
  fleetform rollout abort                  # stop now; on_abort (rollback or stop) runs";

#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Show the organization's last rollout: its waves, machines and their health.
    #[command(after_help = AFTER_HELP)]
    Status(RolloutArgs),
    /// Start no new wave until `rollout resume` (the wave under way finishes its gate).
    Pause(RolloutArgs),
    /// Let a paused rollout go on.
    Resume(RolloutArgs),
    /// Abort the rollout: its `on_abort` runs (roll back every machine it changed, or stop).
    Abort(RolloutArgs),
}

#[derive(Debug, Args)]
pub struct RolloutArgs {
    /// The organization (a name or an id). Default: the only one the API key sees.
    #[arg(long, value_name = "ORG")]
    pub org: Option<String>,
    /// Print JSON instead of text (`status` only).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub cloud: super::target::CloudArgs,
}

impl RolloutCommand {
    pub(super) fn cloud_args(&self) -> &super::target::CloudArgs {
        match self {
            RolloutCommand::Status(a)
            | RolloutCommand::Pause(a)
            | RolloutCommand::Resume(a)
            | RolloutCommand::Abort(a) => &a.cloud,
        }
    }
}

pub async fn run(cmd: RolloutCommand, global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let args = match &cmd {
        RolloutCommand::Status(a)
        | RolloutCommand::Pause(a)
        | RolloutCommand::Resume(a)
        | RolloutCommand::Abort(a) => a,
    };
    let target = super::resolve::connect_org(global, args.org.as_deref()).await?;
    let result = run_with(&cmd, args, &target.client).await;
    target.finish(result).await
}

async fn run_with(
    cmd: &RolloutCommand,
    args: &RolloutArgs,
    client: &Client,
) -> anyhow::Result<ExitStatus> {
    let org = super::resolve::organization(client, args.org.as_deref()).await?;
    let change: fn(&mut crate::rollout::state::Controls) = match cmd {
        RolloutCommand::Status(_) => return show_status(client, &org.id, args.json).await,
        RolloutCommand::Pause(_) => |c| c.pause = true,
        RolloutCommand::Resume(_) => |c| c.pause = false,
        RolloutCommand::Abort(_) => |c| c.abort = true,
    };
    let record = crate::rollout::state::set_controls(client, &org.id, change).await?;
    let running = record.state.as_ref().is_some_and(|s| !s.status.is_final());
    let what = match cmd {
        RolloutCommand::Pause(_) => {
            "Pause requested: no new wave starts until `fleetform rollout resume`."
        }
        RolloutCommand::Resume(_) => "Resume requested: the rollout goes on with its next wave.",
        _ => "Abort requested: the rollout stops at its next health poll and runs its on_abort.",
    };
    eprintln!("{what}");
    if !running {
        eprintln!(
            "No rollout is under way; the request applies to the next one (an abort is carried out by the next `fleetform apply`)."
        );
    }
    Ok(ExitStatus::Success)
}

async fn show_status(client: &Client, org_id: &str, json: bool) -> anyhow::Result<ExitStatus> {
    let (state, controls) = crate::rollout::status(client, org_id).await?;
    if json {
        crate::sayln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "rollout": state,
                "controls": controls,
            }))?
        );
        return Ok(ExitStatus::Success);
    }
    let Some(s) = state else {
        crate::sayln!("No rollout has run in this organization.");
        return Ok(ExitStatus::Success);
    };
    let mut head = format!(
        "Rollout {}: {} (wave {} of {})",
        &s.id[..8.min(s.id.len())],
        s.status.as_str(),
        s.wave,
        s.waves
    );
    if controls.pause {
        head.push_str(", pause requested");
    }
    if controls.abort {
        head.push_str(", abort requested");
    }
    crate::sayln!("{}", super::term::clean(&head));
    crate::sayln!("  {}", super::render::rollout::gates(&s.policy));
    if !s.tag_moves.is_empty() {
        crate::sayln!(
            "  tag moves: {}",
            super::term::clean(&s.tag_moves.join(", "))
        );
    }
    if let Some(m) = &s.message {
        crate::sayln!("  {}", super::term::clean(m));
    }
    // Live health of the machines it changed, in one call.
    let summaries = client
        .machine_summaries(org_id, &[])
        .await
        .unwrap_or_default();
    for (i, size) in s.wave_sizes.iter().enumerate() {
        let n = i + 1;
        let parts: Vec<_> = s.parts.iter().filter(|p| p.wave == n).collect();
        let state = if n <= s.passed {
            "passed"
        } else if n == s.wave {
            s.status.as_str()
        } else {
            "not started"
        };
        crate::sayln!("  wave {n}: {size} machine(s), {state}");
        for p in parts.iter().take(20) {
            let online = summaries
                .iter()
                .find(|x| x.part_id == p.part_id)
                .map_or("unknown", |x| match x.online_state {
                    crate::model::OnlineState::Online => "online",
                    crate::model::OnlineState::Offline => "offline",
                    crate::model::OnlineState::AwaitingSetup => "awaiting setup",
                    crate::model::OnlineState::Unknown => "unknown",
                });
            let line = format!(
                "    {}: {}, now {online}",
                p.path,
                p.health.as_deref().unwrap_or("not judged yet")
            );
            crate::sayln!("{}", super::term::clean(&line));
        }
        if parts.len() > 20 {
            crate::sayln!("    … and {} more", parts.len() - 20);
        }
    }
    Ok(ExitStatus::Success)
}

/// What `apply` prints as a rollout goes (stderr, one line per step).
pub(super) fn progress_printer() -> crate::rollout::ProgressFn {
    Arc::new(|p: &Progress| {
        let line = match p {
            Progress::WaveStarted {
                number,
                of,
                machines,
            } => {
                format!("Rollout: wave {number}/{of}: writing {machines} machine(s)…")
            }
            Progress::WavePassed {
                number,
                of,
                unhealthy: 0,
            } => {
                format!("Rollout: wave {number}/{of} healthy")
            }
            Progress::WavePassed {
                number,
                of,
                unhealthy,
            } => {
                format!(
                    "Rollout: wave {number}/{of} passed with {unhealthy} unhealthy machine(s), below the abort threshold"
                )
            }
            Progress::Paused { before_wave } => format!(
                "Rollout: paused before wave {before_wave}; `fleetform rollout resume` to go on"
            ),
            Progress::Resumed => "Rollout: resumed".into(),
            Progress::Aborted { reason } => format!("Rollout aborted: {reason}"),
            Progress::RollingBack { parts } => {
                format!("Rollout: rolling back {parts} part(s) to their previous config…")
            }
            Progress::RolledBack {
                restored,
                failed: 0,
            } => {
                format!(
                    "Rollout: rolled back; {restored} part(s) verified on their previous config"
                )
            }
            Progress::RolledBack { restored, failed } => format!(
                "Rollout: rollback incomplete: {restored} restored, {failed} failed; run `fleetform apply` again to finish it"
            ),
            Progress::Done => "Rollout: every wave passed".into(),
            Progress::Finished(_) => return,
        };
        eprintln!("{}", super::term::clean(&line));
    })
}

/// One line for a rollout's outcome, after the apply summary.
pub(super) fn outcome_line(o: &RolloutOutcome) -> String {
    let status = o.status.map_or("did not start", Status::as_str);
    let mut s = format!(
        "Rollout {status}: {} of {} wave(s) passed",
        o.waves_passed, o.waves
    );
    if let Some(m) = &o.message {
        s.push_str(&format!(" ({m})"));
    }
    s
}

/// What [`recover`] did.
pub(super) enum Recovery {
    /// There was nothing to recover: the cloud is as it was.
    Nothing,
    /// An interrupted rollout was resumed (its pins undone): the cloud changed, so whatever
    /// was read before is stale. Planning goes on.
    Resumed,
    /// The apply must stop here with this status (a rollout was rolled back or stopped).
    Stop(ExitStatus),
}

/// Before planning: finishes or resumes a rollout a crash left ([`crate::rollout::recover`]).
pub(super) async fn recover(
    client: &Client,
    org_id: &str,
    opts: &crate::rollout::RolloutOptions,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Recovery> {
    let api: Arc<dyn CloudApi> = Arc::new(client.clone());
    match crate::rollout::recover(api.as_ref(), org_id, opts, stop).await? {
        Recovered::Nothing => Ok(Recovery::Nothing),
        Recovered::Resumed { parts } => {
            eprintln!(
                "A rollout was interrupted; the {parts} part(s) it changed are healthy and stay. Planning the rest."
            );
            Ok(Recovery::Resumed)
        }
        Recovered::Ended(o) => {
            eprintln!(
                "A rollout was left unfinished; {}.",
                super::term::clean(&outcome_line(&o))
            );
            if let Some(r) = &o.rollback {
                for (path, why) in &r.failed {
                    eprintln!(
                        "  not restored: {}",
                        super::term::clean(&format!("{path}: {why}"))
                    );
                }
            }
            eprintln!(
                "Nothing else was applied; fix the manifest, then run `fleetform apply` again."
            );
            Ok(Recovery::Stop(ExitStatus::Failure))
        }
    }
}
