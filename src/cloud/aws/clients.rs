//! SDK clients per (region, profile) with their timeouts, and STS identity
//! checks.

use super::error::{aws_err, retry_config};
use crate::cloud::{CloudError, Identity};
use crate::core::config::settings::AwsSettings;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_sts::config::SharedHttpClient;
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The HTTPS client of every SDK configuration cloudnap builds: rustls with
/// the *ring* provider and the system's root certificates (the SDK's default
/// client is rustls with aws-lc-rs, a large C build).
pub fn http_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// A 5 s connect timeout, 10 s for each attempt (a black-holed connection
/// fails an attempt, not the whole wake, and is retried), and the given
/// limit for a whole operation.
pub(super) fn timeouts(operation: Duration) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .operation_attempt_timeout(Duration::from_secs(10))
        .operation_timeout(operation)
        .build()
}

/// `host:port` of an endpoint URL (the scheme's port when none is given).
fn host_port(url: &str) -> String {
    let (port, rest) = match url.split_once("://") {
        Some(("http", rest)) => (80, rest),
        Some((_, rest)) => (443, rest),
        None => (443, url),
    };
    let host = rest.split(['/', '?']).next().unwrap_or(rest);
    let bracketed = host.rsplit_once(']').map_or(host, |(_, p)| p);
    if bracketed.contains(':') {
        host.to_string()
    } else {
        format!("{host}:{port}")
    }
}

/// Keys typed into the credential dialog, checked before they are saved.
pub struct Keys<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub session_token: Option<&'a str>,
    pub region: &'a str,
}

/// Who `keys` belong to, by STS `GetCallerIdentity` (through `endpoint_url`
/// when set). Nothing is read from or written to the AWS files.
pub async fn whoami_with_keys(
    keys: &Keys<'_>,
    endpoint_url: Option<&str>,
) -> Result<Identity, CloudError> {
    let credentials = aws_sdk_sts::config::Credentials::new(
        keys.access_key_id,
        keys.secret_access_key,
        keys.session_token.map(String::from),
        None,
        "cloudnap-dialog",
    );
    let mut conf = aws_sdk_sts::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(keys.region.to_string()))
        .http_client(http_client())
        .credentials_provider(credentials)
        .timeout_config(timeouts(Duration::from_secs(20)));
    if let Some(url) = endpoint_url {
        conf = conf.endpoint_url(url);
    }
    let sts = aws_sdk_sts::Client::from_conf(conf.build());
    identity(&sts).await
}

/// Who the credentials of `sts` belong to.
pub(crate) async fn identity(sts: &aws_sdk_sts::Client) -> Result<Identity, CloudError> {
    let out = sts.get_caller_identity().send().await.map_err(aws_err)?;
    Ok(Identity {
        account: out.account().unwrap_or_default().to_string(),
        arn: out.arn().unwrap_or_default().to_string(),
    })
}

/// The SDK clients for one region and profile.
#[derive(Clone, Debug)]
pub(crate) struct Clients {
    pub(crate) appscaling: aws_sdk_applicationautoscaling::Client,
    pub(crate) autoscaling: aws_sdk_autoscaling::Client,
    pub(crate) cloudwatch: aws_sdk_cloudwatch::Client,
    pub(crate) ec2: aws_sdk_ec2::Client,
    pub(crate) ecs: aws_sdk_ecs::Client,
    pub(crate) eks: aws_sdk_eks::Client,
    pub(crate) iam: aws_sdk_iam::Client,
    pub(crate) rds: aws_sdk_rds::Client,
    pub(crate) scheduler: aws_sdk_scheduler::Client,
    /// Signed calls to the services without an SDK crate (SageMaker, Redshift,
    /// WorkSpaces).
    pub(crate) signed: super::signed::Signed,
    pub(crate) sts: aws_sdk_sts::Client,
    pub(crate) tagging: aws_sdk_resourcegroupstagging::Client,
}

impl Clients {
    /// Clients sharing one SDK configuration.
    pub(crate) fn new(conf: &aws_config::SdkConfig) -> Self {
        Clients {
            appscaling: aws_sdk_applicationautoscaling::Client::new(conf),
            autoscaling: aws_sdk_autoscaling::Client::new(conf),
            cloudwatch: aws_sdk_cloudwatch::Client::new(conf),
            ec2: aws_sdk_ec2::Client::new(conf),
            ecs: aws_sdk_ecs::Client::new(conf),
            eks: aws_sdk_eks::Client::new(conf),
            iam: aws_sdk_iam::Client::new(conf),
            rds: aws_sdk_rds::Client::new(conf),
            scheduler: aws_sdk_scheduler::Client::new(conf),
            signed: super::signed::Signed::new(conf),
            sts: aws_sdk_sts::Client::new(conf),
            tagging: aws_sdk_resourcegroupstagging::Client::new(conf),
        }
    }
}

