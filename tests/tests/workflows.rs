//! The shipped workflows agree with the action: every `with:` key an example passes to
//! `afu9/deploy-action` is an input of `action.yml`, and every output an example reads from such a
//! step is declared. (zizmor lints them for security in scripts/test.sh.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::BTreeSet;

use deploy_action_e2e::rig;

fn indent(l: &str) -> usize {
    l.len() - l.trim_start().len()
}

/// Keys directly under a top-level `section:` of action.yml.
fn section_keys(text: &str, section: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut inside = false;
    for l in text.lines() {
        if l.trim().is_empty() || l.trim_start().starts_with('#') {
            continue;
        }
        if indent(l) == 0 {
            inside = l.trim_end() == format!("{section}:");
            continue;
        }
        if inside && indent(l) == 2 {
            keys.insert(
                l.trim()
                    .trim_end_matches(':')
                    .split(':')
                    .next()
                    .unwrap()
                    .to_owned(),
            );
        }
    }
    keys
}

#[test]
fn examples_use_only_declared_inputs_and_outputs() {
    let root = rig::workspace_root();
    let action = std::fs::read_to_string(root.join("action.yml")).unwrap();
    let inputs = section_keys(&action, "inputs");
    let outputs = section_keys(&action, "outputs");
    assert!(
        inputs.contains("tool") && outputs.contains("outcome"),
        "{inputs:?} {outputs:?}"
    );
    let mut checked = 0;
    for entry in std::fs::read_dir(root.join("workflows-examples")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let mut ids = BTreeSet::new();
        for (i, l) in lines.iter().enumerate() {
            if !l.contains("uses: afu9/deploy-action@") {
                continue;
            }
            // The step starts at the nearest `- ` line at or above this one.
            let start = (0..=i)
                .rev()
                .find(|j| lines[*j].trim_start().starts_with("- "))
                .unwrap();
            let step_indent = indent(lines[start]) + 2;
            let end = (start + 1..lines.len())
                .find(|j| !lines[*j].trim().is_empty() && indent(lines[*j]) < step_indent)
                .unwrap_or(lines.len());
            for j in start..end {
                let t = lines[j].trim_start().trim_start_matches("- ");
                if let Some(id) = t.strip_prefix("id: ") {
                    ids.insert(id.trim().to_owned());
                }
                if t == "with:" {
                    let with_indent = indent(lines[j]);
                    for k in lines.iter().take(end).skip(j + 1) {
                        if k.trim().is_empty() || k.trim_start().starts_with('#') {
                            continue;
                        }
                        if indent(k) <= with_indent {
                            break;
                        }
                        if indent(k) == with_indent + 2 {
                            let key = k.trim().split(':').next().unwrap();
                            assert!(
                                inputs.contains(key),
                                "{}: `with: {key}` is not an input of action.yml",
                                path.display()
                            );
                            checked += 1;
                        }
                    }
                }
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
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 10,
        "only {checked} keys checked: is the parser still finding the steps?"
    );
}
