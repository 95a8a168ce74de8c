//! CloudWatch Logs: where rollback keeps its incident records (runbook section 7), one JSON event
//! per incident in the log stream `incidents`, so the runbook's Insights query
//! (`filter @logStream like /incidents/ | stats avg(mttr_seconds)...`) reads them unchanged.

use std::time::SystemTime;

use aws_sdk_cloudwatchlogs::Client;
use aws_sdk_cloudwatchlogs::types::InputLogEvent;

use crate::aws::error;

/// The log stream incident records go to.
pub const INCIDENT_STREAM: &str = "incidents";

/// A CloudWatch Logs client.
pub fn client(conf: &aws_config::SdkConfig) -> Client {
    Client::new(conf)
}

/// Appends `message` as one event to `group`/`stream`, creating the group and the stream when they
/// do not exist yet.
pub async fn put_event(
    client: &Client,
    group: &str,
    stream: &str,
    message: &str,
) -> anyhow::Result<()> {
    if let Err(e) = client.create_log_group().log_group_name(group).send().await {
        let exists = e
            .as_service_error()
            .is_some_and(|s| s.is_resource_already_exists_exception());
        if !exists {
            return Err(error(&format!("couldn't create log group {group}"), &e));
        }
    }
    if let Err(e) = client
        .create_log_stream()
        .log_group_name(group)
        .log_stream_name(stream)
        .send()
        .await
    {
        let exists = e
            .as_service_error()
            .is_some_and(|s| s.is_resource_already_exists_exception());
        if !exists {
            return Err(error(
                &format!("couldn't create log stream {group}/{stream}"),
                &e,
            ));
        }
    }
    let millis = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let event = InputLogEvent::builder()
        .timestamp(millis)
        .message(message)
        .build()
        .map_err(|e| crate::exit::usage(format!("couldn't build a log event: {e}")))?;
    client
        .put_log_events()
        .log_group_name(group)
        .log_stream_name(stream)
        .log_events(event)
        .send()
        .await
        .map_err(|e| {
            error(
                &format!("couldn't write to log stream {group}/{stream}"),
                &e,
            )
        })?;
    Ok(())
}

/// The messages of `group`/`stream` since `since` (oldest first), at most `max`. A missing group
/// or stream is no events.
pub async fn read_events(
    client: &Client,
    group: &str,
    stream: &str,
    since: SystemTime,
    max: usize,
) -> anyhow::Result<Vec<String>> {
    let start = since
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    while out.len() < max {
        let resp = client
            .filter_log_events()
            .log_group_name(group)
            .log_stream_names(stream)
            .start_time(start)
            .set_next_token(token.take())
            .send()
            .await;
        let resp = match resp {
            Ok(r) => r,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                return Ok(out);
            }
            Err(e) => {
                return Err(error(
                    &format!("couldn't read log stream {group}/{stream}"),
                    &e,
                ));
            }
        };
        out.extend(
            resp.events()
                .iter()
                .filter_map(|e| e.message().map(str::to_owned)),
        );
        match resp.next_token() {
            Some(t) if !t.is_empty() && !resp.events().is_empty() => token = Some(t.to_owned()),
            _ => break,
        }
    }
    out.truncate(max);
    Ok(out)
}
