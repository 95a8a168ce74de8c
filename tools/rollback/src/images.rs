//! Does every image of the target revision still exist? ECR lifecycle policies delete images that
//! old revisions still name, and a rollback to such a revision cannot start a single task. Images
//! in ECR are looked up by digest when pinned, else by tag (a moving reference, reported as such);
//! images elsewhere are reported unchecked.

use std::collections::BTreeMap;

use deploy_core::aws_config::{Region, SdkConfig};
use deploy_core::aws_sdk_ecr as ecr;

/// An image reference in ECR: `ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO[:TAG][@DIGEST]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcrImage {
    /// The registry (account) id.
    pub registry_id: String,
    /// The region in the host name.
    pub region: String,
    /// The repository.
    pub repository: String,
    /// The tag, if any.
    pub tag: Option<String>,
    /// The digest, if pinned.
    pub digest: Option<String>,
}

/// Parses an ECR image reference; `None` for images outside ECR.
pub fn parse_ecr(image: &str) -> Option<EcrImage> {
    let (host, rest) = image.split_once('/')?;
    let mut parts = host.split('.');
    let account = parts.next()?;
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if parts.next()? != "dkr" || parts.next()? != "ecr" {
        return None;
    }
    let region = parts.next()?;
    if parts.next()? != "amazonaws" {
        return None;
    }
    let (name, digest) = match rest.split_once('@') {
        Some((n, d)) => (n, Some(d.to_owned())),
        None => (rest, None),
    };
    let (repository, tag) = match name.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, Some(t.to_owned())),
        _ => (name, None),
    };
    if repository.is_empty() || region.is_empty() {
        return None;
    }
    Some(EcrImage {
        registry_id: account.to_owned(),
        region: region.to_owned(),
        repository: repository.to_owned(),
        tag: if tag.is_none() && digest.is_none() {
            Some("latest".into())
        } else {
            tag
        },
        digest,
    })
}

/// What was found for one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// Pinned by digest and present.
    Pinned,
    /// Referenced by tag: present now, at this digest, but the tag may move.
    Moving(String),
    /// Gone (or never there): the reason.
    Missing(String),
    /// Not in ECR: not checked.
    Unchecked,
}

/// Looks images up in ECR, one client per region.
pub struct Checker {
    sdk: SdkConfig,
    clients: BTreeMap<String, ecr::Client>,
}

impl Checker {
    /// A checker using this SDK config (its endpoint and credentials).
    pub fn new(sdk: SdkConfig) -> Checker {
        Checker {
            sdk,
            clients: BTreeMap::new(),
        }
    }

    fn client(&mut self, region: &str) -> ecr::Client {
        let sdk = &self.sdk;
        self.clients
            .entry(region.to_owned())
            .or_insert_with(|| {
                let conf = ecr::config::Builder::from(sdk)
                    .region(Region::new(region.to_owned()))
                    .build();
                ecr::Client::from_conf(conf)
            })
            .clone()
    }

    /// Whether `image` exists.
    pub async fn check(&mut self, image: &str) -> anyhow::Result<Found> {
        let Some(img) = parse_ecr(image) else {
            return Ok(Found::Unchecked);
        };
        let client = self.client(&img.region);
        let id = match (&img.digest, &img.tag) {
            (Some(d), _) => ecr::types::ImageIdentifier::builder()
                .image_digest(d)
                .build(),
            (None, Some(t)) => ecr::types::ImageIdentifier::builder().image_tag(t).build(),
            (None, None) => return Ok(Found::Unchecked),
        };
        let resp = client
            .batch_get_image()
            .registry_id(&img.registry_id)
            .repository_name(&img.repository)
            .image_ids(id)
            .send()
            .await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                if e.as_service_error()
                    .is_some_and(|s| s.is_repository_not_found_exception())
                {
                    return Ok(Found::Missing(format!(
                        "repository {} does not exist",
                        img.repository
                    )));
                }
                return Err(deploy_core::aws::error(
                    &format!("couldn't look up image {image} in ECR"),
                    &e,
                ));
            }
        };
        if let Some(f) = resp.failures().first() {
            return Ok(Found::Missing(format!(
                "{}{}",
                f.failure_code().map(|c| c.as_str()).unwrap_or("not found"),
                f.failure_reason()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            )));
        }
        let Some(found) = resp.images().first() else {
            return Ok(Found::Missing("not found".into()));
        };
        Ok(match &img.digest {
            Some(_) => Found::Pinned,
            None => Found::Moving(
                found
                    .image_id()
                    .and_then(|i| i.image_digest())
                    .unwrap_or("unknown digest")
                    .to_owned(),
            ),
        })
    }

    /// The tags ECR holds for a digest-pinned image (empty when unknown).
    pub async fn tags_of(&mut self, image: &str) -> Vec<String> {
        let Some(EcrImage {
            registry_id,
            region,
            repository,
            digest: Some(digest),
            ..
        }) = parse_ecr(image)
        else {
            return Vec::new();
        };
        let client = self.client(&region);
        client
            .describe_images()
            .registry_id(registry_id)
            .repository_name(repository)
            .image_ids(
                ecr::types::ImageIdentifier::builder()
                    .image_digest(digest)
                    .build(),
            )
            .send()
            .await
            .map(|r| {
                r.image_details()
                    .iter()
                    .flat_map(|d| d.image_tags().iter().cloned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecr_references_parse() {
        let i = parse_ecr("123456789012.dkr.ecr.eu-central-1.amazonaws.com/afu9/web:v1@sha256:ab")
            .unwrap();
        assert_eq!(i.repository, "afu9/web");
        assert_eq!(i.tag.as_deref(), Some("v1"));
        assert_eq!(i.digest.as_deref(), Some("sha256:ab"));
        assert_eq!(i.region, "eu-central-1");
        let i = parse_ecr("123456789012.dkr.ecr.eu-central-1.amazonaws.com/web").unwrap();
        assert_eq!(i.tag.as_deref(), Some("latest"));
        assert!(parse_ecr("nginx:1").is_none());
        assert!(parse_ecr("ghcr.io/o/web:1").is_none());
        assert!(parse_ecr("12345.dkr.ecr.eu-central-1.amazonaws.com/web").is_none());
        assert!(parse_ecr("").is_none());
    }
}
