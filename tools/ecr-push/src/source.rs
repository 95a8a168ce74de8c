//! Image sources, read without a Docker daemon and without loading layers into memory: an OCI
//! image layout directory, an OCI layout tarball (`buildx --output type=oci`), or a docker-archive
//! tarball (`docker save`). A tarball is indexed once (entry offsets), and each blob is later
//! streamed from its offset. Single-platform images and multi-platform indexes.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use deploy_core::exit;
use oci_spec::image::{ANNOTATION_REF_NAME, Descriptor, Digest, ImageIndex, ImageManifest};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker manifest list media type.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker manifest media type.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Where a blob's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A file of an OCI layout, or the byte range of a tarball's entry starting at `offset`.
    File {
        /// The file.
        path: PathBuf,
        /// Offset of the first byte.
        offset: u64,
    },
    /// An entry of a `docker save` stream read once (only while a daemon image is loaded).
    Memory {
        /// The tar entry.
        entry: String,
    },
    /// An entry of `docker save IMAGE`, streamed again when it is uploaded.
    Daemon {
        /// The image given to `docker save`.
        image: String,
        /// The tar entry.
        entry: String,
    },
}

/// A blob (config or layer) to push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// `sha256:...`
    pub digest: String,
    /// Length in bytes.
    pub size: u64,
    /// Where to read it.
    pub at: Location,
}

/// A manifest (or index) to push as its exact bytes, so its digest is preserved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// `sha256:` of `bytes`.
    pub digest: String,
    /// Content type.
    pub media_type: String,
    /// The exact bytes.
    pub bytes: Vec<u8>,
}

/// A whole image: blobs first, then child manifests, then the manifest tags point to.
#[derive(Debug, Clone)]
pub struct Image {
    /// Unique blobs.
    pub blobs: Vec<Blob>,
    /// Child manifests of an index (empty for a single-platform image).
    pub children: Vec<Manifest>,
    /// The manifest (or index) tags point to.
    pub top: Manifest,
    /// What it was read from, for messages.
    pub kind: &'static str,
}

impl Image {
    /// Total bytes of all blobs.
    pub fn bytes(&self) -> u64 {
        self.blobs.iter().map(|b| b.size).sum()
    }
}

/// sha256 digest of bytes.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

fn bad(src: &Path, what: impl std::fmt::Display) -> anyhow::Error {
    exit::usage(format!("{}: {what}", src.display()))
}

/// The files of a source: a directory, or a tarball's entries by path.
enum Files {
    Dir(PathBuf),
    /// A `docker save` stream read once: small entries kept, large ones as (digest, size).
    Memory {
        small: BTreeMap<String, Vec<u8>>,
        large: BTreeMap<String, (String, u64)>,
    },
    Tar {
        path: PathBuf,
        entries: BTreeMap<String, (u64, u64)>,
    },
}

impl Files {
    fn open(src: &Path) -> anyhow::Result<Files> {
        let meta = std::fs::metadata(src)
            .map_err(|e| bad(src, format!("cannot read the image source ({e})")))?;
        if meta.is_dir() {
            return Ok(Files::Dir(src.to_owned()));
        }
        let f = File::open(src).map_err(|e| bad(src, e))?;
        let mut ar = tar::Archive::new(f);
        let mut entries = BTreeMap::new();
        for e in ar
            .entries()
            .map_err(|e| bad(src, format!("not a tar archive ({e})")))?
        {
            let e = e.map_err(|e| bad(src, format!("corrupt tar archive ({e})")))?;
            if e.header().entry_type().is_file() {
                let p = entry_path(src, &e)?;
                entries.insert(p, (e.raw_file_position(), e.size()));
            }
        }
        if entries.is_empty() {
            return Err(bad(src, "not an image: an empty or non-tar file"));
        }
        Ok(Files::Tar {
            path: src.to_owned(),
            entries,
        })
    }

    fn locate(&self, name: &str) -> Option<(Location, u64)> {
        match self {
            Files::Dir(d) => {
                let p = d.join(name);
                let size = std::fs::metadata(&p).ok().filter(|m| m.is_file())?.len();
                Some((Location::File { path: p, offset: 0 }, size))
            }
            Files::Memory { small, large } => small
                .get(name)
                .map(|b| b.len() as u64)
                .or_else(|| large.get(name).map(|(_, size)| *size))
                .map(|size| {
                    (
                        Location::Memory {
                            entry: name.to_owned(),
                        },
                        size,
                    )
                }),
            Files::Tar { path, entries } => entries.get(name).map(|(off, size)| {
                (
                    Location::File {
                        path: path.clone(),
                        offset: *off,
                    },
                    *size,
                )
            }),
        }
    }

