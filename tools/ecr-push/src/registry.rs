//! A small OCI distribution client for pushing: blob HEAD checks, cross-repository mounts, one
//! streamed upload per blob (POST a session, PUT the whole blob with its digest: no chunks, so
//! ECR's chunk rules, parts of 5 MiB or more, never apply), and manifests pushed as their exact
//! bytes. Credentials go in a sensitive header.
//!
//! Hand-written rather than an OCI client crate because each blob is streamed straight from its
//! offset in the tarball (or from `docker save`) into one request, which is why a cold push beats
//! skopeo and memory stays flat; the manifest and index types come from `oci-spec`.

use std::time::Duration;

use deploy_core::exit;
use deploy_core::http::error_chain;
use deploy_core::retry::{self, Cadence, Deadline, Schedule, Verdict};
use deploy_core::secret::Secret;
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, LOCATION};
use reqwest::{Method, StatusCode};
use tokio::io::AsyncSeekExt;

use crate::source::{Blob, DOCKER_LIST, DOCKER_MANIFEST, Location, OCI_INDEX, OCI_MANIFEST};

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

/// The most of an error body read (for the message).
const ERROR_BODY_MAX: usize = 64 * 1024;
/// The largest manifest read back (the distribution spec's limit is 4 MiB).
const MANIFEST_MAX: usize = 4 * 1024 * 1024;
/// The largest blob [`Registry::get_blob`] reads into memory.
const BLOB_READ_MAX: usize = 16 * 1024 * 1024;

/// A registry, authenticated.
#[derive(Clone)]
pub struct Registry {
    http: reqwest::Client,
    base: String,
    origin: reqwest::Url,
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
        let origin = deploy_core::urls::validate_url(base)
            .map_err(|e| exit::usage(format!("registry URL: {e}")))?;
        Ok(Registry {
            http,
            base: base.trim_end_matches('/').to_owned(),
            origin,
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
        } else if path.starts_with("//") {
            // A network-path reference (RFC 3986, 4.2): another host, this scheme; not a path
            // on the registry. [`Registry::request`] then sends it no credentials.
            format!("{}:{path}", self.origin.scheme())
        } else {
            format!("{}{path}", self.base)
        }
    }

    /// A request to `url` (a path on the registry, or an absolute `Location` it returned). The
    /// credentials go only to the registry's own origin: a `Location` on another host (a storage
    /// backend, or a hostile registry) gets no Authorization header. The client follows no
    /// redirects, so they cannot travel further either.
    fn request(&self, method: Method, url: &str) -> anyhow::Result<reqwest::RequestBuilder> {
        let full = self.url(url);
        let parsed = reqwest::Url::parse(&full).map_err(|e| {
            exit::dependency(format!(
                "registry returned an invalid location {:?}: {e}",
                deploy_core::secret::redact(url)
            ))
        })?;
        let req = self.http.request(method, parsed.clone());
        Ok(if deploy_core::http::same_origin(&parsed, &self.origin) {
            req.header(AUTHORIZATION, self.auth.clone())
        } else {
            req
        })
    }

