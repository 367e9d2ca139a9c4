//! [`CloudControl`] over the AWS SDK: EC2, ECS, EKS and STS clients per
//! (region, profile), the standard credential chain, an optional endpoint
//! override, and retries with backoff for throttling and 5xx answers.

use super::{each_in_order, CloudControl, CloudError, ErrorKind, Identity};
use crate::core::resource::{
    Capacity, Ec2Instance, EcsService, EksNodegroup, Kind, Observed, ResourceId,
};
use crate::core::settings::AwsSettings;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::Mutex;

/// Tag holding the capacity a sleeping resource had.
pub const SLEEP_TAG: &str = "cloudnap:sleeping";
/// Tag that protects a resource from ever being stopped.
pub const PROTECT_TAG: &str = "cloudnap:protect";

/// The retry policy of every client: standard mode (throttling, 5xx and
/// transient errors), 5 attempts, exponential backoff from 200 ms.
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(5)
        .with_initial_backoff(Duration::from_millis(200))
}

/// `(code, message)` from an XML error body the SDK could not parse (moto
/// answers auth failures in EC2's `<Errors><Error>` shape for every service).
fn xml_error(body: &[u8]) -> Option<(String, String)> {
    let text = std::str::from_utf8(body).ok()?;
    let tag = |name: &str| {
        let start = text.find(&format!("<{name}>"))? + name.len() + 2;
        let end = start + text[start..].find(&format!("</{name}>"))?;
        Some(text[start..end].to_string())
    };
    Some((tag("Code")?, tag("Message").unwrap_or_default()))
}

/// Maps an SDK error to a [`CloudError`], keeping the AWS error code.
fn aws_err<E>(e: SdkError<E, aws_sdk_ec2::config::http::HttpResponse>) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => {
            let text = DisplayErrorContext(&e).to_string();
            let kind = if text.contains("credentials") {
                ErrorKind::Credentials
            } else {
                ErrorKind::Network
            };
            CloudError::new(kind, text)
        }
        SdkError::ServiceError(se) if e.code().is_none() => {
            match se.raw().body().bytes().and_then(xml_error) {
                Some((code, message)) => CloudError::from_code(Some(&code), message),
                None => CloudError::new(ErrorKind::Other, DisplayErrorContext(&e).to_string()),
            }
        }
        SdkError::ServiceError(_) => CloudError::from_code(
            e.code(),
            e.message()
                .map(String::from)
                .unwrap_or_else(|| DisplayErrorContext(&e).to_string()),
        ),
        _ => {
            let text = DisplayErrorContext(&e).to_string();
            let kind = if text.contains("credentials") {
                ErrorKind::Credentials
            } else {
                ErrorKind::Other
            };
            CloudError::new(kind, text)
        }
    }
}

/// Every item of a paginated request, or the first error.
macro_rules! all_items {
    ($request:expr) => {
        $request
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(aws_err)
    };
}

fn not_found(what: String) -> CloudError {
    CloudError::new(ErrorKind::NotFound, format!("{what} not found"))
}

/// A 5 s connect timeout and the given limit for a whole operation.
fn timeouts(operation: Duration) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .operation_timeout(operation)
        .build()
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
        .credentials_provider(credentials)
        .timeout_config(timeouts(Duration::from_secs(20)));
    if let Some(url) = endpoint_url {
        conf = conf.endpoint_url(url);
    }
    let sts = aws_sdk_sts::Client::from_conf(conf.build());
    identity(&sts).await
}

async fn identity(sts: &aws_sdk_sts::Client) -> Result<Identity, CloudError> {
    let out = sts.get_caller_identity().send().await.map_err(aws_err)?;
    Ok(Identity {
        account: out.account().unwrap_or_default().to_string(),
        arn: out.arn().unwrap_or_default().to_string(),
    })
}

/// The SDK clients for one region and profile.
#[derive(Clone, Debug)]
pub struct Clients {
    pub ec2: aws_sdk_ec2::Client,
    pub ecs: aws_sdk_ecs::Client,
    pub eks: aws_sdk_eks::Client,
    pub sts: aws_sdk_sts::Client,
}