    fn has(&self, name: &str) -> bool {
        self.locate(name).is_some()
    }

    fn read(&self, src: &Path, name: &str, max: u64) -> anyhow::Result<Vec<u8>> {
        if let Files::Memory { small, .. } = self {
            return small
                .get(name)
                .cloned()
                .ok_or_else(|| bad(src, format!("{name} is missing or too large for metadata")));
        }
        let (at, size) = self
            .locate(name)
            .ok_or_else(|| bad(src, format!("{name} is missing")))?;
        if size > max {
            return Err(bad(
                src,
                format!("{name} is {size} bytes, more than expected for metadata"),
            ));
        }
        read_at(&at, size).map_err(|e| bad(src, format!("cannot read {name} ({e})")))
    }
}

/// A tar entry's path as the image's files name it (`./` dropped).
fn entry_path<R: Read>(src: &Path, e: &tar::Entry<'_, R>) -> anyhow::Result<String> {
    Ok(e.path()
        .map_err(|e| bad(src, e))?
        .to_string_lossy()
        .trim_start_matches("./")
        .to_owned())
}

fn read_at(at: &Location, size: u64) -> std::io::Result<Vec<u8>> {
    let Location::File { path, offset } = at else {
        return Err(std::io::Error::other(
            "not a file: streamed from docker save",
        ));
    };
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(*offset))?;
    let mut buf = Vec::with_capacity(size as usize);
    f.take(size).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Reads an image from `src`; `reference` picks an entry of a multi-entry OCI index by its
/// `org.opencontainers.image.ref.name`.
pub fn load(src: &Path, reference: Option<&str>) -> anyhow::Result<Image> {
    let files = Files::open(src)?;
    if files.has("oci-layout") && files.has("index.json") {
        load_oci(src, &files, reference)
    } else if files.has("manifest.json") {
        load_docker_archive(src, &files)
    } else {
        Err(bad(
            src,
            "not an OCI layout (no oci-layout and index.json) nor a docker-archive (no manifest.json)",
        ))
    }
}

const META_MAX: u64 = 8 * 1024 * 1024;

/// Parses an OCI (or Docker v2) JSON document with oci-spec's types, which validate digests.
fn parse<T: serde::de::DeserializeOwned>(
    src: &Path,
    bytes: &[u8],
    what: &str,
) -> anyhow::Result<T> {
    serde_json::from_slice(bytes).map_err(|e| {
        let kind = if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok() {
            "not a valid"
        } else {
            "not JSON"
        };
        bad(src, format!("{what} is {kind} ({e})"))
    })
}

fn load_oci(src: &Path, files: &Files, reference: Option<&str>) -> anyhow::Result<Image> {
    let index: ImageIndex = parse(src, &files.read(src, "index.json", META_MAX)?, "index.json")?;
    let entries = index.manifests();
    let entry = match (entries.len(), reference) {
        (0, _) => return Err(bad(src, "index.json lists no manifests")),
        (_, Some(r)) => entries
            .iter()
            .find(|m| {
                m.annotations()
                    .as_ref()
                    .and_then(|a| a.get(ANNOTATION_REF_NAME))
                    .is_some_and(|n| n == r)
            })
            .ok_or_else(|| bad(src, format!("no manifest named {r:?} in index.json")))?,
        (1, None) => &entries[0],
        (n, None) => {
            return Err(bad(
                src,
                format!("index.json lists {n} manifests: name one as PATH:REF"),
            ));
        }
    };
    let mut blobs: Vec<Blob> = Vec::new();
    let mut children = Vec::new();
    let top = read_manifest(src, files, entry)?;
    if is_index(&top) {
        let index: ImageIndex = parse(src, &top.bytes, "the image index")?;
        for (i, m) in index.manifests().iter().enumerate() {
            let child = read_manifest(src, files, m)?;
            let what = format!("manifests[{i}] of the index");
            collect_blobs(src, files, &parse(src, &child.bytes, &what)?, &mut blobs)?;
            children.push(child);
        }
    } else {
        collect_blobs(
            src,
            files,
            &parse(src, &top.bytes, "the manifest")?,
            &mut blobs,
        )?;
    }
    Ok(Image {
        blobs,
        children,
        top,
        kind: if matches!(files, Files::Dir(_)) {
            "OCI layout"
        } else {
            "OCI archive"
        },
    })
}

