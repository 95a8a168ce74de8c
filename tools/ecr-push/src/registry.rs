//! A small OCI distribution client for pushing: blob HEAD checks, cross-repository mounts, one
//! streamed upload per blob (POST, one PATCH with the whole blob, PUT with the digest: ECR rejects
//! chunks under 5 MiB but accepts a single last chunk of any size, and answers 201 where the spec
//! says 202), and manifests pushed as their exact bytes. Credentials go in a sensitive header.

use std::time::Duration;

use deploy_core::exit;
use deploy_core::http::error_chain;
use deploy_core::retry::Backoff;
use deploy_core::secret::Secret;
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, LOCATION};
use reqwest::{Method, StatusCode};
use tokio::io::AsyncSeekExt;

use crate::source::{Blob, DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};

/// Manifest types we accept when reading tags.
const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// How a missing blob got into the repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    /// It was there.
    Present,
    /// Mounted from another repository of the registry.
    Mounted,
    /// Uploaded.
    Uploaded,
    /// Missing, to be streamed from the Docker daemon.
    Pending,
}

/// A registry, authenticated.
#[derive(Clone)]
pub struct Registry {
    http: reqwest::Client,
    base: String,
    auth: HeaderValue,
    /// Upload attempts per blob.
    pub attempts: u32,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

fn fail(what: &str, status: StatusCode, body: &str) -> anyhow::Error {
    let body = deploy_core::secret::redact(body.trim());
    let short: String = body.chars().take(300).collect();
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        exit::dependency(format!(
            "registry refused the credentials ({status}) on {what}: {short}"
        ))
    } else {
        exit::dependency(format!("registry answered {status} on {what}: {short}"))
    }
}