impl Clients {
    /// Clients sharing one SDK configuration.
    pub fn new(conf: &aws_config::SdkConfig) -> Self {
        Clients {
            ec2: aws_sdk_ec2::Client::new(conf),
            ecs: aws_sdk_ecs::Client::new(conf),
            eks: aws_sdk_eks::Client::new(conf),
            sts: aws_sdk_sts::Client::new(conf),
        }
    }
}

/// Region, profile and configuration epoch of a set of clients.
type ClientKey = (String, Option<String>, u64);

/// AWS implementation of [`CloudControl`].
pub struct AwsCloud {
    /// The endpoint override and default profile, replaced by `reconfigure`.
    config: std::sync::Mutex<(Option<String>, Option<String>)>,
    /// Bumped by `reconfigure`: clients of an older epoch are not reused.
    epoch: std::sync::atomic::AtomicU64,
    clients: Mutex<HashMap<ClientKey, Clients>>,
    /// ARNs learnt by `inspect`, needed to tag ECS services and EKS clusters.
    arns: std::sync::Mutex<HashMap<ResourceId, String>>,
}

impl AwsCloud {
    /// An adapter using the settings' default profile and endpoint override.
    pub fn new(aws: &AwsSettings) -> Self {
        AwsCloud {
            config: std::sync::Mutex::new((aws.endpoint_url.clone(), aws.profile.clone())),
            epoch: std::sync::atomic::AtomicU64::new(0),
            clients: Mutex::new(HashMap::new()),
            arns: std::sync::Mutex::new(HashMap::new()),
        }
    }

    async fn clients(&self, region: &str, profile: Option<&str>) -> Clients {
        let (endpoint_url, default_profile) = self.config.lock().expect("aws config").clone();
        let profile = profile.map(String::from).or(default_profile);
        let epoch = self.epoch.load(std::sync::atomic::Ordering::Acquire);
        let key = (region.to_string(), profile.clone(), epoch);
        let mut map = self.clients.lock().await;
        if let Some(c) = map.get(&key) {
            return c.clone();
        }
        map.retain(|k, _| k.2 == epoch);
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .retry_config(retry_config())
            .timeout_config(timeouts(Duration::from_secs(60)));
        if let Some(p) = &profile {
            loader = loader.profile_name(p);
        }
        if let Some(url) = &endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let clients = Clients::new(&loader.load().await);
        map.insert(key, clients.clone());
        clients
    }

    /// Clients and instance ids when `items` are EC2 instances of one region
    /// that all get the same value: a group one batch call can serve.
    async fn ec2_group<T: PartialEq>(
        &self,
        items: &[(ResourceId, T)],
        profile: Option<&str>,
    ) -> Option<(Clients, Vec<String>)> {
        let region = ec2_region(items.iter().map(|(id, _)| id))?;
        if !items.iter().all(|(_, v)| *v == items[0].1) {
            return None;
        }
        let ids = items.iter().map(|(id, _)| instance_id(id)).collect();
        Some((self.clients(region, profile).await, ids))
    }

    fn remember_arn(&self, id: &ResourceId, arn: Option<&str>) {
        if let Some(arn) = arn {
            self.arns
                .lock()
                .expect("arn cache")
                .insert(id.clone(), arn.to_string());
        }
    }

    fn known_arn(&self, id: &ResourceId) -> Option<String> {
        self.arns.lock().expect("arn cache").get(id).cloned()
    }

    async fn arn_of(&self, c: &Clients, id: &ResourceId) -> Result<String, CloudError> {
        if let Some(arn) = self.known_arn(id) {
            return Ok(arn);
        }
        match id {
            ResourceId::Ecs {
                cluster_name,
                service_name,
                ..
            } => {
                let svc = ecs_describe(&c.ecs, cluster_name, service_name).await?;
                self.remember_arn(id, svc.service_arn());
            }
            ResourceId::Eks { cluster_name, .. } => {
                let cluster = eks_cluster(&c.eks, cluster_name).await?;
                self.remember_arn(id, cluster.arn());
            }
            ResourceId::Ec2 { instance_id, .. } => return Ok(instance_id.clone()),
        }
        self.known_arn(id)
            .ok_or_else(|| CloudError::new(ErrorKind::Other, format!("{id} has no ARN")))
    }
}

fn has_protect(tags: impl IntoIterator<Item = (impl AsRef<str>, impl AsRef<str>)>) -> bool {
    tags.into_iter()
        .any(|(k, v)| k.as_ref() == PROTECT_TAG && v.as_ref().eq_ignore_ascii_case("true"))
}

