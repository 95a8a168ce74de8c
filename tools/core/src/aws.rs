//! The AWS client factory: the standard credential chain (environment, profile, web identity for
//! GitHub OIDC, container and instance roles), a region from flag, environment or config, and an
//! endpoint from `--endpoint-url` or `AWS_ENDPOINT_URL` (how tests reach moto).

use aws_config::{BehaviorVersion, Region, SdkConfig};

use crate::exit;

/// AWS flags shared by every tool that calls AWS.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AwsArgs {
    /// AWS region (default: AWS_REGION, the profile, then `defaults.region` in deploy.toml).
    #[arg(long, env = "AWS_REGION", value_name = "REGION")]
    pub region: Option<String>,
    /// Send AWS API calls to this endpoint instead of AWS (e.g. a local moto server).
    #[arg(long, env = "AWS_ENDPOINT_URL", hide_env_values = true, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// Named profile from ~/.aws/config.
    #[arg(long, env = "AWS_PROFILE", value_name = "NAME")]
    pub profile: Option<String>,
}

/// Attempts of one AWS call (throttling and transient errors are retried with backoff).
pub const MAX_ATTEMPTS: u32 = 6;

/// Loads the SDK config. `fallback_region` is the config file's region, used when neither the
/// flag nor the environment nor the profile gives one.
pub async fn sdk_config(
    args: &AwsArgs,
    fallback_region: Option<&str>,
) -> anyhow::Result<SdkConfig> {
    // Every AWS call gets deadlines: the SDK's defaults bound only connecting (3.1 s), so a
    // stalled read would wait forever. Connecting 5 s, each read and attempt 30 s, the whole call
    // 90 s; the SDK's retries of throttling and transient errors happen inside those 90 s.
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .read_timeout(std::time::Duration::from_secs(30))
        .operation_attempt_timeout(std::time::Duration::from_secs(30))
        .operation_timeout(std::time::Duration::from_secs(90))
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(timeouts);
    // Throttling (`ThrottlingException` past AWS's call rates, which 1,000 services reach) is
    // retried by the SDK's standard retry with backoff; 3 attempts, its default, can lose a call
    // under steady throttling, so 6 unless AWS_MAX_ATTEMPTS or AWS_RETRY_MODE says otherwise
    // (https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html).
    if std::env::var_os("AWS_MAX_ATTEMPTS").is_none()
        && std::env::var_os("AWS_RETRY_MODE").is_none()
    {
        loader = loader.retry_config(
            aws_config::retry::RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS),
        );
    }
    if let Some(r) = &args.region {
        loader = loader.region(Region::new(r.clone()));
    }
    if let Some(url) = &args.endpoint_url {
        crate::urls::validate_url(url).map_err(|e| {
            exit::usage(format!(
                "--endpoint-url: {e}: {:?}",
                crate::urls::shown_url(url)
            ))
        })?;
        loader = loader.endpoint_url(url.clone());
    }
    if let Some(p) = &args.profile {
        loader = loader.profile_name(p);
    }
    let mut conf = loader.load().await;
    if conf.region().is_none() {
        match fallback_region {
            Some(r) => {
                conf = conf
                    .into_builder()
                    .region(Region::new(r.to_owned()))
                    .build();
            }
            None => {
                return Err(exit::usage(
                    "no AWS region: pass --region, set AWS_REGION, or set defaults.region in deploy.toml",
                ));
            }
        }
    }
    check_credentials(&conf, args.profile.as_deref()).await?;
    Ok(conf)
}

/// Resolves the credentials once, up front, so a run without any says so in one line (which
/// sources were tried, how to provide them in Actions) instead of the SDK's per-provider
/// warnings and a service error later. Exit 3.
async fn check_credentials(conf: &SdkConfig, profile: Option<&str>) -> anyhow::Result<()> {
    use aws_credential_types::provider::ProvideCredentials;
    use aws_credential_types::provider::error::CredentialsError;
    let Some(provider) = conf.credentials_provider() else {
        return Err(exit::dependency(no_credentials(profile)));
    };
    let resolved = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        provider.provide_credentials(),
    )
    .await
    .map_err(|_| {
        exit::dependency(
            "timed out after 30s resolving AWS credentials (the credential chain did not answer)",
        )
    })?;
    match resolved {
        Ok(_) => Ok(()),
        // Nothing configured: the chain fell through to instance metadata, whose answer (absent,
        // forbidden, a cloud that is not AWS, as on GitHub's hosted runners) says nothing useful.
        Err(CredentialsError::CredentialsNotLoaded(_)) => {
            Err(exit::dependency(no_credentials(profile)))
        }
        Err(_) if !credentials_configured(profile) => {
            Err(exit::dependency(no_credentials(profile)))
        }
        Err(e) => Err(exit::dependency(format!(
            "couldn't load AWS credentials: {}",
            crate::http::error_chain(&e)
        ))),
    }
}