    /// An error response's body, at most [`ERROR_BODY_MAX`] bytes of it.
    async fn error_text(mut r: reqwest::Response) -> String {
        let url = deploy_core::secret::redact(r.url().as_str());
        match deploy_core::http::read_capped(
            &mut r,
            ERROR_BODY_MAX,
            &url,
            std::time::Instant::now(),
        )
        .await
        {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) => format!("({e})"),
        }
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        what: &str,
    ) -> anyhow::Result<reqwest::Response> {
        self.request(method, url)?
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
            // A registry may answer a blob from its storage backend: a redirect means it is there.
            StatusCode::TEMPORARY_REDIRECT | StatusCode::FOUND | StatusCode::SEE_OTHER => Ok(true),
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
            .request(Method::HEAD, &format!("/v2/{repo}/manifests/{reference}"))?
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
                let mut g = self
                    .request(Method::GET, &format!("/v2/{repo}/manifests/{reference}"))?
                    .header("Accept", ACCEPT)
                    .send()
                    .await
                    .map_err(|e| exit::dependency(format!("{what}: {}", error_chain(&e))))?;
                if !g.status().is_success() {
                    return Err(fail(&what, g.status(), ""));
                }
                let body = deploy_core::http::read_capped(
                    &mut g,
                    MANIFEST_MAX,
                    &what,
                    std::time::Instant::now(),
                )
                .await
                .map_err(|e| exit::dependency(format!("{what}: {e}")))?;
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
            s => Err(fail(&what, s, &Self::error_text(r).await)),
        }
    }

    /// Uploads one blob as one streamed upload, retrying a failed attempt (a 5xx, a dropped
    /// connection) with backoff in a new session, at most [`Registry::attempts`] times. The first
    /// attempt uses `session` when one was opened ahead ([`Registry::open_session`]). Never holds
    /// the blob in memory.
    pub async fn upload(
        &self,
        repo: &str,
        blob: &Blob,
        session: Option<String>,
    ) -> anyhow::Result<u32> {
        // No deadline of its own: the attempt cap and each request's timeouts bound it.
        let schedule = Schedule::new(
            Deadline::after(Duration::MAX),
            Cadence::exponential(Duration::from_millis(200), Duration::from_secs(5)),
        )
        .max_attempts(self.attempts);
        let mut tried = 0;
        let mut session = session;
        let outcome = retry::poll(
            schedule,
            std::future::pending(),
            |_| self.upload_once(repo, blob, session.take()),
            |r| {
                tried += 1;
                match r {
                    Ok(()) => Verdict::Pass,
                    Err((e, true)) if tried < self.attempts => {
                        tracing::warn!(
                            "upload of {} failed (attempt {tried}): {e:#}; retrying",
                            blob.digest
                        );
                        Verdict::retry(format!("{e:#}"))
                    }
                    Err((e, _)) => Verdict::fatal(format!("{e:#}")),
                }
            },
        )
        .await;
        match outcome.last {
            Some(Ok(())) => Ok(outcome.attempts),
            Some(Err((e, _))) => Err(e),
            None => Err(exit::dependency(format!(
                "upload of {} to {repo} did not run",
                blob.digest
            ))),
        }
    }

    async fn upload_once(
        &self,
        repo: &str,
        blob: &Blob,
        session: Option<String>,
    ) -> Result<(), (anyhow::Error, bool)> {
        let Location::File { path, offset } = &blob.at else {
            let e = exit::usage(format!("blob {} is not in a file", blob.digest));
            return Err((e, false));
        };
        let unreadable = |e: std::io::Error| {
            (
                exit::usage(format!("cannot read {}: {e}", path.display())),
                false,
            )
        };
        let mut file = tokio::fs::File::open(path).await.map_err(unreadable)?;
        file.seek(std::io::SeekFrom::Start(*offset))
            .await
            .map_err(unreadable)?;
        let stream = tokio_util::io::ReaderStream::with_capacity(
            tokio::io::AsyncReadExt::take(file, blob.size),
            256 * 1024,
        );
        let body = reqwest::Body::wrap_stream(stream);
        self.send_blob(repo, &blob.digest, blob.size, body, session)
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
        self.send_blob(repo, digest, size, reqwest::Body::wrap_stream(stream), None)
            .await
            .map_err(|(e, _)| e)
    }

    /// Opens an upload session for `digest` in `repo` (POST): its location. The error says
    /// whether a new attempt can help.
    pub async fn open_session(
        &self,
        repo: &str,
        digest: &str,
    ) -> Result<String, (anyhow::Error, bool)> {
        let what = format!("upload of {digest} to {repo}");
        let r = self
            .send(Method::POST, &format!("/v2/{repo}/blobs/uploads/"), &what)
            .await
            .map_err(|e| (e, true))?;
        let status = r.status();
        if !status.is_success() {
            let retry = status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS;
            return Err((fail(&what, status, &Self::error_text(r).await), retry));
        }
        r.headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| {
                (
                    exit::dependency(format!("{what}: no upload location")),
                    true,
                )
            })
    }

    /// POST an upload session, then PUT the whole body with the digest: the distribution spec's
    /// monolithic "POST then PUT", two requests a blob where a PATCH in between made three.
    /// Registries must accept it (OCI distribution spec, "Pushing a blob monolithically",
    /// <https://github.com/opencontainers/distribution-spec/blob/main/spec.md#post-then-put>), and
    /// ECR does: it is the default upload of clients that push to ECR, such as tart
    /// (<https://github.com/openai/tart/issues/273>) and mise for layers under 64 MiB
    /// (<https://github.com/jdx/mise/pull/11376>); ECR's chunk quirks (parts of 5 MiB or more, 201
    /// for a PATCH) touch only PATCH. The single-POST form is not used: it is optional in the spec,
    /// and a registry without it (the CNCF registry here) opens a session and drops the body.
    /// `session` is one opened ahead, else one is opened now; a session opened ahead that the
    /// registry no longer knows (404: expired, purged) is worth a new attempt. The error says
    /// whether a new attempt can help.
    async fn send_blob(
        &self,
        repo: &str,
        digest: &str,
        size: u64,
        body: reqwest::Body,
        session: Option<String>,
    ) -> Result<(), (anyhow::Error, bool)> {
        let what = format!("upload of {digest} to {repo}");
        let ahead = session.is_some();
        let location = match session {
            Some(l) => l,
            None => self.open_session(repo, digest).await?,
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let r = self
            .request(Method::PUT, &format!("{location}{sep}digest={digest}"))
            .map_err(|e| (e, false))?
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, size)
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
        if status.is_success() {
            Ok(())
        } else {
            let again = status.is_server_error() || (ahead && status == StatusCode::NOT_FOUND);
            let text = Self::error_text(r).await;
            // The bytes sent are not the blob the manifest names: the source is corrupt (bit rot,
            // an edited layer), which the registry found by hashing what arrived. A usage error,
            // like the other corrupt sources; sending it again cannot help.
            if status == StatusCode::BAD_REQUEST && text.contains("DIGEST_INVALID") {
                return Err((
                    exit::usage(format!(
                        "{what}: the source's bytes for this blob do not hash to {digest}: the source is corrupt (the registry refused it: {text})"
                    )),
                    false,
                ));
            }
            Err((fail(&what, status, &text), again))
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
            .request(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))?
            .header(CONTENT_TYPE, mt)
            .body(bytes.to_vec())
            .send()
            .await
            .map_err(|e| exit::dependency(format!("{what}: {}", error_chain(&e))))?;
        let status = r.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(fail(&what, status, &Self::error_text(r).await))
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
        let mut r = r;
        deploy_core::http::read_capped(&mut r, BLOB_READ_MAX, &what, std::time::Instant::now())
            .await
            .map_err(|e| exit::dependency(format!("{what}: {e}")))
    }

    /// Where a blob stands in `repo` before any upload: present, mounted now from one of
    /// `mount_from`, pending (a daemon image's, streamed later), or missing (to upload).
    pub async fn locate(
        &self,
        repo: &str,
        blob: &Blob,
        mount_from: &[String],
    ) -> anyhow::Result<Option<Transfer>> {
        if self.has_blob(repo, &blob.digest).await? {
            return Ok(Some(Transfer::Present));
        }
        for from in mount_from.iter().filter(|f| f.as_str() != repo) {
            if self.has_blob(from, &blob.digest).await.unwrap_or(false)
                && self.mount(repo, &blob.digest, from).await?
            {
                return Ok(Some(Transfer::Mounted));
            }
        }
        if matches!(blob.at, Location::Daemon { .. }) {
            // Streamed from `docker save` later, in archive order.
            return Ok(Some(Transfer::Pending));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod location_tests {
    use super::*;

    #[test]
    fn a_location_is_resolved_as_rfc_3986_says_and_credentials_stay_home() {
        let r = Registry::new(
            "https://reg.example:5000",
            "AWS",
            &Secret::new("pw-loc-1234"),
        )
        .unwrap();
        let cases = [
            (
                "/v2/a/blobs/uploads/x",
                "https://reg.example:5000/v2/a/blobs/uploads/x",
                true,
            ),
            (
                "//other.example/upload/x",
                "https://other.example/upload/x",
                false,
            ),
            ("https://other.example/u", "https://other.example/u", false),
            (
                "https://reg.example:5000/v2/x",
                "https://reg.example:5000/v2/x",
                true,
            ),
        ];
        for (location, want, with_auth) in cases {
            assert_eq!(r.url(location), want, "{location}");
            let req = r.request(Method::PUT, location).unwrap().build().unwrap();
            assert_eq!(req.url().as_str(), want, "{location}");
            assert_eq!(
                req.headers().contains_key(AUTHORIZATION),
                with_auth,
                "{location}"
            );
        }
    }
}
