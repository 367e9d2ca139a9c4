//! Cloud control: a small trait over the operations cloudnap needs, returning
//! domain types, and its AWS implementation.

pub mod aws;
#[cfg(test)]
pub mod fake;

use crate::core::model::resource::{Capacity, Facts, Kind, Observed, ResourceId};
use crate::core::policy::busy::{Datapoint, MetricQuery};
use crate::core::policy::deadline::Schedule;
use crate::core::policy::holds::Scope;
use crate::core::policy::readiness::Probe;
use crate::core::policy::retry::Cause;
use crate::core::policy::team::{Lock, Presence, State, Written};
use futures::future::BoxFuture;
use std::future::Future;
use std::time::{Duration, SystemTime};

/// What kind of failure a cloud call had, so callers can branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The resource (or its cluster) does not exist.
    NotFound,
    /// The credentials are not allowed to do this.
    AccessDenied,
    /// Still throttled after retries.
    Throttled,
    /// Missing, invalid or expired credentials.
    Credentials,
    /// The resource is in a state that does not allow the call.
    InvalidState,
    /// Could not reach AWS (connection, DNS, timeout).
    Network,
    /// AWS answered with a server error (5xx) after the SDK's retries.
    Unavailable,
    /// An EC2 instance that cannot hibernate (not configured for it, or
    /// not able to right now): it can still be stopped.
    CannotHibernate,
    /// AWS does not support the call for this resource (a Spot or an
    /// instance-store instance cannot be stopped): trying again changes
    /// nothing.
    Unsupported,
    /// Anything else.
    Other,
}

/// A failed cloud call. Keeps the AWS error code (e.g. `AccessDeniedException`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", code.as_deref().map(|c| format!("{c}: ")).unwrap_or_default())]
pub struct CloudError {
    pub kind: ErrorKind,
    /// The AWS error code, when AWS answered with one.
    pub code: Option<String>,
    pub message: String,
}

impl CloudError {
    /// An error with no AWS error code.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        CloudError {
            kind,
            code: None,
            message: message.into(),
        }
    }

    /// Classifies an AWS error code.
    pub fn from_code(code: Option<&str>, message: impl Into<String>) -> Self {
        let kind = match code.unwrap_or("") {
            c if c.contains("NotFound")
                || c == "InvalidInstanceID.Malformed"
                || c == "NoSuchEntity" =>
            {
                ErrorKind::NotFound
            }
            c if c.contains("AccessDenied") || c == "UnauthorizedOperation" => {
                ErrorKind::AccessDenied
            }
            "Throttling"
            | "ThrottlingException"
            | "RequestLimitExceeded"
            | "TooManyRequestsException"
            | "RequestThrottled"
            | "ProvisionedThroughputExceededException" => ErrorKind::Throttled,
            "InvalidClientTokenId"
            | "UnrecognizedClientException"
            | "ExpiredToken"
            | "ExpiredTokenException"
            | "AuthFailure"
            | "SignatureDoesNotMatch"
            | "InvalidSignatureException" => ErrorKind::Credentials,
            "IncorrectInstanceState"
            | "ResourceInUseException"
            | "InvalidDBInstanceState"
            | "InvalidDBInstanceStateFault"
            | "InvalidDBClusterStateFault" => ErrorKind::InvalidState,
            "InternalError"
            | "InternalFailure"
            | "InternalServerError"
            | "InternalServerException"
            | "ServerException"
            | "ServiceUnavailable"
            | "ServiceUnavailableException"
            | "Unavailable" => ErrorKind::Unavailable,
            "UnsupportedHibernationConfiguration" => ErrorKind::CannotHibernate,
            "UnsupportedOperation" => ErrorKind::Unsupported,
            _ => ErrorKind::Other,
        };
        CloudError {
            kind,
            code: code.map(String::from),
            message: message.into(),
        }
    }

    /// Why the call failed, if the failure passes by itself (network
    /// unreachable, DNS, timeout, throttling, an AWS server error) so the
    /// call is worth trying again later; `None` for a permanent error
    /// (access denied, not found, unsupported, bad credentials, ...).
    pub fn transient(&self) -> Option<Cause> {
        let text = self.message.to_ascii_lowercase();
        match self.kind {
            ErrorKind::Network if text.contains("dns") || text.contains("lookup") => {
                Some(Cause::Dns)
            }
            ErrorKind::Network if text.contains("timeout") || text.contains("timed out") => {
                Some(Cause::Timeout)
            }
            ErrorKind::Network => Some(Cause::Network),
            ErrorKind::Throttled => Some(Cause::Throttled),
            ErrorKind::Unavailable => Some(Cause::Unavailable),
            _ => None,
        }
    }

    /// Whether AWS answered that it did nothing (denied, throttled, not
    /// found, not in a state for it, ...): `false` when the call may have
    /// gone through (no answer, a server error, an unknown error).
    pub fn refused(&self) -> bool {
        !matches!(
            self.kind,
            ErrorKind::Network | ErrorKind::Unavailable | ErrorKind::Other
        )
    }

    /// Why a wake failed, for the retry (see [`crate::core::policy::retry`]):
    /// `None` only when the resource no longer exists, which ends the
    /// attempt for it.
    pub fn cause(&self) -> Option<Cause> {
        let expired = || {
            let text = self.message.to_ascii_lowercase();
            text.contains("expired") || self.code.as_deref().is_some_and(|c| c.contains("Expired"))
        };
        match self.kind {
            ErrorKind::NotFound => None,
            ErrorKind::Credentials if expired() => Some(Cause::CredentialsExpired),
            ErrorKind::Credentials => Some(Cause::Credentials),
            ErrorKind::AccessDenied => Some(Cause::AccessDenied),
            _ => Some(self.transient().unwrap_or(Cause::Aws)),
        }
    }
}