fn marker(kind: Kind, value: Option<&str>) -> Option<Capacity> {
    value.and_then(|v| Capacity::from_tag(kind, v))
}

fn eks_marker_key(nodegroup: &str) -> String {
    format!("{SLEEP_TAG}:{nodegroup}")
}

async fn ec2_describe(
    ec2: &aws_sdk_ec2::Client,
    instance_id: &str,
) -> Result<aws_sdk_ec2::types::Instance, CloudError> {
    let out = ec2
        .describe_instances()
        .instance_ids(instance_id)
        .send()
        .await
        .map_err(aws_err)?;
    out.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .find(|i| i.instance_id() == Some(instance_id))
        .cloned()
        .ok_or_else(|| not_found(format!("instance {instance_id}")))
}

/// Every instance of `ids` that exists, by id; one call per 500 ids.
async fn ec2_describe_many(
    ec2: &aws_sdk_ec2::Client,
    ids: &[String],
) -> Result<HashMap<String, aws_sdk_ec2::types::Instance>, CloudError> {
    let mut found = HashMap::new();
    for chunk in ids.chunks(500) {
        let reservations = all_items!(ec2
            .describe_instances()
            .set_instance_ids(Some(chunk.to_vec())))?;
        for i in reservations.iter().flat_map(|r| r.instances()) {
            if let Some(id) = i.instance_id() {
                found.insert(id.to_string(), i.clone());
            }
        }
    }
    Ok(found)
}

fn observe_ec2(i: &aws_sdk_ec2::types::Instance) -> Observed {
    let state = ec2_state(i);
    let tags = i
        .tags()
        .iter()
        .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default()));
    Observed {
        capacity: Capacity::Ec2 {
            running: matches!(state.as_str(), "pending" | "running"),
        },
        protected: has_protect(tags.clone()),
        marker: marker(
            Kind::Ec2,
            tags.clone().find(|(k, _)| *k == SLEEP_TAG).map(|(_, v)| v),
        ),
        status: state,
    }
}

/// The region of `ids` when they are all EC2 instances of one region.
fn ec2_region<'a>(ids: impl IntoIterator<Item = &'a ResourceId>) -> Option<&'a str> {
    let mut region = None;
    for id in ids {
        match id {
            ResourceId::Ec2 { region: r, .. } if region.is_none_or(|x| x == r) => {
                region = Some(r.as_str())
            }
            _ => return None,
        }
    }
    region
}

fn instance_id(id: &ResourceId) -> String {
    match id {
        ResourceId::Ec2 { instance_id, .. } => instance_id.clone(),
        _ => unreachable!("checked by ec2_region"),
    }
}

/// One result per item: all `Ok` when the batch call worked.
fn all_ok(n: usize) -> Vec<Result<(), CloudError>> {
    (0..n).map(|_| Ok(())).collect()
}

