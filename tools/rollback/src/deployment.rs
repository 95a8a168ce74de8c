//! The GitHub deployment of the rollback (`--github-deployment`): created before the services
//! roll back, its status set from how the incident ended.

use deploy_core::github::GithubClient;
use deploy_core::incidents::Outcome as IncidentOutcome;
use deploy_core::report::{AuditAction, AuditOutcome};
use deploy_core::{Check, Report, Status};

use crate::Settings;
use crate::incident::Incident;
use crate::plan::Plan;

pub(crate) async fn start_github_deployment(
    s: &Settings,
    plans: &[Plan],
    report: &mut Report,
) -> Option<(GithubClient, u64)> {
    let gh = s.github.clone()?;
    let Some(sha) = plans.iter().find_map(|p| p.target.sha()) else {
        tracing::warn!(
            "--github-deployment: no target revision carries a commit (deploy-action:sha): no GitHub deployment recorded"
        );
        report.audit(
            AuditAction::GithubCreateDeployment,
            "-",
            AuditOutcome::Failed,
            Some("no restored commit known".into()),
        );
        return None;
    };
    let desc = format!(
        "rollback of {} to {}",
        s.environment,
        plans
            .iter()
            .map(|p| p.target.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    match gh
        .create_deployment(sha, &s.environment, "rollback", &desc)
        .await
    {
        Ok(id) => {
            report.audit(
                AuditAction::GithubCreateDeployment,
                sha,
                AuditOutcome::Done,
                Some(format!("deployment {id}")),
            );
            let url = deploy_core::taskdef::run_url();
            match gh
                .create_deployment_status(id, "in_progress", "rolling back", url.as_deref())
                .await
            {
                Ok(()) => report.audit(
                    AuditAction::GithubCreateDeploymentStatus,
                    &id.to_string(),
                    AuditOutcome::Done,
                    Some("in_progress".into()),
                ),
                Err(e) => report.audit(
                    AuditAction::GithubCreateDeploymentStatus,
                    &id.to_string(),
                    AuditOutcome::Failed,
                    Some(e.to_string()),
                ),
            }
            Some((gh, id))
        }
        Err(e) => {
            report.audit(
                AuditAction::GithubCreateDeployment,
                sha,
                AuditOutcome::Failed,
                Some(e.to_string()),
            );
            report.push(Check::new("GitHub deployment", Status::Error).reason(e.to_string()));
            None
        }
    }
}

pub(crate) async fn finish_github_deployment(
    gh: Option<(GithubClient, u64)>,
    record: &Incident,
    report: &mut Report,
) {
    let Some((gh, id)) = gh else { return };
    let state = if record.outcome == IncidentOutcome::Recovered {
        "success"
    } else {
        "failure"
    };
    let desc = format!("rollback {}: {}", record.outcome, record.incident_id);
    match gh
        .create_deployment_status(id, state, &desc, record.run_url.as_deref())
        .await
    {
        Ok(()) => report.audit(
            AuditAction::GithubCreateDeploymentStatus,
            &id.to_string(),
            AuditOutcome::Done,
            Some(state.into()),
        ),
        Err(e) => {
            report.audit(
                AuditAction::GithubCreateDeploymentStatus,
                &id.to_string(),
                AuditOutcome::Failed,
                Some(e.to_string()),
            );
            report.push(Check::new("GitHub deployment", Status::Error).reason(e.to_string()));
        }
    }
}
