//! The team table (DynamoDB) of team mode: presence items and lock items
//! (see [`crate::core::policy::team`] and docs/team.md).
//!
//! One table, key `pk` (partition) + `sk` (sort), both strings:
//! presence items under `pk = "presence"` (`sk` = member id), lock items
//! under `pk = "lock"` (`sk` = the resource, as displayed). Every read is
//! consistent; lock writes are conditional on the version before them.
//! The table's clock is learnt from the `Date` header of its answers
//! ([`TableClock`]).

use super::clients;
use super::error::aws_err;
use crate::cloud::{CloudError, ErrorKind};
use crate::core::config::settings::{AwsSettings, TeamSettings};
use crate::core::model::resource::{Capacity, ResourceId};
use crate::core::policy::holds::Scope;
pub use crate::core::policy::team::Written;
use crate::core::policy::team::{Lock, Phase, Presence, State, TableClock};
use aws_sdk_dynamodb::config::interceptors::BeforeDeserializationInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::primitives::{DateTime, DateTimeFormat};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
};
use aws_sdk_dynamodb::Client;
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// The partition of presence items.
const PRESENCE: &str = "presence";
/// The partition of lock items.
const LOCK: &str = "lock";
/// The TTL attribute (Unix seconds): DynamoDB deletes the presence item of
/// a member gone for a day.
const TTL: &str = "ttl";
/// How long after its lease a presence item is kept (for "all away since").
const KEEP: Duration = Duration::from_secs(86_400);

/// Why `team init` cannot use the table.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// A call to DynamoDB failed.
    #[error(transparent)]
    Cloud(#[from] CloudError),
    /// A table of that name exists with other keys.
    #[error(
        "table {table} has the key schema {found}; cloudnap needs pk (string, partition key) \
         and sk (string, sort key): choose another team.table"
    )]
    WrongSchema { table: String, found: String },
}

/// What `team init` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Init {
    /// The table was created (on-demand billing, TTL on `ttl`).
    Created,
    /// The table was there with the right keys (its TTL turned on if it
    /// was off).
    Existed,
}

/// The local clock (the system clock, or a skewed one in tests).
pub type LocalClock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Learns the table's clock from the `Date` header of every answer.
#[derive(Clone)]
struct DateWatch {
    clock: Arc<Mutex<TableClock>>,
    local: LocalClock,
}

impl std::fmt::Debug for DateWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DateWatch")
    }
}

impl Intercept for DateWatch {
    fn name(&self) -> &'static str {
        "DateWatch"
    }

    fn read_before_deserialization(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let date = context.response().headers().get("date");
        let date = date.and_then(|d| DateTime::from_str(d, DateTimeFormat::HttpDate).ok());
        if let Some(date) = date.and_then(|d| SystemTime::try_from(d).ok()) {
            let local = (self.local)();
            self.clock.lock().expect("table clock").learn(date, local);
        }
        Ok(())
    }
}

/// The team table of one team.
pub struct TeamTable {
    client: Client,
    table: String,
    watch: DateWatch,
}

impl TeamTable {
    /// The table of `team`, reached with the AWS settings' profile and
    /// endpoint override.
    pub async fn connect(team: &TeamSettings, aws: &AwsSettings) -> TeamTable {
        let conf = clients::loader(
            &team.region,
            aws.profile.as_deref(),
            aws.endpoint_url.as_deref(),
            Duration::from_secs(20),
        )
        .load()
        .await;
        TeamTable::from_conf(&conf, &team.table)
    }

    /// The table `table` reached with the SDK configuration `conf`.
    pub fn from_conf(conf: &aws_config::SdkConfig, table: &str) -> TeamTable {
        TeamTable::with_local_clock(conf, table, Arc::new(SystemTime::now))
    }

    /// As [`TeamTable::from_conf`], with `local` as this machine's clock
    /// (a clock that is off, in tests).
    pub fn with_local_clock(
        conf: &aws_config::SdkConfig,
        table: &str,
        local: LocalClock,
    ) -> TeamTable {
        let watch = DateWatch {
            clock: Arc::new(Mutex::new(TableClock::default())),
            local,
        };
        let conf = aws_sdk_dynamodb::config::Builder::from(conf)
            .interceptor(watch.clone())
            .build();
        TeamTable {
            client: Client::from_conf(conf),
            table: table.to_string(),
            watch,
        }
    }

    /// The table's time now, as far as its answers tell (the local clock
    /// before the first answer).
    pub fn now(&self) -> SystemTime {
        let local = (self.watch.local)();
        self.watch.clock.lock().expect("table clock").now(local)
    }

