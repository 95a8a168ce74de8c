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

/// The messages of `group`/`stream` since `since` (oldest first): the newest `max` of them. A
/// missing group or stream is no events. Every page is read while the answer carries a next
/// token, empty pages included: FilterLogEvents "can return empty results while there are more
/// log events available through the token"
/// (https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_FilterLogEvents.html),
/// and a token that repeats ends the read (at most [`MAX_PAGES`] pages).
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
    let mut out: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let resp = client
            .filter_log_events()
            .log_group_name(group)
            .log_stream_names(stream)
            .start_time(start)
            .set_next_token(token.clone())
            .send()
            .await;
        let resp = match resp {
            Ok(r) => r,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                return Ok(out.into());
            }
            Err(e) => {
                return Err(error(
                    &format!("couldn't read log stream {group}/{stream}"),
                    &e,
                ));
            }
        };
        for m in resp.events().iter().filter_map(|e| e.message()) {
            out.push_back(m.to_owned());
            if out.len() > max {
                out.pop_front();
            }
        }
        match resp.next_token() {
            Some(t) if !t.is_empty() && token.as_deref() != Some(t) => token = Some(t.to_owned()),
            _ => break,
        }
    }
    Ok(out.into())
}

/// The most pages [`read_events`] reads (each up to 10,000 events or 1 MB).
pub const MAX_PAGES: usize = 1_000;