/// Whether a manifest is an index (by its media type, or by holding `manifests`).
fn is_index(m: &Manifest) -> bool {
    matches!(m.media_type.as_str(), OCI_INDEX | DOCKER_LIST)
        || serde_json::from_slice::<Value>(&m.bytes).is_ok_and(|v| v["manifests"].is_array())
}

/// Where a blob of a layout lives: `blobs/<algorithm>/<hex>` (the digest is validated, so the
/// path cannot leave `blobs/`).
fn blob_path(digest: &Digest) -> String {
    format!("blobs/{}/{}", digest.algorithm(), digest.digest())
}

/// Reads the manifest `desc` points at, checking its size and digest.
fn read_manifest(src: &Path, files: &Files, desc: &Descriptor) -> anyhow::Result<Manifest> {
    let digest = desc.digest().to_string();
    let path = blob_path(desc.digest());
    let bytes = files.read(src, &path, META_MAX)?;
    if bytes.len() as u64 != desc.size() || sha256(&bytes) != digest {
        return Err(bad(
            src,
            format!("corrupt layout: {path} does not match its digest and size"),
        ));
    }
    Ok(Manifest {
        digest,
        media_type: desc.media_type().to_string(),
        bytes,
    })
}

/// Adds the config and layers of `manifest` to `blobs` (once each), located in the layout.
fn collect_blobs(
    src: &Path,
    files: &Files,
    manifest: &ImageManifest,
    blobs: &mut Vec<Blob>,
) -> anyhow::Result<()> {
    let descs = std::iter::once(manifest.config()).chain(manifest.layers());
    for (i, d) in descs.enumerate() {
        let what = if i == 0 {
            "config".to_owned()
        } else {
            format!("layers[{}]", i - 1)
        };
        let digest = d.digest().to_string();
        if blobs.iter().any(|b| b.digest == digest) {
            continue;
        }
        let path = blob_path(d.digest());
        let (at, actual) = files.locate(&path).ok_or_else(|| {
            bad(
                src,
                format!("corrupt layout: blob {path} of {what} is missing"),
            )
        })?;
        if actual != d.size() {
            return Err(bad(
                src,
                format!(
                    "corrupt layout: blob {path} is {actual} bytes, the manifest says {}",
                    d.size()
                ),
            ));
        }
        blobs.push(Blob {
            digest,
            size: actual,
            at,
        });
    }
    Ok(())
}

/// A docker-archive (`docker save`): one image, its layers uncompressed. The manifest pushed is
/// an OCI manifest written here, byte for byte as before (a re-push keeps its digest).
fn load_docker_archive(src: &Path, files: &Files) -> anyhow::Result<Image> {
    let (config_path, layer_paths) = archive_entry(src, files)?;
    let config = files.read(src, &config_path, META_MAX)?;
    let config_json: Value = serde_json::from_slice(&config)
        .map_err(|e| bad(src, format!("{config_path} is not JSON ({e})")))?;
    let diff_ids = strings(&config_json["rootfs"]["diff_ids"]);
    if layer_paths.len() != diff_ids.len() {
        return Err(bad(
            src,
            format!(
                "{} layers but {} diff_ids in the config",
                layer_paths.len(),
                diff_ids.len()
            ),
        ));
    }
    let config_digest = sha256(&config);
    let (config_at, config_size) = files
        .locate(&config_path)
        .ok_or_else(|| bad(src, format!("{config_path} is missing")))?;
    let mut blobs = vec![Blob {
        digest: config_digest.clone(),
        size: config_size,
        at: config_at,
    }];
    let mut layers = Vec::new();
    for (p, diff_id) in layer_paths.iter().zip(&diff_ids) {
        let (at, size) = files
            .locate(p)
            .ok_or_else(|| bad(src, format!("layer {p} is missing")))?;
        // docker save writes layers uncompressed: the layer digest is its diff_id.
        if !blobs.iter().any(|b| &b.digest == diff_id) {
            blobs.push(Blob {
                digest: diff_id.clone(),
                size,
                at,
            });
        }
        layers.push(json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": diff_id, "size": size}));
    }
    let top = archive_manifest(src, &config_digest, config_size, layers)?;
    Ok(Image {
        blobs,
        children: Vec::new(),
        top,
        kind: "docker-archive",
    })
}

/// The one image of `manifest.json`: its config's and its layers' paths in the archive.
fn archive_entry(src: &Path, files: &Files) -> anyhow::Result<(String, Vec<String>)> {
    let list: Value = serde_json::from_slice(&files.read(src, "manifest.json", META_MAX)?)
        .map_err(|e| bad(src, format!("manifest.json is not JSON ({e})")))?;
    let entries = list.as_array().cloned().unwrap_or_default();
    let [entry] = entries.as_slice() else {
        return Err(bad(
            src,
            format!(
                "docker-archive holds {} images; save one image per archive",
                entries.len()
            ),
        ));
    };
    let config_path = entry["Config"]
        .as_str()
        .ok_or_else(|| bad(src, "manifest.json has no Config"))?;
    Ok((config_path.to_owned(), strings(&entry["Layers"])))
}

/// The strings of a JSON array (none when it is not one).
fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The OCI manifest of a docker-archive image, in the exact form (key order) it always had.
fn archive_manifest(
    src: &Path,
    config_digest: &str,
    config_size: u64,
    layers: Vec<Value>,
) -> anyhow::Result<Manifest> {
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": layers,
    });
    let bytes = serde_json::to_vec(&manifest).map_err(|e| bad(src, e))?;
    Ok(Manifest {
        digest: sha256(&bytes),
        media_type: OCI_MANIFEST.to_owned(),
        bytes,
    })
}

