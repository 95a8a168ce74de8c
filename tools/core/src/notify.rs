//! A word to the stakeholders (the runbook's checklists end with "Stakeholder informiert"): a short
//! message on a run's outcome, posted to an incoming webhook in Slack's or Teams' format.
//!
//! - Slack: `{"text": ...}` with mrkdwn, as Slack's incoming webhooks take it
//!   (<https://api.slack.com/messaging/webhooks>).
//! - Teams: a `message` with one Adaptive Card attachment, which Teams' incoming webhooks and the
//!   Workflows ("When a Teams webhook request is received") both accept
//!   (<https://learn.microsoft.com/en-us/microsoftteams/platform/webhooks-and-connectors/how-to/add-incoming-webhook>).
//!
//! The URL is a secret (the token is its path): registered with the redactor, masked in the log,
//! never printed; a message names only its host. A webhook that fails is a warning: the run's
//! verdict is the report's, whatever the webhook says.

use serde_json::{Value, json};

use crate::config::Text;
use crate::http::{HttpClient, HttpOptions};
use crate::report::{Report, Status};
use crate::secret::Secret;

/// The message format of a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Slack's `{"text": ...}` (also what Mattermost and most chat webhooks take).
    Slack,
    /// Teams: a message with an Adaptive Card.
    Teams,
}

impl Format {
    /// The format a URL's host implies: Teams for `*.webhook.office.com` and Power Automate /
    /// Logic Apps hosts, else Slack's (the common denominator).
    pub fn for_url(url: &str) -> Format {
        let host = reqwest::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
            .unwrap_or_default();
        let teams = ["webhook.office.com", "logic.azure.com", "powerplatform.com"];
        if teams
            .iter()
            .any(|t| host == *t || host.ends_with(&format!(".{t}")))
        {
            Format::Teams
        } else {
            Format::Slack
        }
    }
}

/// `[notify]` in deploy.toml.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// The webhook URL; write it as `${VAR}` (a secret either way).
    #[serde(default)]
    pub url: Option<Text>,
    /// Its format (default: from the URL's host).
    #[serde(default)]
    pub format: Option<Format>,
    /// Which tools post when the URL comes from here (default: health-check and rollback: the
    /// deploy verification, the KPI report and the rollback).
    #[serde(default)]
    pub tools: Option<Vec<String>>,
}

/// The tools that post by default.
pub const DEFAULT_TOOLS: &[&str] = &["health-check", "rollback"];

/// `--notify URL` and `--notify-format`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct NotifyArgs {
    /// Post a short message on the outcome to this incoming webhook (Slack or Teams; a secret:
    /// masked, never printed; a failure is a warning) [default: notify.url]
    #[arg(
        long,
        env = "DEPLOY_NOTIFY_URL",
        hide_env_values = true,
        value_name = "URL",
        help_heading = "Notify"
    )]
    pub notify: Option<Secret>,
    /// The webhook's format [default: notify.format, else teams for *.webhook.office.com and
    /// Power Automate hosts, else slack]
    #[arg(long, value_enum, value_name = "FORMAT", help_heading = "Notify")]
    pub notify_format: Option<Format>,
}

/// Where a tool's message goes.
#[derive(Debug, Clone)]
pub struct Target {
    url: Secret,
    format: Format,
}

impl NotifyArgs {
    /// The webhook for `tool`: the flag; else `[notify]` when it lists the tool (by default
    /// health-check and rollback); else none.
    pub fn target(&self, tool: &str, cfg: Option<&NotifyConfig>) -> Option<Target> {
        let from_file = cfg.filter(|c| match &c.tools {
            Some(t) => t.iter().any(|t| t == tool),
            None => DEFAULT_TOOLS.contains(&tool),
        });
        let url = match (&self.notify, from_file.and_then(|c| c.url.as_ref())) {
            (Some(u), _) => u.clone(),
            // A `${VAR}` this job does not set (a tool that does not read [notify] up front):
            // nothing to post to, said in the log.
            (None, Some(t)) if t.is_unset() => {
                tracing::warn!("notify.url: a ${{VAR}} in it is not set; no message sent");
                return None;
            }
            (None, Some(t)) if !t.expose().is_empty() => Secret::new(t.expose()),
            _ => return None,
        };
        let format = self
            .notify_format
            .or(cfg.and_then(|c| c.format))
            .unwrap_or_else(|| Format::for_url(url.expose()));
        Some(Target { url, format })
    }
}

impl Target {
    /// Posts the message of `report`; a failure comes back as the warning to show (naming the
    /// webhook's host only).
    pub async fn post(&self, report: &Report) -> Result<(), String> {
        let host = reqwest::Url::parse(self.url.expose())
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| "an invalid URL".to_owned());
        let failed =
            |why: String| format!("the notify webhook at {host} {why}; the verdict stands");
        let body =
            serde_json::to_vec(&payload(self.format, report)).map_err(|e| failed(e.to_string()))?;
        let opts = HttpOptions {
            request_timeout: std::time::Duration::from_secs(10),
            ..HttpOptions::default()
        };
        let client = HttpClient::new(&report.tool, opts).map_err(|e| failed(e.to_string()))?;
        let headers = [crate::http::Header::new("Content-Type", "application/json")];
        match client
            .send("POST", self.url.expose(), &headers, Some(body), None)
            .await
        {
            Ok(r) if (200..300).contains(&r.status) => {
                tracing::info!("notified the webhook at {host} ({:?})", self.format);
                Ok(())
            }
            Ok(r) => Err(failed(format!("answered {}", r.status))),
            // The error names the URL; the redactor has it (Secret::new), but say only the host.
            Err(e) => Err(failed(format!("could not be reached ({})", error_kind(&e)))),
        }
    }
}