/// Who the credentials belong to (STS `GetCallerIdentity`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub account: String,
    pub arn: String,
}

/// Operations on the cloud. `profile` selects a named credentials profile
/// (`None`: the configured default).
pub trait CloudControl: Send + Sync + 'static {
    /// Current capacity, protection and sleep tag of a resource.
    fn inspect(
        &self,
        id: &ResourceId,
        profile: Option<&str>,
    ) -> impl Future<Output = Result<Observed, CloudError>> + Send;

    /// Starts/stops an instance, sets a service's desired count, or a
    /// nodegroup's min/desired/max.
    fn set_capacity(
        &self,
        id: &ResourceId,
        profile: Option<&str>,
        capacity: Capacity,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// Writes (`Some`) or removes (`None`) the `cloudnap:sleeping` tag.
    fn set_sleep_tag(
        &self,
        id: &ResourceId,
        profile: Option<&str>,
        saved: Option<Capacity>,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// [`inspect`](Self::inspect) for many resources of one region and
    /// profile; an adapter may answer them with fewer calls. Results keep
    /// the order of `ids`.
    fn inspect_many(
        &self,
        ids: &[ResourceId],
        profile: Option<&str>,
    ) -> impl Future<Output = Vec<Result<Observed, CloudError>>> + Send {
        each_in_order(ids, 1, move |id| self.inspect(id, profile))
    }

    /// [`set_capacity`](Self::set_capacity) for many resources of one region
    /// and profile, in order.
    fn set_capacity_many(
        &self,
        items: &[(ResourceId, Capacity)],
        profile: Option<&str>,
    ) -> impl Future<Output = Vec<Result<(), CloudError>>> + Send {
        each_in_order(items, 1, move |(id, capacity)| {
            self.set_capacity(id, profile, *capacity)
        })
    }

    /// [`set_sleep_tag`](Self::set_sleep_tag) for many resources of one region and
    /// profile, in order.
    fn set_sleep_tags(
        &self,
        items: &[(ResourceId, Option<Capacity>)],
        profile: Option<&str>,
    ) -> impl Future<Output = Vec<Result<(), CloudError>>> + Send {
        each_in_order(items, 1, move |(id, saved)| {
            self.set_sleep_tag(id, profile, *saved)
        })
    }

    /// Whether each resource (of one region and profile; with its
    /// `ready_port`) is usable now, by its kind's rule (see
    /// [`crate::core::policy::readiness`]); results keep the order of
    /// `items`. By default: up by [`Self::inspect`].
    fn ready_many(
        &self,
        items: &[(ResourceId, Option<u16>)],
        profile: Option<&str>,
    ) -> impl Future<Output = Vec<Result<Probe, CloudError>>> + Send {
        each_in_order(items, 1, move |(id, _)| async move {
            let seen = self.inspect(id, profile).await?;
            Ok(Probe {
                ready: seen.capacity.is_up(),
                detail: seen.status,
            })
        })
    }

    /// What each resource (of one region and profile) is made of, for
    /// pricing: instance type and OS, attached EBS volumes and Elastic IPs
    /// (EC2), launch type and task size (ECS), instance types (EKS). EC2
    /// instances of one region take one describe call each for instances
    /// and volumes. Results keep the order of `ids`.
    fn facts_many(
        &self,
        ids: &[ResourceId],
        profile: Option<&str>,
    ) -> impl Future<Output = Vec<Result<Facts, CloudError>>> + Send;

    /// The datapoints of each query (in order) from `start` to `end`, at
    /// [`crate::core::policy::busy::PERIOD_SECONDS`], in one region: one
    /// `GetMetricData` call per [`crate::core::policy::busy::MAX_QUERIES_PER_CALL`]
    /// queries (plus one per further page of results).
    fn metric_data(
        &self,
        region: &str,
        profile: Option<&str>,
        queries: &[MetricQuery],
        range: (SystemTime, SystemTime),
    ) -> impl Future<Output = Result<Vec<Vec<Datapoint>>, CloudError>> + Send;

    /// Every resource of `kind` in `region`, as `LIST_*` rows (see
    /// [`crate::kinds::listing::Listing`]).
    fn list(
        &self,
        kind: Kind,
        region: &str,
        profile: Option<&str>,
    ) -> impl Future<Output = Result<Vec<serde_json::Value>, CloudError>> + Send;

    /// The resources of a region tagged `cloudnap:managed=true`, of the kinds
    /// that can be found by tag, each with whether it is tagged
    /// `cloudnap:shared=true` too (a team resource).
    fn discover(
        &self,
        region: &str,
        profile: Option<&str>,
    ) -> impl Future<Output = Result<Vec<(ResourceId, bool)>, CloudError>> + Send;

    /// Creates or moves the deadline `schedules` (see
    /// [`crate::core::policy::deadline`]) of one region and profile, run as
    /// `role_arn`: one call each (the Scheduler API has no batch call).
    /// Results keep the order of `schedules`.
    fn put_schedules(
        &self,
        region: &str,
        profile: Option<&str>,
        schedules: &[Schedule],
        role_arn: &str,
    ) -> impl Future<Output = Vec<Result<(), CloudError>>> + Send;

    /// Deletes the deadline schedules `names` of one region and profile (one
    /// already gone is fine); results keep the order of `names`.
    fn delete_schedules(
        &self,
        region: &str,
        profile: Option<&str>,
        names: &[String],
    ) -> impl Future<Output = Vec<Result<(), CloudError>>> + Send;

    /// The names of the deadline schedules of one region and profile that
    /// start with `prefix`.
    fn list_schedules(
        &self,
        region: &str,
        profile: Option<&str>,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<String>, CloudError>> + Send;

    /// Uses changed AWS settings (default profile, endpoint) for later
    /// calls, with freshly loaded credentials.
    fn reconfigure(&self, _aws: &crate::core::config::settings::AwsSettings) {}

    /// Whether AWS in `region` answers a TCP connection now (no AWS call):
    /// a cheap sign that the network is back, to try a failed sleep or wake
    /// again at once.
    fn reachable(&self, _region: &str) -> impl Future<Output = bool> + Send {
        async { true }
    }

    /// Checks the credentials.
    fn whoami(
        &self,
        region: &str,
        profile: Option<&str>,
    ) -> impl Future<Output = Result<Identity, CloudError>> + Send;
}

/// The team table of team mode (see [`crate::core::policy::team`] and
/// docs/team.md) as the app uses it: DynamoDB
/// ([`aws::dynamodb::TeamTable`]), or a fake in tests. Object safe (boxed
/// futures): the app holds one whatever it is.
pub trait TeamTable: Send + Sync {
    /// The table's time now (see [`crate::core::policy::team::TableClock`]).
    fn now(&self) -> SystemTime;

    /// Writes `member`'s presence item (a lease of `lease` from now, in
    /// table time); returns it as written.
    fn put_presence<'a>(
        &'a self,
        member: &'a str,
        state: State,
        since: SystemTime,
        holds: &'a [Scope],
        lease: Duration,
    ) -> BoxFuture<'a, Result<Presence, CloudError>>;

    /// Every presence item (a consistent read).
    fn presence(&self) -> BoxFuture<'_, Result<Vec<Presence>, CloudError>>;

    /// The lock item of `resource` (a consistent read); version 0 if none.
    fn lock<'a>(&'a self, resource: &'a ResourceId) -> BoxFuture<'a, Result<Lock, CloudError>>;

    /// Writes `lock` if the item is still at the version before it.
    fn put_lock<'a>(&'a self, lock: &'a Lock) -> BoxFuture<'a, Result<Written, CloudError>>;
}

/// The indexes of `items` grouped by `key`, the groups in the order of their
/// first item.
pub(crate) fn group_by<I, K: PartialEq>(
    items: &[I],
    key: impl Fn(&I) -> K,
) -> Vec<(K, Vec<usize>)> {
    let mut groups: Vec<(K, Vec<usize>)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let k = key(item);
        match groups.iter_mut().find(|(g, _)| *g == k) {
            Some((_, members)) => members.push(i),
            None => groups.push((k, vec![i])),
        }
    }
    groups
}