/// Reads a blob's bytes in full (tests and small blobs only).
pub fn read_blob(b: &Blob) -> std::io::Result<Vec<u8>> {
    read_at(&b.at, b.size)
}

/// The `docker` binary used for `docker:NAME` sources (`DEPLOY_DOCKER` overrides).
pub fn docker_binary() -> String {
    std::env::var("DEPLOY_DOCKER").unwrap_or_else(|_| "docker".to_owned())
}

/// A running `docker save NAME`: its stdout is the archive; its stderr is read on a thread of
/// its own from the start, so a chatty daemon can never fill the pipe and stall the save.
pub struct Save {
    child: std::process::Child,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Save {
    /// The archive stream (taken once).
    fn stdout(&mut self) -> anyhow::Result<std::process::ChildStdout> {
        self.child
            .stdout
            .take()
            .ok_or_else(|| exit::dependency("docker save: no stdout"))
    }
}

/// Starts `docker save NAME` with its stdout piped.
pub fn docker_save(name: &str) -> anyhow::Result<Save> {
    let mut child = std::process::Command::new(docker_binary())
        .args(["save", "--", name])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| {
            exit::dependency(format!(
                "couldn't run `{} save {name}`: {e}",
                docker_binary()
            ))
        })?;
    let stderr = child.stderr.take().map(|mut s| {
        std::thread::spawn(move || {
            // Keep the first 64 KiB for the message; drain the rest.
            let mut kept = Vec::new();
            let _ = (&mut s).take(64 * 1024).read_to_end(&mut kept);
            let _ = std::io::copy(&mut s, &mut std::io::sink());
            String::from_utf8_lossy(&kept).into_owned()
        })
    });
    Ok(Save { child, stderr })
}

/// Whether `docker`'s error output says the daemon itself is unreachable (exit 3), rather than
/// something about the image (exit 2).
pub fn daemon_unreachable(stderr: &str) -> bool {
    let s = stderr.to_ascii_lowercase();
    [
        "cannot connect to the docker daemon",
        "is the docker daemon running",
        "error during connect",
        "permission denied while trying to connect",
        "connection refused",
    ]
    .iter()
    .any(|p| s.contains(p))
}

/// Waits for `docker save` (its stdout must be dropped first) and classifies a failure.
fn finish_save(save: Save, name: &str) -> anyhow::Result<()> {
    let Save { mut child, stderr } = save;
    let status = child
        .wait()
        .map_err(|e| exit::dependency(format!("docker save {name}: {e}")))?;
    let err = stderr.and_then(|h| h.join().ok()).unwrap_or_default();
    if status.success() {
        return Ok(());
    }
    let message = format!("`docker save {name}` failed ({status}): {}", err.trim());
    Err(if daemon_unreachable(&err) {
        exit::dependency(message)
    } else {
        exit::usage(message)
    })
}

/// Metadata entries are kept in memory; anything larger is a layer and is only hashed.
const STREAM_META_MAX: u64 = 4 * 1024 * 1024;

