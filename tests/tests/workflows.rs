//! The shipped workflows agree with the action: every `with:` key an example passes to
//! `afu9/deploy-action` (block or flow style) is an input of `action.yml`, and every output an
//! example reads from such a step is declared. The files are read as YAML. (zizmor lints them for
//! security in scripts/test.sh.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::BTreeSet;

use deploy_action_e2e::contract::{Yaml, declared, yaml};
use deploy_action_e2e::rig;

/// Every step of every job that uses the action.
fn action_steps(workflow: &Yaml) -> Vec<Yaml> {
    let Some(jobs) = workflow["jobs"].as_hash() else {
        return Vec::new();
    };
    jobs.values()
        .filter_map(|job| job["steps"].as_vec())
        .flatten()
        .filter(|step| {
            step["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("afu9/deploy-action@"))
        })
        .cloned()
        .collect()
}

#[test]
fn examples_use_only_declared_inputs_and_outputs() {
    let root = rig::workspace_root();
    let action = std::fs::read_to_string(root.join("action.yml")).unwrap();
    let inputs: BTreeSet<String> = declared(&action, "inputs").into_keys().collect();
    let outputs: BTreeSet<String> = declared(&action, "outputs").into_keys().collect();
    assert!(
        inputs.contains("tool") && outputs.contains("outcome"),
        "{inputs:?} {outputs:?}"
    );
    let (mut steps, mut keys, mut reads) = (0, 0, 0);
    for entry in std::fs::read_dir(root.join("workflows-examples")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let mut ids = BTreeSet::new();
        for step in action_steps(&yaml(&text)) {
            steps += 1;
            if let Some(id) = step["id"].as_str() {
                ids.insert(id.to_owned());
            }
            for key in step["with"].as_hash().into_iter().flat_map(|h| h.keys()) {
                let key = key.as_str().unwrap();
                assert!(
                    inputs.contains(key),
                    "{}: `with: {key}` is not an input of action.yml",
                    path.display()
                );
                keys += 1;
            }
        }
        for id in &ids {
            let needle = format!("steps.{id}.outputs.");
            for (pos, _) in text.match_indices(&needle) {
                let name: String = text[pos + needle.len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                    .collect();
                assert!(
                    outputs.contains(&name),
                    "{}: reads output {name}, not declared in action.yml",
                    path.display()
                );
                reads += 1;
            }
        }
    }
    // Every example deploys with the action, and the flow-style `with: { tool: ... }` is read too.
    assert!(
        steps >= 8 && keys >= steps && reads >= 3,
        "{steps} steps, {keys} inputs, {reads} outputs: is the YAML still read?"
    );
}

/// The YAML reading itself: a flow-style `with:` is seen key by key, as a block one is.
#[test]
fn flow_and_block_style_with_are_both_read() {
    let flow = yaml(
        "jobs:\n  a:\n    steps:\n      - uses: afu9/deploy-action@v1\n        with: { tool: sync-check, bogus: 1 }\n",
    );
    let block = yaml(
        "jobs:\n  a:\n    steps:\n      - uses: afu9/deploy-action@v1\n        with:\n          tool: sync-check\n          bogus: 1\n",
    );
    for doc in [flow, block] {
        let steps = action_steps(&doc);
        let keys: Vec<&str> = steps[0]["with"]
            .as_hash()
            .unwrap()
            .keys()
            .map(|k| k.as_str().unwrap())
            .collect();
        assert_eq!(keys, ["tool", "bogus"]);
    }
}
