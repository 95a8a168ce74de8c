//! Reading the action's contract: the inputs and outputs `action.yml` declares (with their
//! descriptions), the outputs README lists, and the keys a tool wrote to `GITHUB_OUTPUT`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

pub use yaml_rust2::{Yaml, YamlLoader};

/// Parses a YAML document (action.yml, a workflow).
pub fn yaml(text: &str) -> Yaml {
    YamlLoader::load_from_str(text)
        .unwrap()
        .into_iter()
        .next()
        .unwrap()
}

/// `name -> description` of the entries under a top-level `section:` of action.yml (`inputs` or
/// `outputs`).
pub fn declared(action_yml: &str, section: &str) -> BTreeMap<String, String> {
    let doc = yaml(action_yml);
    doc[section]
        .as_hash()
        .unwrap_or_else(|| panic!("action.yml has no {section}"))
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().unwrap().to_owned(),
                v["description"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// The outputs README's outputs table lists: rows `| \`name\` | ... |` after the heading
/// `### Outputs`, up to the next heading.
pub fn readme_outputs(readme: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut inside = false;
    for l in readme.lines() {
        if l.starts_with('#') {
            inside = l.trim() == "### Outputs";
            continue;
        }
        if inside
            && let Some(rest) = l.strip_prefix("| `")
            && let Some((name, _)) = rest.split_once('`')
        {
            out.insert(name.to_owned());
        }
    }
    out
}

/// The output names in a `GITHUB_OUTPUT` file (`name<<DELIM` heredocs and `name=value` lines).
pub fn written(github_output: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(github_output).unwrap_or_default();
    let mut out = BTreeSet::new();
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        if let Some((name, delim)) = l.split_once("<<") {
            out.insert(name.to_owned());
            for v in lines.by_ref() {
                if v == delim {
                    break;
                }
            }
        } else if let Some((name, _)) = l.split_once('=') {
            out.insert(name.to_owned());
        }
    }
    out
}

/// The tools an output's description names before its first `:` (`health-check and
/// smoke-test: ...`); all of them for `every tool...`.
pub fn tools_of(description: &str, all: &[&str]) -> Vec<String> {
    let head = description.split(':').next().unwrap_or_default();
    if head.starts_with("every tool") {
        return all.iter().map(|t| (*t).to_owned()).collect();
    }
    all.iter()
        .filter(|t| head.contains(*t))
        .map(|t| (*t).to_owned())
        .collect()
}