/// Reads an image from a Docker daemon in one pass of `docker save`, without storing it: small
/// entries (manifests, configs) are kept, layers are hashed and dropped. The push streams the
/// missing layers from a second `docker save` ([`stream_blobs`]).
pub fn load_daemon(name: &str) -> anyhow::Result<Image> {
    let mut save = docker_save(name)?;
    let stdout = save.stdout()?;
    let read = read_save(name, stdout);
    // A failed `docker save` (daemon down, no such image) explains a bad archive: say that.
    finish_save(save, name)?;
    let (small, large) = read?;
    let src = Path::new(name);
    daemon_image(name, src, small, large)
}

type SmallEntries = BTreeMap<String, Vec<u8>>;
type LargeEntries = BTreeMap<String, (String, u64)>;

fn read_save(
    name: &str,
    stdout: std::process::ChildStdout,
) -> anyhow::Result<(SmallEntries, LargeEntries)> {
    let mut small: SmallEntries = BTreeMap::new();
    let mut large: LargeEntries = BTreeMap::new();
    let src = Path::new(name);
    let mut ar = tar::Archive::new(stdout);
    for e in ar
        .entries()
        .map_err(|e| bad(src, format!("docker save output is not a tar ({e})")))?
    {
        let mut e = e.map_err(|e| bad(src, format!("corrupt docker save output ({e})")))?;
        if !e.header().entry_type().is_file() {
            continue;
        }
        let path = entry_path(src, &e)?;
        let size = e.size();
        if size <= STREAM_META_MAX {
            let mut buf = Vec::with_capacity(size as usize);
            e.read_to_end(&mut buf).map_err(|e| bad(src, e))?;
            small.insert(path, buf);
        } else {
            let mut h = Sha256::new();
            std::io::copy(&mut e, &mut HashWriter(&mut h)).map_err(|e| bad(src, e))?;
            large.insert(path, (format!("sha256:{:x}", h.finalize()), size));
        }
    }
    Ok((small, large))
}

fn daemon_image(
    name: &str,
    src: &Path,
    small: SmallEntries,
    large: LargeEntries,
) -> anyhow::Result<Image> {
    let files = Files::Memory { small, large };
    let mut image = if files.has("oci-layout") && files.has("index.json") {
        load_oci(src, &files, None)?
    } else if files.has("manifest.json") {
        load_docker_archive(src, &files)?
    } else {
        return Err(bad(
            src,
            "docker save wrote neither an OCI layout nor a docker-archive",
        ));
    };
    for b in &mut image.blobs {
        if let Location::Memory { entry } = &b.at {
            b.at = Location::Daemon {
                image: name.to_owned(),
                entry: entry.clone(),
            };
        }
    }
    image.kind = "Docker daemon";
    Ok(image)
}

struct HashWriter<'a>(&'a mut Sha256);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A blob's chunks as they come out of `docker save`.
pub type Chunks = tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>;

/// A blob being streamed: digest, size, chunks.
pub type StreamedBlob = (String, u64, Chunks);

/// Streams the `wanted` blobs (by tar entry) of a `docker save NAME`, in archive order, to `sink`:
/// each gets its digest, size and a channel of chunks. Runs on a blocking thread.
pub fn stream_blobs(
    name: &str,
    wanted: &BTreeMap<String, (String, u64)>,
    sink: tokio::sync::mpsc::Sender<StreamedBlob>,
) -> anyhow::Result<()> {
    let mut save = docker_save(name)?;
    let stdout = save.stdout()?;
    let streamed = stream_entries(name, stdout, wanted, &sink);
    finish_save(save, name)?;
    streamed
}

fn stream_entries(
    name: &str,
    stdout: std::process::ChildStdout,
    wanted: &BTreeMap<String, (String, u64)>,
    sink: &tokio::sync::mpsc::Sender<StreamedBlob>,
) -> anyhow::Result<()> {
    let src = Path::new(name);
    let mut ar = tar::Archive::new(stdout);
    for e in ar.entries().map_err(|e| bad(src, e))? {
        let mut e = e.map_err(|e| bad(src, e))?;
        let path = entry_path(src, &e)?;
        let Some((digest, size)) = wanted.get(&path) else {
            continue;
        };
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        if sink.blocking_send((digest.clone(), *size, rx)).is_err() {
            break;
        }
        let mut buf = vec![0u8; 1024 * 1024];
        loop {
            match e.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if tx.blocking_send(Ok(buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
                Err(err) => {
                    let _ = tx.blocking_send(Err(err));
                    break;
                }
            }
        }
    }
    Ok(())
}