    /// `cloudnap team init`: creates the table if it is missing (on-demand
    /// billing, TTL on the `ttl` attribute) and waits until it is active;
    /// checks its key schema and TTL if it exists.
    pub async fn init(&self) -> Result<Init, InitError> {
        let described = self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map_err(aws_err);
        let outcome = match described {
            Ok(out) => {
                let keys = out.table().map(|t| t.key_schema()).unwrap_or_default();
                let attrs = out
                    .table()
                    .map(|t| t.attribute_definitions())
                    .unwrap_or_default();
                check_schema(&self.table, keys, attrs)?;
                Init::Existed
            }
            Err(e) if e.kind == ErrorKind::NotFound => {
                self.create().await?;
                Init::Created
            }
            Err(e) => return Err(e.into()),
        };
        self.wait_active().await?;
        self.ensure_ttl().await?;
        Ok(outcome)
    }

    async fn create(&self) -> Result<(), CloudError> {
        let key = |name: &str, kind| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
        };
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
        };
        self.client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key("pk", KeyType::Hash).map_err(built)?)
            .key_schema(key("sk", KeyType::Range).map_err(built)?)
            .attribute_definitions(attr("pk").map_err(built)?)
            .attribute_definitions(attr("sk").map_err(built)?)
            .send()
            .await
            .map_err(aws_err)?;
        Ok(())
    }

    /// Waits (up to 2 minutes) for the table to be active.
    async fn wait_active(&self) -> Result<(), CloudError> {
        for _ in 0..120 {
            let out = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(aws_err)?;
            if out.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Err(CloudError::new(
            ErrorKind::Unavailable,
            format!("table {} did not become active in 2 minutes", self.table),
        ))
    }

    /// Turns TTL on for the `ttl` attribute unless it is on (or turning on).
    async fn ensure_ttl(&self) -> Result<(), CloudError> {
        let out = self
            .client
            .describe_time_to_live()
            .table_name(&self.table)
            .send()
            .await
            .map_err(aws_err)?;
        let ttl = out.time_to_live_description();
        let status = ttl.and_then(|t| t.time_to_live_status());
        let on = matches!(
            status,
            Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
        );
        if on && ttl.and_then(|t| t.attribute_name()) == Some(TTL) {
            return Ok(());
        }
        let spec = TimeToLiveSpecification::builder()
            .attribute_name(TTL)
            .enabled(true)
            .build()
            .map_err(built)?;
        self.client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(spec)
            .send()
            .await
            .map_err(aws_err)?;
        Ok(())
    }

    /// Writes `member`'s presence item (idempotent): `state` since
    /// `since`, holding `holds`, its lease ending `lease` from now in table
    /// time. Learns the table's clock first if no answer has told it yet.
    /// Returns the item as written.
    pub async fn put_presence(
        &self,
        member: &str,
        state: State,
        since: SystemTime,
        holds: &[Scope],
        lease: Duration,
    ) -> Result<Presence, CloudError> {
        if !self.watch.clock.lock().expect("table clock").known() {
            self.presence().await?;
        }
        let p = Presence {
            member: member.to_string(),
            state,
            since,
            expires: self.now() + lease,
            holds: holds.to_vec(),
        };
        let holds = p.holds.iter().map(|s| AttributeValue::S(scope_text(s)));
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(PRESENCE))
            .item("sk", s(&p.member))
            .item("state", s(state_text(p.state)))
            .item("since_ms", n(ms(p.since)))
            .item("expires_ms", n(ms(p.expires)))
            .item(TTL, n((ms(p.expires) / 1000) + KEEP.as_secs()))
            .item("holds", AttributeValue::L(holds.collect()))
            .send()
            .await
            .map_err(aws_err)?;
        Ok(p)
    }

    /// Every presence item (a consistent read).
    pub async fn presence(&self) -> Result<Vec<Presence>, CloudError> {
        self.query(PRESENCE)
            .await?
            .iter()
            .map(|item| presence_of(item).ok_or_else(|| malformed(item)))
            .collect()
    }

    /// The lock item of `resource` (a consistent read); version 0 when
    /// there is none.
    pub async fn lock(&self, resource: &ResourceId) -> Result<Lock, CloudError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(LOCK))
            .key("sk", s(&resource.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(aws_err)?;
        match out.item() {
            None => Ok(Lock::none(resource.clone())),
            Some(item) => lock_of(item).ok_or_else(|| malformed(item)),
        }
    }

    /// Every lock item (a consistent read), for `cloudnap team status`.
    pub async fn locks(&self) -> Result<Vec<Lock>, CloudError> {
        self.query(LOCK)
            .await?
            .iter()
            .map(|item| lock_of(item).ok_or_else(|| malformed(item)))
            .collect()
    }

    /// Writes `lock` if the item is still at the version before it (absent
    /// for version 1): taking, releasing, saving a capacity, asleep →
    /// waking. A refused write is [`Written::Conflict`] with the lock as it
    /// is, unless it is `lock` itself (an SDK retry of a write that went
    /// through), which is [`Written::Done`].
    pub async fn put_lock(&self, lock: &Lock) -> Result<Written, CloudError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(LOCK))
            .item("sk", s(&lock.resource.to_string()))
            .item("resource", s(&json(&lock.resource)))
            .item("version", n(lock.version))
            .item("phase", s(lock.phase.as_str()))
            .item("owner", s(&lock.owner))
            .item("updated_ms", n(ms(lock.updated)));
        if let Some(saved) = &lock.saved {
            put = put.item("saved", s(&json(saved)));
        }
        put = match lock.version {
            0 => {
                return Err(CloudError::new(
                    ErrorKind::Other,
                    "a lock item is written from version 1 on",
                ))
            }
            1 => put.condition_expression("attribute_not_exists(pk)"),
            v => put
                .condition_expression("version = :before")
                .expression_attribute_values(":before", n(v - 1)),
        };
        match put.send().await {
            Ok(_) => Ok(Written::Done),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                let now = self.lock(&lock.resource).await?;
                // One write per version succeeds: this one if it is ours.
                let ours = (now.version, &now.owner, now.phase, now.saved)
                    == (lock.version, &lock.owner, lock.phase, lock.saved);
                Ok(if ours {
                    Written::Done
                } else {
                    Written::Conflict(now)
                })
            }
            Err(e) => Err(aws_err(e)),
        }
    }

    /// Every item of partition `pk`, read consistently.
    async fn query(&self, pk: &str) -> Result<Vec<HashMap<String, AttributeValue>>, CloudError> {
        super::all_items!(self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(pk))
            .consistent_read(true))
    }
}