/// Whether anything points the credential chain at a source (keys, a profile or its files, web
/// identity, a container endpoint): then a failure to load is that source's error, worth showing.
fn credentials_configured(profile: Option<&str>) -> bool {
    let set = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
    let home_file = |rel: &str| {
        std::env::var_os("HOME")
            .map(std::path::PathBuf::from)
            .is_some_and(|h| h.join(rel).is_file())
    };
    profile.is_some()
        || [
            "AWS_ACCESS_KEY_ID",
            "AWS_PROFILE",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_SHARED_CREDENTIALS_FILE",
            "AWS_CONFIG_FILE",
        ]
        .iter()
        .any(|k| set(k))
        || home_file(".aws/credentials")
        || home_file(".aws/config")
}

/// The one line a run without AWS credentials prints.
pub fn no_credentials(profile: Option<&str>) -> String {
    format!(
        "no AWS credentials found: tried the environment (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), \
         the shared files (~/.aws/credentials and ~/.aws/config, profile {}), web identity \
         (AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN), the ECS container endpoint and EC2 instance \
         metadata. In GitHub Actions, give the job `permissions: id-token: write` and run \
         aws-actions/configure-aws-credentials with role-to-assume before this step",
        profile.unwrap_or("default")
    )
}

/// An AWS SDK error as one line with its sources (the SDK's own `Display` says only "service
/// error"), classified as a dependency failure (exit 3).
pub fn error(context: &str, e: &(dyn std::error::Error + 'static)) -> anyhow::Error {
    exit::dependency(format!("{context}: {}", crate::http::error_chain(e)))
}

/// An ECS client.
#[cfg(feature = "ecs")]
pub fn ecs(conf: &SdkConfig) -> aws_sdk_ecs::Client {
    aws_sdk_ecs::Client::new(conf)
}

/// A CloudWatch client.
#[cfg(feature = "cloudwatch")]
pub fn cloudwatch(conf: &SdkConfig) -> aws_sdk_cloudwatch::Client {
    aws_sdk_cloudwatch::Client::new(conf)
}

/// An ECR client.
#[cfg(feature = "ecr")]
pub fn ecr(conf: &SdkConfig) -> aws_sdk_ecr::Client {
    aws_sdk_ecr::Client::new(conf)
}

/// Registry credentials from ECR's GetAuthorizationToken, kept in memory only.
#[cfg(feature = "ecr")]
#[derive(Debug, Clone)]
pub struct RegistryLogin {
    /// Always `AWS` on ECR.
    pub username: String,
    /// The registry password: masked and redacted.
    pub password: crate::secret::Secret,
    /// `https://<account>.dkr.ecr.<region>.amazonaws.com`.
    pub proxy_endpoint: Option<String>,
    /// When the token expires, as ECR reports it. moto reports 2015 for every token, so callers
    /// must not refuse a token for an expiry in the past; they log it and retry a 401 once.
    pub expires_at: Option<std::time::SystemTime>,
}

/// Gets registry credentials for the account's registry.
#[cfg(feature = "ecr")]
pub async fn ecr_login(client: &aws_sdk_ecr::Client) -> anyhow::Result<RegistryLogin> {
    use base64::Engine;
    let out = client
        .get_authorization_token()
        .send()
        .await
        .map_err(|e| error("couldn't get an ECR authorization token", &e))?;
    let data = out
        .authorization_data()
        .first()
        .ok_or_else(|| exit::dependency("ECR returned no authorization data"))?;
    let token = data
        .authorization_token()
        .ok_or_else(|| exit::dependency("ECR returned an empty authorization token"))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|_| exit::dependency("ECR authorization token is not base64"))?;
    let decoded = String::from_utf8(decoded)
        .map_err(|_| exit::dependency("ECR authorization token is not UTF-8"))?;
    let (user, pass) = decoded
        .split_once(':')
        .ok_or_else(|| exit::dependency("ECR authorization token is not user:password"))?;
    let password = crate::secret::Secret::new(pass);
    crate::secret::register(token);
    let expires_at = data.expires_at().and_then(|t| {
        u64::try_from(t.secs())
            .ok()
            .map(|s| std::time::UNIX_EPOCH + std::time::Duration::from_secs(s))
    });
    Ok(RegistryLogin {
        username: user.to_owned(),
        password,
        proxy_endpoint: data.proxy_endpoint().map(str::to_owned),
        expires_at,
    })
}