fn ec2_state(i: &aws_sdk_ec2::types::Instance) -> String {
    i.state()
        .and_then(|s| s.name())
        .map(|n| n.as_str().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Starts an instance; if it is still stopping, waits for it to stop first.
async fn ec2_start(ec2: &aws_sdk_ec2::Client, instance_id: &str) -> Result<(), CloudError> {
    for _ in 0..60 {
        match ec2.start_instances().instance_ids(instance_id).send().await {
            Ok(_) => return Ok(()),
            Err(e) => {
                let e = aws_err(e);
                if e.kind != ErrorKind::InvalidState {
                    return Err(e);
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
    Err(CloudError::new(
        ErrorKind::InvalidState,
        format!("instance {instance_id} did not reach a startable state in 2 minutes"),
    ))
}

async fn ecs_describe(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    service: &str,
) -> Result<aws_sdk_ecs::types::Service, CloudError> {
    let out = ecs
        .describe_services()
        .cluster(cluster)
        .services(service)
        .include(aws_sdk_ecs::types::ServiceField::Tags)
        .send()
        .await
        .map_err(aws_err)?;
    out.services()
        .iter()
        .find(|s| s.status() != Some("INACTIVE"))
        .cloned()
        .ok_or_else(|| not_found(format!("ECS service {cluster}/{service}")))
}

/// Sets an ECS service's desired count.
pub async fn ecs_set_desired(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    service: &str,
    desired: i32,
) -> Result<(), CloudError> {
    ecs.update_service()
        .cluster(cluster)
        .service(service)
        .desired_count(desired)
        .send()
        .await
        .map_err(aws_err)?;
    Ok(())
}

async fn eks_cluster(
    eks: &aws_sdk_eks::Client,
    cluster: &str,
) -> Result<aws_sdk_eks::types::Cluster, CloudError> {
    eks.describe_cluster()
        .name(cluster)
        .send()
        .await
        .map_err(aws_err)?
        .cluster
        .ok_or_else(|| not_found(format!("EKS cluster {cluster}")))
}

async fn eks_nodegroup(
    eks: &aws_sdk_eks::Client,
    cluster: &str,
    nodegroup: &str,
) -> Result<aws_sdk_eks::types::Nodegroup, CloudError> {
    eks.describe_nodegroup()
        .cluster_name(cluster)
        .nodegroup_name(nodegroup)
        .send()
        .await
        .map_err(aws_err)?
        .nodegroup
        .ok_or_else(|| not_found(format!("EKS nodegroup {cluster}/{nodegroup}")))
}

fn eks_scaling(ng: &aws_sdk_eks::types::Nodegroup) -> (i32, i32, i32) {
    let s = ng.scaling_config();
    (
        s.and_then(|s| s.min_size()).unwrap_or(0),
        s.and_then(|s| s.desired_size()).unwrap_or(0),
        s.and_then(|s| s.max_size()).unwrap_or(0),
    )
}

impl CloudControl for AwsCloud {
    async fn inspect(
        &self,
        id: &ResourceId,
        profile: Option<&str>,
    ) -> Result<Observed, CloudError> {
        let c = self.clients(id.region(), profile).await;
        match id {
            ResourceId::Ec2 { instance_id, .. } => {
                Ok(observe_ec2(&ec2_describe(&c.ec2, instance_id).await?))
            }
            ResourceId::Ecs {
                cluster_name,
                service_name,
                ..
            } => {
                let s = ecs_describe(&c.ecs, cluster_name, service_name).await?;
                self.remember_arn(id, s.service_arn());
                let tags = s
                    .tags()
                    .iter()
                    .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default()));
                Ok(Observed {
                    capacity: Capacity::Ecs {
                        desired: s.desired_count(),
                    },
                    protected: has_protect(tags.clone()),
                    marker: marker(
                        Kind::Ecs,
                        tags.clone().find(|(k, _)| *k == SLEEP_TAG).map(|(_, v)| v),
                    ),
                    status: s.status().unwrap_or("unknown").to_string(),
                })
            }
            ResourceId::Eks {
                cluster_name,
                nodegroup_name,
                ..
            } => {
                let (ng, cluster) = tokio::join!(
                    eks_nodegroup(&c.eks, cluster_name, nodegroup_name),
                    eks_cluster(&c.eks, cluster_name)
                );
                let (ng, cluster) = (ng?, cluster?);
                self.remember_arn(id, cluster.arn());
                let (min, desired, max) = eks_scaling(&ng);
                let ng_tags = ng.tags().into_iter().flatten();
                let cluster_tags = cluster.tags();
                Ok(Observed {
                    capacity: Capacity::Eks { min, desired, max },
                    protected: has_protect(ng_tags),
                    marker: marker(
                        Kind::Eks,
                        cluster_tags
                            .and_then(|t| t.get(&eks_marker_key(nodegroup_name)))
                            .map(String::as_str),
                    ),
                    status: ng
                        .status()
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_else(|| "unknown".into()),
                })
            }
        }
    }

    async fn set_capacity(
        &self,
        id: &ResourceId,
        profile: Option<&str>,
        capacity: Capacity,
    ) -> Result<(), CloudError> {
        let c = self.clients(id.region(), profile).await;
        match (id, capacity) {
            (ResourceId::Ec2 { instance_id, .. }, Capacity::Ec2 { running: true }) => {
                ec2_start(&c.ec2, instance_id).await
            }
            (ResourceId::Ec2 { instance_id, .. }, Capacity::Ec2 { running: false }) => {
                c.ec2
                    .stop_instances()
                    .instance_ids(instance_id)
                    .send()
                    .await
                    .map_err(aws_err)?;
                Ok(())
            }
            (
                ResourceId::Ecs {
                    cluster_name,
                    service_name,
                    ..
                },
                Capacity::Ecs { desired },
            ) => ecs_set_desired(&c.ecs, cluster_name, service_name, desired).await,
            (
                ResourceId::Eks {
                    cluster_name,
                    nodegroup_name,
                    ..
                },
                Capacity::Eks { min, desired, max },
            ) => {
                c.eks
                    .update_nodegroup_config()
                    .cluster_name(cluster_name)
                    .nodegroup_name(nodegroup_name)
                    .scaling_config(
                        aws_sdk_eks::types::NodegroupScalingConfig::builder()
                            .min_size(min)
                            .desired_size(desired)
                            .max_size(max)
                            .build(),
                    )
                    .send()
                    .await
                    .map_err(aws_err)?;
                Ok(())
            }
            _ => Err(CloudError::new(
                ErrorKind::Other,
                format!("capacity {capacity} does not apply to {id}"),
            )),
        }
    }

    async fn set_marker(
        &self,
        id: &ResourceId,
        profile: Option<&str>,
        saved: Option<Capacity>,
    ) -> Result<(), CloudError> {
        let c = self.clients(id.region(), profile).await;
        let arn = self.arn_of(&c, id).await?;
        match (id, saved) {
            (ResourceId::Ec2 { .. }, Some(saved)) => {
                let tag = aws_sdk_ec2::types::Tag::builder()
                    .key(SLEEP_TAG)
                    .value(saved.to_tag())
                    .build();
                c.ec2
                    .create_tags()
                    .resources(arn)
                    .tags(tag)
                    .send()
                    .await
                    .map_err(aws_err)?;
            }
            (ResourceId::Ec2 { .. }, None) => {
                let tag = aws_sdk_ec2::types::Tag::builder().key(SLEEP_TAG).build();
                c.ec2
                    .delete_tags()
                    .resources(arn)
                    .tags(tag)
                    .send()
                    .await
                    .map_err(aws_err)?;
            }
            (ResourceId::Ecs { .. }, Some(saved)) => {
                let tag = aws_sdk_ecs::types::Tag::builder()
                    .key(SLEEP_TAG)
                    .value(saved.to_tag())
                    .build();
                c.ecs
                    .tag_resource()
                    .resource_arn(arn)
                    .tags(tag)
                    .send()
                    .await
                    .map_err(aws_err)?;
            }
            (ResourceId::Ecs { .. }, None) => {
                c.ecs
                    .untag_resource()
                    .resource_arn(arn)
                    .tag_keys(SLEEP_TAG)
                    .send()
                    .await
                    .map_err(aws_err)?;
            }
            (ResourceId::Eks { nodegroup_name, .. }, Some(saved)) => {
                c.eks
                    .tag_resource()
                    .resource_arn(arn)
                    .tags(eks_marker_key(nodegroup_name), saved.to_tag())
                    .send()
                    .await
                    .map_err(aws_err)?;
            }
            (ResourceId::Eks { nodegroup_name, .. }, None) => {
                c.eks
                    .untag_resource()
                    .resource_arn(arn)
                    .tag_keys(eks_marker_key(nodegroup_name))
                    .send()
                    .await
                    .map_err(aws_err)?;
            }
        }
        Ok(())
    }

    async fn list_ec2(
        &self,
        region: &str,
        profile: Option<&str>,
    ) -> Result<Vec<Ec2Instance>, CloudError> {
        let c = self.clients(region, profile).await;
        let reservations = all_items!(c.ec2.describe_instances())?;
        Ok(reservations
            .iter()
            .flat_map(|r| r.instances())
            .map(|i| Ec2Instance {
                instance_id: i.instance_id().unwrap_or_default().to_string(),
                region: region.to_string(),
                instance_type: i
                    .instance_type()
                    .map(|t| t.as_str().to_string())
                    .unwrap_or_default(),
                state: ec2_state(i),
                name: i
                    .tags()
                    .iter()
                    .find(|t| t.key() == Some("Name"))
                    .and_then(|t| t.value())
                    .map(String::from),
                public_ip: i.public_ip_address().map(String::from),
                private_ip: i.private_ip_address().map(String::from),
            })
            .collect())
    }

    async fn list_ecs(
        &self,
        region: &str,
        profile: Option<&str>,
    ) -> Result<Vec<EcsService>, CloudError> {
        let c = self.clients(region, profile).await;
        let clusters = all_items!(c.ecs.list_clusters())?;
        let mut out = Vec::new();
        for cluster_arn in clusters {
            let cluster_name = cluster_arn
                .rsplit('/')
                .next()
                .unwrap_or(&cluster_arn)
                .to_string();
            let arns = all_items!(c.ecs.list_services().cluster(&cluster_arn))?;
            for chunk in arns.chunks(10) {
                let described = c
                    .ecs
                    .describe_services()
                    .cluster(&cluster_arn)
                    .set_services(Some(chunk.to_vec()))
                    .send()
                    .await
                    .map_err(aws_err)?;
                out.extend(described.services().iter().map(|s| EcsService {
                    cluster_name: cluster_name.clone(),
                    service_name: s.service_name().unwrap_or_default().to_string(),
                    region: region.to_string(),
                    status: s.status().unwrap_or_default().to_string(),
                    desired_count: s.desired_count(),
                    running_count: s.running_count(),
                    pending_count: s.pending_count(),
                }));
            }
        }
        Ok(out)
    }

    async fn list_eks(
        &self,
        region: &str,
        profile: Option<&str>,
    ) -> Result<Vec<EksNodegroup>, CloudError> {
        let c = self.clients(region, profile).await;
        let clusters = all_items!(c.eks.list_clusters())?;
        let mut out = Vec::new();
        for cluster in clusters {
            let groups = all_items!(c.eks.list_nodegroups().cluster_name(&cluster))?;
            for name in groups {
                let ng = eks_nodegroup(&c.eks, &cluster, &name).await?;
                let (min, desired, max) = eks_scaling(&ng);
                out.push(EksNodegroup {
                    cluster_name: cluster.clone(),
                    nodegroup_name: name,
                    region: region.to_string(),
                    status: ng
                        .status()
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default(),
                    min_size: min,
                    desired_size: desired,
                    max_size: max,
                });
            }
        }
        Ok(out)
    }

    /// EC2 instances of one region are described in one call; if that call
    /// fails (one id vanished), they are asked one by one for exact errors.
    async fn inspect_many(
        &self,
        ids: &[ResourceId],
        profile: Option<&str>,
    ) -> Vec<Result<Observed, CloudError>> {
        if let Some(region) = ec2_region(ids) {
            let c = self.clients(region, profile).await;
            let wanted: Vec<String> = ids.iter().map(instance_id).collect();
            if let Ok(found) = ec2_describe_many(&c.ec2, &wanted).await {
                return wanted
                    .iter()
                    .map(|i| {
                        found
                            .get(i)
                            .map(observe_ec2)
                            .ok_or_else(|| not_found(format!("instance {i}")))
                    })
                    .collect();
            }
        }
        each_in_order(ids, 16, |id| self.inspect(id, profile)).await
    }

    /// EC2 instances of one region are started, and stopped, with one call
    /// each; if it fails, one by one.
    async fn set_capacity_many(
        &self,
        items: &[(ResourceId, Capacity)],
        profile: Option<&str>,
    ) -> Vec<Result<(), CloudError>> {
        if let Some((c, ids)) = self.ec2_group(items, profile).await {
            let ok = if items[0].1 == (Capacity::Ec2 { running: true }) {
                c.ec2
                    .start_instances()
                    .set_instance_ids(Some(ids))
                    .send()
                    .await
                    .is_ok()
            } else {
                c.ec2
                    .stop_instances()
                    .set_instance_ids(Some(ids))
                    .send()
                    .await
                    .is_ok()
            };
            if ok {
                return all_ok(items.len());
            }
        }
        each_in_order(items, 16, |(id, capacity)| {
            self.set_capacity(id, profile, *capacity)
        })
        .await
    }

    /// EC2 instances of one region are tagged (or untagged) with one call.
    async fn set_marker_many(
        &self,
        items: &[(ResourceId, Option<Capacity>)],
        profile: Option<&str>,
    ) -> Vec<Result<(), CloudError>> {
        if let Some((c, ids)) = self.ec2_group(items, profile).await {
            let tag = aws_sdk_ec2::types::Tag::builder().key(SLEEP_TAG);
            let ok = match items[0].1 {
                Some(saved) => c
                    .ec2
                    .create_tags()
                    .set_resources(Some(ids))
                    .tags(tag.value(saved.to_tag()).build())
                    .send()
                    .await
                    .is_ok(),
                None => c
                    .ec2
                    .delete_tags()
                    .set_resources(Some(ids))
                    .tags(tag.build())
                    .send()
                    .await
                    .is_ok(),
            };
            if ok {
                return all_ok(items.len());
            }
        }
        each_in_order(items, 16, |(id, saved)| {
            self.set_marker(id, profile, *saved)
        })
        .await
    }

    fn reconfigure(&self, aws: &AwsSettings) {
        *self.config.lock().expect("aws config") = (aws.endpoint_url.clone(), aws.profile.clone());
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    async fn whoami(&self, region: &str, profile: Option<&str>) -> Result<Identity, CloudError> {
        identity(&self.clients(region, profile).await.sts).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unparsed_xml_error_body_still_gives_the_code() {
        let body = br#"<?xml version="1.0"?><ErrorResponse><Errors><Error><Code>InvalidClientTokenId</Code><Message>The security token included in the request is invalid.</Message></Error></Errors></ErrorResponse>"#;
        assert_eq!(
            xml_error(body),
            Some((
                "InvalidClientTokenId".into(),
                "The security token included in the request is invalid.".into()
            ))
        );
        assert_eq!(xml_error(b"<html>nope</html>"), None);
    }
    use aws_sdk_ecs::operation::update_service::{UpdateServiceError, UpdateServiceOutput};
    use aws_smithy_mocks::{mock, MockResponseInterceptor, Rule, RuleMode};

    fn ecs_client(rule: &Rule) -> aws_sdk_ecs::Client {
        let conf = aws_sdk_ecs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(aws_sdk_ecs::config::Credentials::new(
                "AKIDTEST", "secret", None, None, "test",
            ))
            .http_client(aws_smithy_mocks::create_mock_http_client())
            .interceptor(
                MockResponseInterceptor::new()
                    .rule_mode(RuleMode::Sequential)
                    .with_rule(rule),
            )
            .retry_config(retry_config().with_initial_backoff(Duration::from_millis(1)))
            .build();
        aws_sdk_ecs::Client::from_conf(conf)
    }

    fn service_error(code: &str) -> UpdateServiceError {
        UpdateServiceError::generic(
            aws_sdk_ecs::error::ErrorMetadata::builder()
                .code(code)
                .message("from the mock")
                .build(),
        )
    }

    #[tokio::test]
    async fn throttling_is_retried_until_it_succeeds() {
        let rule = mock!(aws_sdk_ecs::Client::update_service)
            .sequence()
            .http_status(
                400,
                Some(r#"{"__type":"ThrottlingException","message":"slow down"}"#.into()),
            )
            .times(2)
            .output(|| UpdateServiceOutput::builder().build())
            .build();
        let client = ecs_client(&rule);
        ecs_set_desired(&client, "c", "s", 3).await.unwrap();
        assert_eq!(rule.num_calls(), 3);
    }

    #[tokio::test]
    async fn access_denied_is_surfaced_with_its_code_and_not_retried() {
        let rule = mock!(aws_sdk_ecs::Client::update_service)
            .then_error(|| service_error("AccessDeniedException"));
        let client = ecs_client(&rule);
        let err = ecs_set_desired(&client, "c", "s", 3).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::AccessDenied);
        assert_eq!(err.code.as_deref(), Some("AccessDeniedException"));
        assert!(
            err.to_string().starts_with("AccessDeniedException: "),
            "{err}"
        );
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn persistent_throttling_gives_up_with_the_throttling_code() {
        let rule = mock!(aws_sdk_ecs::Client::update_service)
            .sequence()
            .http_status(
                400,
                Some(r#"{"__type":"ThrottlingException","message":"slow down"}"#.into()),
            )
            .times(10)
            .build();
        let client = ecs_client(&rule);
        let err = ecs_set_desired(&client, "c", "s", 3).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Throttled, "{err:?}");
        assert_eq!(rule.num_calls(), 5);
    }
}