impl crate::cloud::TeamTable for TeamTable {
    fn now(&self) -> SystemTime {
        TeamTable::now(self)
    }

    fn put_presence<'a>(
        &'a self,
        member: &'a str,
        state: State,
        since: SystemTime,
        holds: &'a [Scope],
        lease: Duration,
    ) -> BoxFuture<'a, Result<Presence, CloudError>> {
        Box::pin(TeamTable::put_presence(
            self, member, state, since, holds, lease,
        ))
    }

    fn presence(&self) -> BoxFuture<'_, Result<Vec<Presence>, CloudError>> {
        Box::pin(TeamTable::presence(self))
    }

    fn lock<'a>(&'a self, resource: &'a ResourceId) -> BoxFuture<'a, Result<Lock, CloudError>> {
        Box::pin(TeamTable::lock(self, resource))
    }

    fn put_lock<'a>(&'a self, lock: &'a Lock) -> BoxFuture<'a, Result<Written, CloudError>> {
        Box::pin(TeamTable::put_lock(self, lock))
    }
}

/// Checks that `keys` are `pk` (hash) and `sk` (range), both strings.
fn check_schema(
    table: &str,
    keys: &[KeySchemaElement],
    attrs: &[AttributeDefinition],
) -> Result<(), InitError> {
    let kind = |name: &str| {
        attrs
            .iter()
            .find(|a| a.attribute_name() == name)
            .map(|a| a.attribute_type().as_str())
            .unwrap_or("?")
    };
    let found: Vec<String> = keys
        .iter()
        .map(|k| {
            let name = k.attribute_name();
            format!("{name} ({}, {})", kind(name), k.key_type().as_str())
        })
        .collect();
    let found = found.join(" + ");
    if found == "pk (S, HASH) + sk (S, RANGE)" {
        Ok(())
    } else {
        Err(InitError::WrongSchema {
            table: table.to_string(),
            found,
        })
    }
}

fn built(e: aws_sdk_dynamodb::error::BuildError) -> CloudError {
    CloudError::new(ErrorKind::Other, e.to_string())
}

fn malformed(item: &HashMap<String, AttributeValue>) -> CloudError {
    let key = item.get("sk").and_then(|v| v.as_s().ok());
    CloudError::new(
        ErrorKind::Other,
        format!(
            "a team table item cloudnap cannot read: {}",
            key.map_or("(no key)", String::as_str)
        ),
    )
}

fn s(text: &str) -> AttributeValue {
    AttributeValue::S(text.to_string())
}

fn n(number: u64) -> AttributeValue {
    AttributeValue::N(number.to_string())
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).expect("a resource or capacity serializes")
}