impl Registry {
    /// A client for `base` (`https://<account>.dkr.ecr.<region>.amazonaws.com`) with basic auth.
    pub fn new(base: &str, user: &str, password: &Secret) -> anyhow::Result<Registry> {
        use base64::Engine;
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("{user}:{}", password.expose()));
        deploy_core::secret::register(&token);
        let mut auth = HeaderValue::from_str(&format!("Basic {token}"))
            .map_err(|_| exit::usage("registry credentials are not valid header text"))?;
        auth.set_sensitive(true);
        let opts = deploy_core::http::HttpOptions {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(120),
            request_timeout: Duration::from_secs(3600),
            max_body_bytes: 16 * 1024 * 1024,
            max_redirects: 5,
        };
        let http = deploy_core::http::HttpClient::new("ecr-push", opts)?
            .inner()
            .clone();
        Ok(Registry {
            http,
            base: base.trim_end_matches('/').to_owned(),
            auth,
            attempts: 4,
        })
    }

    /// The registry host, as used in image references.
    pub fn host(&self) -> &str {
        self.base
            .trim_start_matches("https://")
            .trim_start_matches("http://")
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        what: &str,
    ) -> anyhow::Result<reqwest::Response> {
        self.http
            .request(method, self.url(url))
            .header(AUTHORIZATION, self.auth.clone())
            .header(CONTENT_LENGTH, 0)
            .send()
            .await
            .map_err(|e| exit::dependency(format!("{what}: {}", error_chain(&e))))
    }

    /// Whether the repository has the blob.
    pub async fn has_blob(&self, repo: &str, digest: &str) -> anyhow::Result<bool> {
        let what = format!("HEAD blob {digest} in {repo}");
        let r = self
            .send(Method::HEAD, &format!("/v2/{repo}/blobs/{digest}"), &what)
            .await?;
        match r.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            s => Err(fail(&what, s, "")),
        }
    }

    /// The digest a tag (or digest) points at, or None.
    pub async fn manifest_digest(
        &self,
        repo: &str,
        reference: &str,
    ) -> anyhow::Result<Option<String>> {
        let what = format!("HEAD manifest {repo}:{reference}");
        let r = self
            .http
            .head(self.url(&format!("/v2/{repo}/manifests/{reference}")))
            .header(AUTHORIZATION, self.auth.clone())
            .header("Accept", ACCEPT)
            .send()
            .await
            .map_err(|e| exit::dependency(format!("{what}: {}", error_chain(&e))))?;
        match r.status() {
            s if s.is_success() => {
                if let Some(d) = r
                    .headers()
                    .get("docker-content-digest")
                    .and_then(|v| v.to_str().ok())
                {
                    return Ok(Some(d.to_owned()));
                }
                // No digest header: fetch the manifest and hash it, never guess "absent".
                let g = self
                    .http
                    .get(self.url(&format!("/v2/{repo}/manifests/{reference}")))
                    .header(AUTHORIZATION, self.auth.clone())
                    .header("Accept", ACCEPT)
                    .send()
                    .await
                    .map_err(|e| exit::dependency(format!("{what}: {}", error_chain(&e))))?;
                if !g.status().is_success() {
                    return Err(fail(&what, g.status(), ""));
                }
                let body = g
                    .bytes()
                    .await
                    .map_err(|e| exit::dependency(format!("{what}: {}", error_chain(&e))))?;
                Ok(Some(crate::source::sha256(&body)))
            }
            StatusCode::NOT_FOUND => Ok(None),
            s => Err(fail(&what, s, "")),
        }
    }

    /// Tries to mount `digest` from `from` into `repo`; true when mounted.
    pub async fn mount(&self, repo: &str, digest: &str, from: &str) -> anyhow::Result<bool> {
        let what = format!("mount {digest} from {from} into {repo}");
        let r = self
            .send(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/?mount={digest}&from={from}"),
                &what,
            )
            .await?;
        match r.status() {
            StatusCode::CREATED => Ok(true),
            s if s.is_success() => {
                // 202: the registry opened an upload session instead; close it.
                if let Some(loc) = r.headers().get(LOCATION).and_then(|v| v.to_str().ok()) {
                    let _ = self.send(Method::DELETE, loc, "cancel upload").await;
                }
                Ok(false)
            }
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => Ok(false),
            s => Err(fail(&what, s, &r.text().await.unwrap_or_default())),
        }
    }

    /// Uploads one blob as one streamed upload, retrying a failed attempt (a 5xx, a dropped
    /// connection) with backoff in a new session. Never holds the blob in memory.
    pub async fn upload(&self, repo: &str, blob: &Blob) -> anyhow::Result<u32> {
        let backoff = Backoff {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(5),
            ..Backoff::default()
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.upload_once(repo, blob).await {
                Ok(()) => return Ok(attempt),
                Err((e, retryable)) if retryable && attempt < self.attempts => {
                    tracing::warn!(
                        "upload of {} failed (attempt {attempt}): {e:#}; retrying",
                        blob.digest
                    );
                    tokio::time::sleep(backoff.delay(attempt - 1)).await;
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    async fn upload_once(&self, repo: &str, blob: &Blob) -> Result<(), (anyhow::Error, bool)> {
        let mut file = tokio::fs::File::open(&blob.at.path).await.map_err(|e| {
            (
                exit::usage(format!("cannot read {}: {e}", blob.at.path.display())),
                false,
            )
        })?;
        file.seek(std::io::SeekFrom::Start(blob.at.offset))
            .await
            .map_err(|e| {
                (
                    exit::usage(format!("cannot read {}: {e}", blob.at.path.display())),
                    false,
                )
            })?;
        let stream = tokio_util::io::ReaderStream::with_capacity(
            tokio::io::AsyncReadExt::take(file, blob.size),
            256 * 1024,
        );
        self.send_blob(
            repo,
            &blob.digest,
            blob.size,
            reqwest::Body::wrap_stream(stream),
        )
        .await
    }

    /// Uploads one blob from a stream of chunks (a `docker save` entry), once.
    pub async fn upload_stream(
        &self,
        repo: &str,
        digest: &str,
        size: u64,
        chunks: tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
    ) -> anyhow::Result<()> {
        let stream = futures_util::stream::unfold(chunks, |mut rx| async move {
            rx.recv().await.map(|c| (c, rx))
        });
        self.send_blob(repo, digest, size, reqwest::Body::wrap_stream(stream))
            .await
            .map_err(|(e, _)| e)
    }

    /// POST an upload session, PATCH the whole body, PUT with the digest. The error says whether
    /// a new attempt can help.
    async fn send_blob(
        &self,
        repo: &str,
        digest: &str,
        size: u64,
        body: reqwest::Body,
    ) -> Result<(), (anyhow::Error, bool)> {
        let what = format!("upload of {digest} to {repo}");
        let transient = |e: anyhow::Error| (e, true);
        let r = self
            .send(Method::POST, &format!("/v2/{repo}/blobs/uploads/"), &what)
            .await
            .map_err(transient)?;
        let status = r.status();
        if !status.is_success() {
            let retry = status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS;
            return Err((
                fail(&what, status, &r.text().await.unwrap_or_default()),
                retry,
            ));
        }
        let location = r
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                (
                    exit::dependency(format!("{what}: no upload location")),
                    true,
                )
            })?
            .to_owned();
        let r = self
            .http
            .patch(self.url(&location))
            .header(AUTHORIZATION, self.auth.clone())
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, size)
            .header("Content-Range", format!("0-{}", size.saturating_sub(1)))
            .body(body)
            .send()
            .await
            .map_err(|e| {
                (
                    exit::dependency(format!("{what}: {}", error_chain(&e))),
                    true,
                )
            })?;
        let status = r.status();
        if !status.is_success() {
            return Err((
                fail(&what, status, &r.text().await.unwrap_or_default()),
                status.is_server_error(),
            ));
        }
        let location = r
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map_or(location, str::to_owned);
        let sep = if location.contains('?') { '&' } else { '?' };
        let r = self
            .send(
                Method::PUT,
                &format!("{location}{sep}digest={digest}"),
                &what,
            )
            .await
            .map_err(transient)?;
        let status = r.status();
        if status.is_success() {
            Ok(())
        } else {
            Err((
                fail(&what, status, &r.text().await.unwrap_or_default()),
                status.is_server_error(),
            ))
        }
    }

    /// Pushes a manifest's exact bytes under `reference` (a tag or its digest).
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> anyhow::Result<()> {
        let what = format!("PUT manifest {repo}:{reference}");
        let mt = if [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST].contains(&media_type) {
            media_type
        } else {
            OCI_MANIFEST
        };
        let r = self
            .http
            .put(self.url(&format!("/v2/{repo}/manifests/{reference}")))
            .header(AUTHORIZATION, self.auth.clone())
            .header(CONTENT_TYPE, mt)
            .body(bytes.to_vec())
            .send()
            .await
            .map_err(|e| exit::dependency(format!("{what}: {}", error_chain(&e))))?;
        let status = r.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(fail(&what, status, &r.text().await.unwrap_or_default()))
        }
    }

    /// Gets a blob into memory (tests: small blobs only).
    pub async fn get_blob(&self, repo: &str, digest: &str) -> anyhow::Result<Vec<u8>> {
        let what = format!("GET blob {digest}");
        let r = self
            .send(Method::GET, &format!("/v2/{repo}/blobs/{digest}"), &what)
            .await?;
        if !r.status().is_success() {
            return Err(fail(&what, r.status(), ""));
        }
        Ok(r.bytes()
            .await
            .map_err(|e| exit::dependency(error_chain(&e)))?
            .to_vec())
    }

    /// Ensures a blob is in `repo`: present, mounted from one of `mount_from`, or uploaded.
    pub async fn ensure_blob(
        &self,
        repo: &str,
        blob: &Blob,
        mount_from: &[String],
    ) -> anyhow::Result<Transfer> {
        if self.has_blob(repo, &blob.digest).await? {
            return Ok(Transfer::Present);
        }
        for from in mount_from.iter().filter(|f| f.as_str() != repo) {
            if self.has_blob(from, &blob.digest).await.unwrap_or(false)
                && self.mount(repo, &blob.digest, from).await?
            {
                return Ok(Transfer::Mounted);
            }
        }
        if blob.at.daemon_entry().is_some() {
            // Streamed from `docker save` later, in archive order.
            return Ok(Transfer::Pending);
        }
        self.upload(repo, blob).await?;
        Ok(Transfer::Uploaded)
    }
}