/// The SDK configuration loader for `region`: [`http_client`], the standard
/// credential chain (of `profile`, if given), `endpoint_url` if given,
/// [`retry_config`], and `operation` as the limit of a whole call.
pub(super) fn loader(
    region: &str,
    profile: Option<&str>,
    endpoint_url: Option<&str>,
    operation: Duration,
) -> aws_config::ConfigLoader {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .http_client(http_client())
        .retry_config(retry_config())
        .timeout_config(timeouts(operation));
    if let Some(p) = profile {
        loader = loader.profile_name(p);
    }
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader
}

/// Region, profile and configuration epoch of a set of clients.
type ClientKey = (String, Option<String>, u64);

/// [`Clients`] per region and profile, built on first use with the standard
/// credential chain, [`retry_config`] and a 60 s operation timeout.
pub(super) struct ClientCache {
    /// The endpoint override and default profile, replaced by `reconfigure`.
    config: std::sync::Mutex<(Option<String>, Option<String>)>,
    /// Bumped by `reconfigure`: clients of an older epoch are not reused.
    epoch: AtomicU64,
    clients: tokio::sync::Mutex<HashMap<ClientKey, Clients>>,
}

impl ClientCache {
    /// A cache using the settings' default profile and endpoint override.
    pub(super) fn new(aws: &AwsSettings) -> Self {
        ClientCache {
            config: std::sync::Mutex::new((aws.endpoint_url.clone(), aws.profile.clone())),
            epoch: AtomicU64::new(0),
            clients: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The clients for `region` and `profile` (`None`: the default profile).
    pub(super) async fn get(&self, region: &str, profile: Option<&str>) -> Clients {
        let (endpoint_url, default_profile) = self.config.lock().expect("aws config").clone();
        let profile = profile.map(String::from).or(default_profile);
        let epoch = self.epoch.load(Ordering::Acquire);
        let key = (region.to_string(), profile.clone(), epoch);
        let mut map = self.clients.lock().await;
        if let Some(c) = map.get(&key) {
            return c.clone();
        }
        map.retain(|k, _| k.2 == epoch);
        let conf = loader(
            region,
            profile.as_deref(),
            endpoint_url.as_deref(),
            Duration::from_secs(60),
        )
        .load()
        .await;
        let clients = Clients::new(&conf);
        map.insert(key, clients.clone());
        clients
    }

    /// A cache whose clients for `region` and the default profile are
    /// `clients` (mocked SDK clients in tests).
    #[cfg(test)]
    pub(super) fn with(region: &str, clients: Clients) -> Self {
        let cache = ClientCache::new(&crate::core::config::settings::Settings::default().aws);
        cache
            .clients
            .try_lock()
            .expect("a new cache")
            .insert((region.to_string(), None, 0), clients);
        cache
    }

    /// `host:port` of the endpoint that answers for `region`: the endpoint
    /// override, else the region's STS endpoint.
    pub(super) fn address(&self, region: &str) -> String {
        let endpoint = self.config.lock().expect("aws config").0.clone();
        match endpoint {
            Some(url) => host_port(&url),
            None => format!("sts.{region}.amazonaws.com:443"),
        }
    }

    /// Uses a new default profile and endpoint for clients built from now on.
    pub(super) fn reconfigure(&self, aws: &AwsSettings) {
        *self.config.lock().expect("aws config") = (aws.endpoint_url.clone(), aws.profile.clone());
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_address_of_an_endpoint() {
        assert_eq!(host_port("http://127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(host_port("http://localhost/"), "localhost:80");
        assert_eq!(
            host_port("https://vpce.example.com/x"),
            "vpce.example.com:443"
        );
        assert_eq!(host_port("http://[::1]:9"), "[::1]:9");
        let cache = ClientCache::new(&crate::core::config::settings::Settings::default().aws);
        assert_eq!(
            cache.address("eu-west-1"),
            "sts.eu-west-1.amazonaws.com:443"
        );
    }
}