fn error_kind(e: &crate::http::HttpError) -> &'static str {
    use crate::http::HttpError as E;
    match e {
        E::Invalid { .. } => "invalid URL",
        E::Dns { .. } => "DNS",
        E::Connect { .. } => "connection refused or unreachable",
        E::Tls { .. } => "TLS",
        E::Timeout { .. } => "timed out",
        E::Redirects { .. } => "too many redirects",
        E::BodyTooLarge { .. } => "answer too large",
        E::Io { .. } => "connection broke",
    }
}

/// The headline of a report: the tool, what it ran against, and how it ended.
pub fn headline(report: &Report) -> String {
    let verdict = match report.outcome {
        crate::Exit::Passed => "passed",
        _ => "FAILED",
    };
    crate::secret::redact(&format!("{} {verdict}: {}", report.tool, report.target))
}

/// Up to five lines under the headline: the summary, then the checks that did not pass.
pub fn lines(report: &Report) -> Vec<String> {
    let mut out = vec![report.summary.clone()];
    for c in report
        .checks
        .iter()
        .filter(|c| c.status != Status::Passed)
        .take(4)
    {
        out.push(format!(
            "{} {}: {}",
            c.status.mark(),
            c.name,
            c.reason.as_deref().unwrap_or("did not pass")
        ));
    }
    out.into_iter()
        .map(|l| crate::secret::redact(&l))
        .filter(|l| !l.is_empty())
        .collect()
}

/// The run's page on GitHub, when running in Actions.
fn run_link() -> Option<String> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    Some(format!(
        "{}/{}/actions/runs/{}",
        var("GITHUB_SERVER_URL")?,
        var("GITHUB_REPOSITORY")?,
        var("GITHUB_RUN_ID")?
    ))
}

/// The JSON body for `format`.
pub fn payload(format: Format, report: &Report) -> Value {
    let (head, lines, link) = (headline(report), lines(report), run_link());
    match format {
        Format::Slack => {
            let mut text = format!("*{head}*");
            for l in &lines {
                text.push('\n');
                text.push_str(l);
            }
            if let Some(l) = &link {
                text.push_str(&format!("\n<{l}|the run>"));
            }
            json!({ "text": text })
        }
        Format::Teams => {
            let mut body = vec![json!({
                "type": "TextBlock", "size": "Medium", "weight": "Bolder", "wrap": true,
                "text": head,
                "color": if report.outcome == crate::Exit::Passed { "Good" } else { "Attention" },
            })];
            body.extend(
                lines
                    .iter()
                    .map(|l| json!({ "type": "TextBlock", "wrap": true, "text": l })),
            );
            let mut card = json!({
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard", "version": "1.4", "body": body,
            });
            if let Some(l) = link {
                card["actions"] =
                    json!([{ "type": "Action.OpenUrl", "title": "The run", "url": l }]);
            }
            json!({
                "type": "message",
                "attachments": [{ "contentType": "application/vnd.microsoft.card.adaptive", "content": card }],
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Check;

    fn report() -> Report {
        let mut r = Report::new("health-check", "1.0.0", "staging (https://cc.example)");
        r.push(Check::new("Control Center health", Status::Failed).reason("status 503"));
        r.fail_with(crate::Exit::Failed, "1 of 1 checks failed");
        r.summary = "1 of 1 checks failed".into();
        r
    }

    #[test]
    fn the_format_follows_the_host_unless_set() {
        assert_eq!(
            Format::for_url("https://hooks.slack.com/services/T/B/x"),
            Format::Slack
        );
        assert_eq!(
            Format::for_url("https://acme.webhook.office.com/webhookb2/x"),
            Format::Teams
        );
        assert_eq!(
            Format::for_url("https://prod-01.westeurope.logic.azure.com:443/workflows/x"),
            Format::Teams
        );
        assert_eq!(Format::for_url("not a url"), Format::Slack);
    }

    #[test]
    fn slack_and_teams_bodies_carry_the_verdict_and_the_failed_checks() {
        let s = payload(Format::Slack, &report());
        let text = s["text"].as_str().unwrap();
        assert!(text.starts_with("*health-check FAILED: staging"), "{text}");
        assert!(text.contains("Control Center health: status 503"), "{text}");
        let t = payload(Format::Teams, &report());
        let card = &t["attachments"][0];
        assert_eq!(
            card["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        assert_eq!(card["content"]["body"][0]["color"], "Attention");
    }

    #[test]
    fn the_file_posts_for_its_tools_only_and_the_flag_always() {
        let cfg = NotifyConfig {
            url: Some(Text::literal("https://hooks.slack.com/services/x")),
            format: None,
            tools: None,
        };
        let none = NotifyArgs::default();
        assert!(none.target("health-check", Some(&cfg)).is_some());
        assert!(none.target("ecr-push", Some(&cfg)).is_none());
        let flag = NotifyArgs {
            notify: Some(Secret::new("https://hooks.example/x")),
            notify_format: Some(Format::Teams),
        };
        let t = flag.target("ecr-push", None).unwrap();
        assert_eq!(t.format, Format::Teams);
    }
}
