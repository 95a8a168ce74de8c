//! Reading a tool's JSON report (`--format json`): its checks by name.

use serde_json::Value;

/// The check named `name` in `report` (a panic showing the report when there is none).
pub fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {report:#}"))
}

/// The reason of the check named `name` in `report` (empty when it gives none).
pub fn reason(report: &Value, name: &str) -> String {
    check(report, name)["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}
