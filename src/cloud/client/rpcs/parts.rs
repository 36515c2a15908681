//! Machine parts: the parts themselves, their history and logs.

use super::*;

impl Client {
    pub(super) async fn get_parts(&self, machine_id: &str) -> Result<Vec<Part>, CloudError> {
        let req = pb::GetRobotPartsRequest {
            robot_id: machine_id.to_string(),
        };
        // Decoded with the configs' `Struct`s left encoded (see `convert::GetRobotPartsReply`).
        let resp: convert::GetRobotPartsReply = self
            .call("GetRobotParts", Kind::Read, req, |channel, request| {
                app_unary(
                    channel,
                    "/viam.app.v1.AppService/GetRobotParts",
                    "GetRobotParts",
                    request,
                )
            })
            .await?;
        resp.parts
            .into_iter()
            .map(|p| {
                convert::part_from_reply(p).map_err(|e| {
                    CloudError::new(
                        "GetRobotParts",
                        Code::Other,
                        format!("a part's robot_config does not decode: {e}"),
                    )
                })
            })
            .collect()
    }

    pub(super) async fn get_part(&self, part_id: &str) -> Result<Part, CloudError> {
        let req = pb::GetRobotPartRequest {
            id: part_id.to_string(),
        };
        let resp = rpc!(self, Read, "GetRobotPart", app.get_robot_part, req).await?;
        let mut part = required("GetRobotPart", "part", resp.part)?;
        if part.robot_config_json.is_none() && !resp.config_json.is_empty() {
            part.robot_config_json = Some(resp.config_json);
        }
        Ok(convert::part(part))
    }

    pub(super) async fn new_part(
        &self,
        machine_id: &str,
        name: &str,
    ) -> Result<String, CloudError> {
        let req = pb::NewRobotPartRequest {
            robot_id: machine_id.to_string(),
            part_name: name.to_string(),
        };
        let resp = rpc!(self, Write, "NewRobotPart", app.new_robot_part, req).await?;
        Ok(resp.part_id)
    }

    pub(super) async fn update_part(
        &self,
        part_id: &str,
        name: &str,
        config: Option<&serde_json::Value>,
        last_known_update: Option<Timestamp>,
    ) -> Result<Part, CloudError> {
        const RPC: &str = "UpdateRobotPart";
        // Both forms: the JSON text keeps the config as written; the struct serves clouds
        // that do not know the JSON field.
        let req = pb::UpdateRobotPartRequest {
            id: part_id.to_string(),
            name: name.to_string(),
            robot_config: config.map(|c| config_struct(RPC, c)).transpose()?,
            last_known_update: last_known_update.map(convert::timestamp_to_proto),
            robot_config_json: config.map(|c| config_text(RPC, c)).transpose()?,
        };
        let resp = rpc!(self, Write, "UpdateRobotPart", app.update_robot_part, req).await?;
        Ok(convert::part(required(RPC, "part", resp.part)?))
    }

    pub(super) async fn delete_part(&self, part_id: &str) -> Result<(), CloudError> {
        let req = pb::DeleteRobotPartRequest {
            part_id: part_id.to_string(),
        };
        rpc!(self, Write, "DeleteRobotPart", app.delete_robot_part, req).await?;
        Ok(())
    }

    pub(super) async fn mark_part_main(&self, part_id: &str) -> Result<(), CloudError> {
        let req = pb::MarkPartAsMainRequest {
            part_id: part_id.to_string(),
        };
        rpc!(self, Write, "MarkPartAsMain", app.mark_part_as_main, req).await?;
        Ok(())
    }

    pub(super) async fn part_history(
        &self,
        part_id: &str,
        limit: Option<i64>,
    ) -> Result<Vec<HistoryEntry>, CloudError> {
        let req = pb::GetRobotPartHistoryRequest {
            id: part_id.to_string(),
            page_token: None,
            page_limit: limit,
            start: None,
            end: None,
        };
        let resp = rpc!(
            self,
            Read,
            "GetRobotPartHistory",
            app.get_robot_part_history,
            req
        )
        .await?;
        Ok(resp
            .history
            .into_iter()
            .map(convert::history_entry)
            .collect())
    }

    // `errors_only` is deprecated on the wire in favour of `levels` but still honoured; fleetform
    // passes the caller's choice through unchanged.
    #[allow(deprecated)]
    pub(super) async fn part_logs(
        &self,
        part_id: &str,
        query: &LogQuery,
    ) -> Result<LogPage, CloudError> {
        let req = pb::GetRobotPartLogsRequest {
            id: part_id.to_string(),
            errors_only: query.errors_only,
            filter: query.filter.clone(),
            page_token: query.page_token.clone(),
            levels: query.levels.clone(),
            start: query.start.map(convert::timestamp_to_proto),
            end: query.end.map(convert::timestamp_to_proto),
            limit: query.limit,
        };
        let resp = rpc!(self, Read, "GetRobotPartLogs", app.get_robot_part_logs, req).await?;
        Ok(LogPage {
            entries: resp.logs.into_iter().map(convert::log_entry).collect(),
            next_page_token: Some(resp.next_page_token).filter(|t| !t.is_empty()),
        })
    }

    pub(super) async fn tail_part_logs(
        &self,
        part_id: &str,
        errors_only: bool,
        filter: Option<&str>,
    ) -> Result<LogStream, CloudError> {
        let req = pb::TailRobotPartLogsRequest {
            id: part_id.to_string(),
            errors_only,
            filter: filter.map(str::to_string),
        };
        let stream = rpc!(
            self,
            Stream,
            "TailRobotPartLogs",
            app.tail_robot_part_logs,
            req
        )
        .await?;
        // Every entry is forwarded; only empty batches (never sent by a well-behaved server)
        // are dropped, since a `LogStream` batch is never empty.
        let batches = stream.filter_map(|item| match item {
            Ok(batch) if batch.logs.is_empty() => None,
            Ok(batch) => Some(Ok(batch.logs.into_iter().map(convert::log_entry).collect())),
            Err(status) => Some(Err(status_error("TailRobotPartLogs", &status))),
        });
        Ok(Box::pin(batches))
    }

    pub(super) async fn push_logs(
        &self,
        part_id: &str,
        entries: &[LogEntry],
    ) -> Result<(), CloudError> {
        let logs = entries
            .iter()
            .map(convert::log_entry_to_proto)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid("Log", e))?;
        let req = pb::LogRequest {
            id: part_id.to_string(),
            logs,
        };
        rpc!(self, Write, "Log", robot.log, req).await?;
        Ok(())
    }
}