/// One result per item of `len`, from each group's answers (in the order of
/// its members); an item its group did not answer gets an error.
pub(crate) fn in_item_order<K, T>(
    len: usize,
    groups: &[(K, Vec<usize>)],
    answers: Vec<Vec<Result<T, CloudError>>>,
) -> Vec<Result<T, CloudError>> {
    let mut out: Vec<Option<Result<T, CloudError>>> = (0..len).map(|_| None).collect();
    for ((_, members), answer) in groups.iter().zip(answers) {
        for (&i, result) in members.iter().zip(answer) {
            out[i] = Some(result);
        }
    }
    out.into_iter()
        .map(|r| r.unwrap_or_else(|| Err(CloudError::new(ErrorKind::Other, "no answer"))))
        .collect()
}

/// `call` for every item, `at_once` at a time; results keep the order of
/// `items`.
pub(crate) async fn each_in_order<'a, I, T, F>(
    items: &'a [I],
    at_once: usize,
    call: impl Fn(&'a I) -> F,
) -> Vec<T>
where
    F: Future<Output = T>,
{
    let mut out = Vec::with_capacity(items.len());
    for chunk in items.chunks(at_once) {
        out.extend(futures::future::join_all(chunk.iter().map(&call)).await);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_failures_are_told_from_permanent_ones() {
        let net = |m: &str| CloudError::new(ErrorKind::Network, m).transient();
        assert_eq!(
            net("dispatch failure: io error: Connection refused (os error 111)"),
            Some(Cause::Network)
        );
        assert_eq!(net("dns error: failed to lookup address"), Some(Cause::Dns));
        assert_eq!(
            net("operation timeout (all attempts) occurred"),
            Some(Cause::Timeout)
        );
        let coded = |c: &str| CloudError::from_code(Some(c), "m").transient();
        assert_eq!(coded("ThrottlingException"), Some(Cause::Throttled));
        assert_eq!(coded("RequestLimitExceeded"), Some(Cause::Throttled));
        assert_eq!(coded("ServiceUnavailable"), Some(Cause::Unavailable));
        assert_eq!(coded("InternalError"), Some(Cause::Unavailable));
        for permanent in [
            "AccessDeniedException",
            "UnauthorizedOperation",
            "InvalidInstanceID.NotFound",
            "ServiceNotFoundException",
            "UnsupportedOperation",
            "UnsupportedHibernationConfiguration",
            "ExpiredToken",
            "IncorrectInstanceState",
            "ValidationException",
        ] {
            assert_eq!(coded(permanent), None, "{permanent}");
        }
        assert_eq!(
            CloudError::new(ErrorKind::Unavailable, "HTTP 503").transient(),
            Some(Cause::Unavailable)
        );
        assert_eq!(
            CloudError::new(ErrorKind::Credentials, "no credentials").transient(),
            None
        );
    }

    #[test]
    fn only_a_clear_no_from_aws_is_a_refusal() {
        let refused = |code: &str| CloudError::from_code(Some(code), "x").refused();
        assert!(refused("AccessDeniedException"));
        assert!(refused("ThrottlingException"));
        assert!(refused("IncorrectInstanceState"));
        assert!(
            !refused("ServiceUnavailable"),
            "a 5xx may have gone through"
        );
        assert!(!refused("SomethingNew"), "unknown: may have gone through");
        assert!(!CloudError::new(ErrorKind::Network, "timed out").refused());
    }

    #[test]
    fn every_failed_wake_has_a_cause_but_a_resource_that_is_gone() {
        let coded = |c: &str| CloudError::from_code(Some(c), "m").cause();
        assert_eq!(coded("InvalidInstanceID.NotFound"), None);
        assert_eq!(coded("ServiceNotFoundException"), None);
        assert_eq!(coded("ExpiredToken"), Some(Cause::CredentialsExpired));
        assert_eq!(coded("InvalidClientTokenId"), Some(Cause::Credentials));
        assert_eq!(coded("AccessDeniedException"), Some(Cause::AccessDenied));
        assert_eq!(coded("UnauthorizedOperation"), Some(Cause::AccessDenied));
        assert_eq!(coded("ThrottlingException"), Some(Cause::Throttled));
        assert_eq!(coded("IncorrectInstanceState"), Some(Cause::Aws));
        assert_eq!(coded("ValidationException"), Some(Cause::Aws));
        // A credential process that reports an expired SSO session.
        let sso = CloudError::new(
            ErrorKind::Credentials,
            "dispatch failure: an error occurred while loading credentials: \
             Token has expired and refresh failed",
        );
        assert_eq!(sso.cause(), Some(Cause::CredentialsExpired));
        assert_eq!(
            CloudError::new(ErrorKind::Credentials, "no credentials").cause(),
            Some(Cause::Credentials)
        );
    }
}
