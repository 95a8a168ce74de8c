//! What the KPI report reads, put into moto: Availability datapoints (health-check
//! `--emit-metric`) and incident records (rollback's, stream `incidents`).

/// Puts one Availability datapoint per entry of `healthy` for `environment` in `namespace`, and
/// each of `records` (JSON) as an incident record in `group`.
pub async fn record(
    namespace: &str,
    environment: &str,
    healthy: &[bool],
    group: &str,
    records: &[String],
) {
    let sdk = crate::rig::moto_sdk().await;
    let cw = deploy_core::aws::cloudwatch(&sdk);
    for h in healthy {
        deploy_core::cloudwatch::put_availability(&cw, namespace, environment, *h)
            .await
            .unwrap();
    }
    let logs = deploy_core::logs::client(&sdk);
    for rec in records {
        deploy_core::logs::put_event(&logs, group, deploy_core::logs::INCIDENT_STREAM, rec)
            .await
            .unwrap();
    }
}
