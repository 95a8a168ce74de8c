//! Reading the action's contract: the inputs and outputs `action.yml` declares (with their
//! descriptions), the outputs README lists, and the keys a tool wrote to `GITHUB_OUTPUT`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn indent(l: &str) -> usize {
    l.len() - l.trim_start().len()
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    s.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .map_or_else(|| s.to_owned(), |t| t.replace("\\\"", "\""))
}

/// `name -> description` of the entries directly under a top-level `section:` of action.yml
/// (`inputs` or `outputs`).
pub fn declared(action_yml: &str, section: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut inside = false;
    let mut current: Option<String> = None;
    for l in action_yml.lines() {
        if l.trim().is_empty() || l.trim_start().starts_with('#') {
            continue;
        }
        match indent(l) {
            0 => {
                inside = l.trim_end() == format!("{section}:");
                current = None;
            }
            2 if inside => {
                let name = l.trim().trim_end_matches(':').to_owned();
                out.insert(name.clone(), String::new());
                current = Some(name);
            }
            4 if inside => {
                if let (Some(name), Some(d)) = (&current, l.trim().strip_prefix("description:")) {
                    out.insert(name.clone(), unquote(d));
                }
            }
            _ => {}
        }
    }
    out
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
