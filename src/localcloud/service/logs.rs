//! The AppService handlers for part logs: pages and live tails (`RobotService/Log` pushes them).

use super::*;

/// The stream `TailRobotPartLogs` answers with.
type TailStream = tonic::codegen::BoxStream<pb::TailRobotPartLogsResponse>;

pub(super) async fn get_robot_part_logs(
    svc: &AppService,
    req: Request<pb::GetRobotPartLogsRequest>,
) -> Res<pb::GetRobotPartLogsResponse> {
    read(svc, req, |db, who, r| {
        let part = store::part_readable(db, who, "id", &r.id)?;
        let limit = match r.limit {
            Some(n) if n < 0 => {
                return Err(Status::invalid_argument("limit must not be negative"));
            }
            Some(0) | None => DEFAULT_LOG_PAGE,
            Some(n) => n.min(MAX_LOG_PAGE),
        };
        let mut levels = r.levels.clone();
        #[allow(deprecated)]
        if r.errors_only {
            levels = vec!["error".into()];
        }
        let filter = store::LogFilter {
            before: page_token(r.page_token.as_deref())?,
            filter: r.filter.clone().filter(|f| !f.is_empty()),
            levels,
            start_us: r.start.as_ref().map(ts_us),
            end_us: r.end.as_ref().map(ts_us),
            limit,
        };
        let (logs, next) = store::part_logs(db, &part.id, &filter)?;
        Ok(pb::GetRobotPartLogsResponse {
            logs,
            next_page_token: next.map(|n| n.to_string()).unwrap_or_default(),
        })
    })
    .await
}

pub(super) async fn tail_robot_part_logs(
    svc: &AppService,
    req: Request<pb::TailRobotPartLogsRequest>,
) -> Res<TailStream> {
    // Subscribe before looking the part up, so nothing pushed in between is missed.
    let mut rx = svc.logs.subscribe();
    // The connection is busy while the tail is open, however quiet.
    let busy = req.remote_addr().map(|peer| svc.streams.open(peer));
    let r = read(svc, req, |db, who, r| {
        let part = store::part_readable(db, who, "id", &r.id)?;
        Ok((part.id, r.errors_only, r.filter.filter(|f| !f.is_empty())))
    })
    .await?
    .into_inner();
    let (part_id, errors_only, filter) = r;
    let stream = async_stream(move |tx| async move {
        let _busy = busy;
        loop {
            let batch = match rx.recv().await {
                Ok(b) => b,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(skipped = n, "log tail fell behind; entries skipped");
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if batch.part_id != part_id {
                continue;
            }
            let logs: Vec<LogEntry> = batch
                .entries
                .iter()
                .filter(|e| !errors_only || e.level.eq_ignore_ascii_case("error"))
                .filter(|e| filter.as_deref().is_none_or(|f| e.message.contains(f)))
                .cloned()
                .collect();
            // Never an empty batch: clients take one as the end of the stream.
            if logs.is_empty() {
                continue;
            }
            if tx
                .send(Ok(pb::TailRobotPartLogsResponse { logs }))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    ok(stream)
}