fn state_text(state: State) -> &'static str {
    match state {
        State::Active => "active",
        State::Away => "away",
    }
}

/// A hold's scope in the table: `*` for all, else the resource's JSON.
fn scope_text(scope: &Scope) -> String {
    match scope {
        Scope::All => "*".to_string(),
        Scope::Only(id) => json(id),
    }
}

fn text<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Option<&'a str> {
    item.get(name)?.as_s().ok().map(String::as_str)
}

fn time(item: &HashMap<String, AttributeValue>, name: &str) -> Option<SystemTime> {
    let millis: u64 = item.get(name)?.as_n().ok()?.parse().ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_millis(millis))
}

fn presence_of(item: &HashMap<String, AttributeValue>) -> Option<Presence> {
    let state = match text(item, "state")? {
        "active" => State::Active,
        "away" => State::Away,
        _ => return None,
    };
    let holds = match item.get("holds") {
        None => Vec::new(),
        Some(list) => list
            .as_l()
            .ok()?
            .iter()
            .map(|v| match v.as_s().ok()?.as_str() {
                "*" => Some(Scope::All),
                id => serde_json::from_str(id).ok().map(Scope::Only),
            })
            .collect::<Option<_>>()?,
    };
    Some(Presence {
        member: text(item, "sk")?.to_string(),
        state,
        since: time(item, "since_ms")?,
        expires: time(item, "expires_ms")?,
        holds,
    })
}

fn lock_of(item: &HashMap<String, AttributeValue>) -> Option<Lock> {
    let saved: Option<Capacity> = match text(item, "saved") {
        None => None,
        Some(t) => Some(serde_json::from_str(t).ok()?),
    };
    Some(Lock {
        resource: serde_json::from_str(text(item, "resource")?).ok()?,
        version: item.get("version")?.as_n().ok()?.parse().ok()?,
        phase: Phase::from_name(text(item, "phase")?)?,
        saved,
        owner: text(item, "owner")?.to_string(),
        updated: time(item, "updated_ms")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::operation::put_item::PutItemError;
    use aws_smithy_mocks::mock;

    fn table(rules: &[&aws_smithy_mocks::Rule]) -> TeamTable {
        let client = mocked!(aws_sdk_dynamodb, rules.iter().copied());
        TeamTable {
            client,
            table: "team".into(),
            watch: DateWatch {
                clock: Arc::new(Mutex::new(TableClock::default())),
                local: Arc::new(SystemTime::now),
            },
        }
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_is_a_passing_error_not_a_conflict() {
        let throttled = mock!(aws_sdk_dynamodb::Client::put_item)
            .sequence()
            .error(|| {
                PutItemError::ProvisionedThroughputExceededException(
                    aws_sdk_dynamodb::types::error::ProvisionedThroughputExceededException::builder()
                        .message("slow down")
                        .meta(
                            aws_sdk_dynamodb::error::ErrorMetadata::builder()
                                .code("ProvisionedThroughputExceededException")
                                .build(),
                        )
                        .build(),
                )
            })
            .repeatedly()
            .build();
        let t = table(&[&throttled]);
        let lock = Lock::none(ResourceId::new(
            crate::core::model::resource::Kind::Ec2,
            ["i-1"],
            "us-east-1",
        ));
        let taken = crate::core::policy::team::step("me", &lock, &[], false, t.now());
        let crate::core::policy::team::Step::Take(taken) = taken else {
            panic!("{taken:?}")
        };
        let err = t.put_lock(&taken).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Throttled, "{err}");
        assert!(err.transient().is_some());
    }

    #[test]
    fn a_wrong_key_schema_is_named() {
        let key = |n: &str, k| {
            KeySchemaElement::builder()
                .attribute_name(n)
                .key_type(k)
                .build()
                .unwrap()
        };
        let attr = |n: &str, t| {
            AttributeDefinition::builder()
                .attribute_name(n)
                .attribute_type(t)
                .build()
                .unwrap()
        };
        let ok = [key("pk", KeyType::Hash), key("sk", KeyType::Range)];
        let strings = [
            attr("pk", ScalarAttributeType::S),
            attr("sk", ScalarAttributeType::S),
        ];
        assert!(check_schema("t", &ok, &strings).is_ok());
        let err = check_schema("t", &ok[..1], &strings).unwrap_err();
        assert_eq!(
            err.to_string(),
            "table t has the key schema pk (S, HASH); cloudnap needs pk (string, partition key) \
             and sk (string, sort key): choose another team.table"
        );
        let numbers = [
            attr("pk", ScalarAttributeType::N),
            attr("sk", ScalarAttributeType::S),
        ];
        assert!(check_schema("t", &ok, &numbers).is_err());
    }
}
