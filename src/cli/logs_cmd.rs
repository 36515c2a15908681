//! `fleetform logs PART`: a part's recent log entries, and with `--follow`, new ones as the
//! machine sends them.
//!
//! - History comes from `GetRobotPartLogs`, newest first, following `next_page_token` until
//!   `-n` entries are collected (or the log is exhausted); it is printed oldest first, so the
//!   newest entry is at the bottom, like `tail`.
//! - `--follow` opens `TailRobotPartLogs` *before* reading the history, so nothing sent in
//!   between is lost; entries that show up in both are printed once. It streams until Ctrl-C
//!   (SIGINT) or SIGTERM, then exits 0.
//! - Filters: `--filter TEXT` (message contains TEXT) and `--errors-only` go to the cloud;
//!   `--level` goes to the cloud for history and is applied here to streamed entries, which
//!   the tail RPC cannot filter by level.
//! - `--output json` prints one JSON object per line (JSON Lines), so it streams too.

use super::output::ExitStatus;
use super::resolve;
use super::{GlobalArgs, OutputFormat};
use crate::cloud::CloudApi;
use crate::model::{LogEntry, LogQuery};
use anyhow::{Context, bail};
use clap::Args;
use std::io::Write;
use tokio_stream::StreamExt;

const AFTER_HELP: &str = "\
PART is a part path (HQ/Assembly/arm-01/arm-01-main), a machine path (HQ/Assembly/arm-01, for
its main part) or a part id.

Text lines read `TIME LEVEL logger: message`, oldest first. With --output json, each entry is
one JSON object per line: {\"time\", \"level\", \"logger\", \"message\", \"host\", \"caller\", \"stack\", \"fields\"}.

Examples:
  fleetform logs HQ/Assembly/arm-01/arm-01-main
  fleetform logs HQ/Assembly/arm-01 -n 500 --level warn --level error
  fleetform logs HQ/Assembly/arm-01 --follow --filter camera      # Ctrl-C to stop";

/// Entries asked for per page (the cloud may cap it).
const PAGE: usize = 100;

/// Arguments of `fleetform logs`.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct LogsArgs {
    /// The part: a part path, a machine path (its main part) or a part id.
    #[arg(value_name = "PART")]
    pub part: String,

    /// The organization (a name or an id). Default: the only one the API key sees.
    #[arg(long, value_name = "ORG")]
    pub org: Option<String>,

    /// After the recent entries, keep printing new ones as they arrive, until Ctrl-C.
    #[arg(short, long)]
    pub follow: bool,

    /// Only entries at level `error` (the same as `--level error`).
    #[arg(long, conflicts_with = "levels")]
    pub errors_only: bool,

    /// Only entries at this level; repeat for several (`--level warn --level error`).
    #[arg(
        long = "level",
        value_name = "LEVEL",
        value_parser = ["debug", "info", "warn", "error"],
        ignore_case = true
    )]
    pub levels: Vec<String>,

    /// Only entries whose message contains TEXT (case-sensitive).
    #[arg(long, value_name = "TEXT")]
    pub filter: Option<String>,

    /// How many of the most recent entries to print (0: all of them).
    #[arg(short = 'n', long = "count", value_name = "N", default_value_t = 100, value_parser = super::ranges::count())]
    pub count: usize,

    /// `text` for people, `json` for programs (one JSON object per line).
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT", default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Which cloud, and with which key.
    #[command(flatten)]
    pub cloud: super::target::CloudArgs,
}

/// Runs `fleetform logs`.
pub async fn run(args: LogsArgs, global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let target = resolve::connect_org(global, args.org.as_deref()).await?;
    let result = logs(&args, &target.client).await;
    target.finish(result).await
}

