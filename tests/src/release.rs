//! Releases as the install path sees them: an archive of the multi-call binary built from this tree
//! (named as the release workflow names it), and a copy of the action (action.yml, its scripts,
//! VERSION, checksums.txt) whose checksums list what a test chooses.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::rig;

/// The five tools.
pub const TOOLS: [&str; 5] = [
    "sync-check",
    "ecr-push",
    "health-check",
    "smoke-test",
    "rollback",
];

/// The one binary that holds them (the multi-call binary).
pub const BINARY: &str = "deploy-action";

/// The release target this machine's runner installs (act reports the host's OS and arch).
pub fn host_target() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "aarch64-unknown-linux-musl",
        _ => "x86_64-unknown-linux-musl",
    }
}

/// `deploy-action-<version>-<target>.tar.gz`
pub fn asset(version: &str, target: &str) -> String {
    format!("deploy-action-{version}-{target}.tar.gz")
}

/// The archive as the release workflow packs it: the one `deploy-action` binary (the five tools
/// are links to it that the install makes) and the licence files (built once per test process).
/// The binary is this build's (`target/debug`), or the one in `DEPLOY_TEST_ARCHIVE_BIN_DIR` (e.g.
/// a release build, to measure a realistic download).
pub fn archive() -> &'static [u8] {
    static ARCHIVE: OnceLock<Vec<u8>> = OnceLock::new();
    ARCHIVE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("a.tar.gz");
        let bin = std::env::var_os("DEPLOY_TEST_ARCHIVE_BIN_DIR")
            .map_or_else(rig::bin_dir, PathBuf::from);
        assert!(
            bin.join(BINARY).is_file(),
            "{} is not built",
            bin.join(BINARY).display()
        );
        let st = Command::new("tar")
            .arg("-I")
            .arg("gzip -1")
            .arg("-cf")
            .arg(&out)
            .arg("-C")
            .arg(rig::workspace_root())
            .args(["LICENSE-MIT", "LICENSE-APACHE"])
            .arg("-C")
            .arg(&bin)
            .arg(BINARY)
            .status()
            .unwrap();
        assert!(st.success(), "tar failed");
        std::fs::read(out).unwrap()
    })
}

/// sha256 of `bytes`, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    crate::oci::sha256(bytes)
        .trim_start_matches("sha256:")
        .to_owned()
}

/// A copy of the action as a runner checks it out: action.yml, scripts/action-*.sh, `VERSION`
/// holding `version`, and checksums.txt holding `lines` (`sha256  asset`).
pub fn action_copy(version: &str, lines: &[(String, String)]) -> tempfile::TempDir {
    let root = rig::workspace_root();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("scripts")).unwrap();
    for f in [
        "action.yml",
        "scripts/action-install.sh",
        "scripts/action-run.sh",
    ] {
        std::fs::copy(root.join(f), d.join(f)).unwrap();
    }
    std::fs::write(d.join("VERSION"), format!("{version}\n")).unwrap();
    let mut sums = String::from("# test checksums\n");
    for (sum, asset) in lines {
        sums.push_str(&format!("{sum}  {asset}\n"));
    }
    std::fs::write(d.join("checksums.txt"), sums).unwrap();
    dir
}

/// Files under `dir`, recursively, relative.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}
