//! Running the shipped example workflows under act, unchanged but for what cannot run here.
//! act cannot fetch remote actions (no GitHub at test time), so each `uses:` of an example is
//! mapped with `--local-repository` to a local stand-in: deploy-action itself to a copy of this
//! tree whose release is served by the local HTTPS server (the real install path), and small
//! composite stand-ins for `actions/checkout` (init, fetch the commit from `origin`, check it
//! out, as checkout does), `aws-actions/configure-aws-credentials` (the region; credentials come
//! from the environment, pointed at moto) and `actions/upload-artifact` (copies the files to
//! `$ARTIFACT_DIR/<name>/`).

use std::path::{Path, PathBuf};

use crate::https::HttpsServer;
use crate::release::{self, archive, asset, host_target, sha256_hex};

const CHECKOUT: &str = r#"name: checkout stand-in
description: init, fetch the commit from origin, check it out (as actions/checkout does)
inputs:
  ref: { description: commit, default: "" }
  fetch-depth: { description: depth, default: "1" }
  persist-credentials: { description: ignored, default: "false" }
runs:
  using: composite
  steps:
    - shell: bash
      env:
        REF: ${{ inputs.ref }}
        DEPTH: ${{ inputs.fetch-depth }}
      run: |
        set -euo pipefail
        cd "$GITHUB_WORKSPACE"
        rm -rf .git
        git init -q
        git remote add origin "$GITHUB_SERVER_URL/$GITHUB_REPOSITORY.git"
        depth=()
        if [[ "$DEPTH" != 0 ]]; then depth=(--depth "$DEPTH"); fi
        git fetch -q --no-tags "${depth[@]}" origin "${REF:-$GITHUB_SHA}"
        git checkout -q --force --detach FETCH_HEAD
        git clean -qfdx
"#;

const AWS: &str = r#"name: configure-aws-credentials stand-in
description: sets the region; the credentials come from the environment (moto's)
inputs:
  role-to-assume: { description: role, required: true }
  aws-region: { description: region, required: true }
runs:
  using: composite
  steps:
    - shell: bash
      env:
        ROLE: ${{ inputs.role-to-assume }}
        REGION: ${{ inputs.aws-region }}
      run: |
        [[ -n "$ROLE" ]] || { echo "::error::role-to-assume is empty"; exit 1; }
        echo "AWS_REGION=$REGION" >> "$GITHUB_ENV"
"#;

const UPLOAD: &str = r#"name: upload-artifact stand-in
description: copies the files to $ARTIFACT_DIR/<name>/
inputs:
  name: { description: name, required: true }
  path: { description: path, required: true }
  if-no-files-found: { description: what then, default: warn }
runs:
  using: composite
  steps:
    - shell: bash
      env:
        NAME: ${{ inputs.name }}
        FILES: ${{ inputs.path }}
      run: |
        mkdir -p "$ARTIFACT_DIR/$NAME"
        cp $FILES "$ARTIFACT_DIR/$NAME/"
"#;

/// The stand-ins and the served release for one act run of an example.
pub struct Actions {
    /// The HTTPS server with this tree's release archive.
    pub server: HttpsServer,
    dir: tempfile::TempDir,
    /// Where the upload-artifact stand-in puts files.
    pub artifacts: PathBuf,
}

impl Actions {
    /// Serves a release of this tree and writes the stand-ins.
    pub fn new() -> Actions {
        let version = "v0.1.0";
        let asset = asset(version, host_target());
        let server = HttpsServer::start();
        server.put(&format!("{version}/{asset}"), archive());
        let dir = tempfile::tempdir().unwrap();
        let action = release::action_copy(version, &[(sha256_hex(archive()), asset)]);
        let copy = dir.path().join("deploy-action");
        std::fs::rename(action.path(), &copy)
            .or_else(|_| copy_dir(action.path(), &copy))
            .unwrap();
        for (name, text) in [("checkout", CHECKOUT), ("aws", AWS), ("upload", UPLOAD)] {
            std::fs::create_dir_all(dir.path().join(name)).unwrap();
            std::fs::write(dir.path().join(name).join("action.yml"), text).unwrap();
        }
        let artifacts = dir.path().join("artifacts");
        std::fs::create_dir_all(&artifacts).unwrap();
        Actions {
            server,
            dir,
            artifacts,
        }
    }

    /// `--local-repository` arguments for every `uses:` in `workflow`.
    pub fn local_repositories(&self, workflow: &str) -> Vec<String> {
        let mut out = Vec::new();
        for l in workflow.lines() {
            let Some(u) = l.trim().trim_start_matches("- ").strip_prefix("uses: ") else {
                continue;
            };
            let u = u.split_whitespace().next().unwrap();
            let stand_in = match u.split('@').next().unwrap() {
                "afu9/deploy-action" => "deploy-action",
                "actions/checkout" => "checkout",
                "aws-actions/configure-aws-credentials" => "aws",
                "actions/upload-artifact" => "upload",
                other => panic!("no local stand-in for action {other}"),
            };
            let arg = format!("{u}={}", self.dir.path().join(stand_in).display());
            if !out.contains(&arg) {
                out.push(arg);
            }
        }
        out
    }

    /// Environment for act: the release mirror and its CA, and the artifact directory.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("DEPLOY_ACTION_RELEASE_URL", self.server.url.clone()),
            ("CURL_CA_BUNDLE", self.server.ca.display().to_string()),
            ("ARTIFACT_DIR", self.artifacts.display().to_string()),
        ]
    }
}

impl Default for Actions {
    fn default() -> Self {
        Actions::new()
    }
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let dest = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &dest)?;
        } else {
            std::fs::copy(e.path(), dest)?;
        }
    }
    Ok(())
}