async fn logs(args: &LogsArgs, api: &dyn CloudApi) -> anyhow::Result<ExitStatus> {
    // Signal handlers go in first: a SIGINT from here on ends the command cleanly.
    let stop = super::signals::shutdown()?;
    tokio::pin!(stop);
    let org = resolve::organization(api, args.org.as_deref()).await?;
    let (path, part) = resolve::resolve_part(api, &org.id, &args.part).await?;

    let levels: Vec<String> = if args.errors_only {
        vec!["error".to_string()]
    } else {
        args.levels.clone()
    };
    let filter = args.filter.clone().filter(|f| !f.is_empty());
    let mut stream = if args.follow {
        Some(
            api.tail_part_logs(&part.id, args.errors_only, filter.as_deref())
                .await
                .with_context(|| format!("cannot follow the logs of `{path}`"))?,
        )
    } else {
        None
    };

    // History: newest first from the cloud, printed oldest first.
    let mut recent: Vec<LogEntry> = vec![];
    let mut token: Option<String> = None;
    loop {
        let want = match args.count {
            0 => PAGE,
            n => (n - recent.len()).min(PAGE),
        };
        let query = LogQuery {
            filter: filter.clone(),
            levels: levels.clone(),
            errors_only: false,
            start: None,
            end: None,
            limit: Some(want as i64),
            page_token: token.take(),
        };
        let page = api
            .part_logs(&part.id, &query)
            .await
            .with_context(|| format!("cannot read the logs of `{path}`"))?;
        let empty = page.entries.is_empty();
        recent.extend(page.entries);
        if args.count != 0 && recent.len() >= args.count {
            recent.truncate(args.count);
            break;
        }
        match page.next_page_token {
            Some(t) if !t.is_empty() && !empty => token = Some(t),
            _ => break,
        }
    }
    recent.reverse();
    let mut out = Out::new(args.output);
    for e in &recent {
        if !out.entry(e)? {
            return Ok(ExitStatus::Success);
        }
    }
    let Some(stream) = stream.as_mut() else {
        if recent.is_empty() && args.output == OutputFormat::Text {
            let line = format!("No log entries for `{path}`{}.", describe_filters(args));
            eprintln!("{}", super::term::clean(&line));
        }
        return Ok(ExitStatus::Success);
    };
    if args.output == OutputFormat::Text {
        let line = format!("Following the logs of `{path}`; Ctrl-C to stop.");
        eprintln!("{}", super::term::clean(&line));
    }

    // Follow: until a signal, an error, or the cloud ending the stream.
    let mut seen = recent;
    loop {
        tokio::select! {
            () = &mut stop => break,
            item = stream.next() => match item {
                Some(Ok(batch)) => {
                    for e in batch {
                        if !levels.is_empty() && !levels.iter().any(|l| l.eq_ignore_ascii_case(&e.level)) {
                            continue;
                        }
                        // Sent between subscribing and reading the history: printed already.
                        if let Some(i) = seen.iter().position(|s| *s == e) {
                            seen.swap_remove(i);
                            continue;
                        }
                        if !out.entry(&e)? {
                            return Ok(ExitStatus::Success);
                        }
                    }
                }
                Some(Err(e)) => {
                    return Err(anyhow::Error::from(e)
                        .context(format!("the log stream of `{path}` failed")));
                }
                None => bail!(
                    "the cloud ended the log stream of `{path}`\nhint: run the command again to resume"
                ),
            },
        }
    }
    Ok(ExitStatus::Success)
}

fn describe_filters(args: &LogsArgs) -> String {
    let mut parts = vec![];
    if args.errors_only {
        parts.push("at level error".to_string());
    }
    if !args.levels.is_empty() {
        parts.push(format!("at level {}", args.levels.join(" or ")));
    }
    if let Some(f) = &args.filter {
        parts.push(format!("containing {f:?}"));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" {}", parts.join(", "))
    }
}

/// Prints entries to stdout; a closed pipe (`fleetform logs … | head`) ends the command
/// quietly instead of failing.
struct Out {
    format: OutputFormat,
}

impl Out {
    fn new(format: OutputFormat) -> Self {
        Out { format }
    }

    /// `Ok(false)` when the reader has gone away.
    fn entry(&mut self, e: &LogEntry) -> anyhow::Result<bool> {
        let line = match self.format {
            OutputFormat::Text => text_line(e),
            OutputFormat::Json => serde_json::to_string(&json_entry(e))?,
        };
        let mut stdout = std::io::stdout().lock();
        match writeln!(stdout, "{}", super::term::clean(&line)).and_then(|()| stdout.flush()) {
            Ok(()) => Ok(true),
            Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
            Err(err) => Err(anyhow::Error::from(err).context("cannot write to stdout")),
        }
    }
}

/// `TIME LEVEL logger: message`.
pub fn text_line(e: &LogEntry) -> String {
    let time = e.time.map_or_else(|| "-".to_string(), |t| t.to_string());
    let level = e.level.to_ascii_uppercase();
    if e.logger_name.is_empty() {
        format!("{time} {level:<5} {}", e.message)
    } else {
        format!("{time} {level:<5} {}: {}", e.logger_name, e.message)
    }
}

fn json_entry(e: &LogEntry) -> serde_json::Value {
    serde_json::json!({
        "time": e.time.map(|t| t.to_string()),
        "level": e.level,
        "logger": e.logger_name,
        "message": e.message,
        "host": e.host,
        "caller": e.caller,
        "stack": e.stack,
        "fields": e.fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Timestamp;

    fn entry(level: &str, logger: &str, message: &str) -> LogEntry {
        LogEntry {
            host: "h".into(),
            level: level.into(),
            time: Some(Timestamp {
                seconds: 1_795_634_546,
                nanos: 123_456_000,
            }),
            logger_name: logger.into(),
            message: message.into(),
            caller: None,
            stack: String::new(),
            fields: vec![],
        }
    }

    #[test]
    fn text_lines_read_time_level_logger_message() {
        assert_eq!(
            text_line(&entry("info", "robot_server", "started")),
            "2026-11-25T19:22:26.123456Z INFO  robot_server: started"
        );
        assert_eq!(
            text_line(&entry("error", "", "boom")),
            "2026-11-25T19:22:26.123456Z ERROR boom"
        );
    }

    #[test]
    fn json_entries_have_readable_times() {
        let v = json_entry(&entry("warn", "cam", "hot"));
        assert_eq!(v["time"], "2026-11-25T19:22:26.123456Z");
        assert_eq!(v["logger"], "cam");
        assert_eq!(v["level"], "warn");
    }
}
