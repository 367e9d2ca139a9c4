//! What generic code knows about a kind of resource: its [`Spec`], pure data
//! and functions (no SDK, no I/O). Each kind's folder fills one in.

use serde_json::Value;
use std::time::Duration;

/// One name field of a resource id.
#[derive(Debug)]
pub struct NameField {
    /// Its key in services.yaml, JSON commands and state.json (`cluster_name`).
    pub key: &'static str,
    /// Its label in text commands (`cluster`).
    pub label: &'static str,
}

/// What a kind's capacity is made of (see [`crate::core::model::resource::Level`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Running or stopped.
    Running,
    /// A desired count.
    Desired,
    /// min/desired/max of a group of instances; sleep keeps max.
    Scaling,
}

/// Everything generic code knows about a kind.
#[derive(Debug)]
pub struct Spec {
    /// `EC2`: the `type` of ids and capacities in JSON and state.json, the
    /// `service_type` of JSON commands, the suffix of text commands.
    pub label: &'static str,
    /// Its services.yaml section (`ec2_instances`).
    pub section: &'static str,
    /// What one resource is called (`instance`).
    pub noun: &'static str,
    /// The fields naming a resource within its region, in order.
    pub names: &'static [NameField],
    /// Checks of the names beyond the generic ones (`crate::core::config::registry::check_name`).
    pub check: fn(&[String]) -> Result<(), String>,
    /// What its capacity is made of.
    pub shape: Shape,
    /// Whether its services.yaml entries take `desired_size` (for `START`
    /// without a saved capacity).
    pub desired_size: bool,
    /// Whether its services.yaml entries take `hibernate: true` (and
    /// `aws.ec2_hibernate` applies to it).
    pub hibernates: bool,
    /// Whether its services.yaml entries take `ssh_host` and `ssh_address`
    /// (`cloudnap ssh-proxy` connects to it).
    pub ssh: bool,
    /// What `LIST_<label>` answers, for `HELP` and docs/protocol.md.
    pub list: &'static str,
    /// The reply key of `LIST_<label>` (`instances`, `clusters`).
    pub list_key: &'static str,
    /// The label of `START_<label>`'s optional count, if it takes one.
    pub start_count: Option<&'static str>,
    /// What `START_<label>` does.
    pub start: &'static str,
    /// What `STOP_<label>` does.
    pub stop: &'static str,
    /// What `SCALE_<label>` does, if it exists.
    pub scale: Option<&'static str>,
    /// Whether `REGISTER_*` looks at the resource first: it may be part of
    /// a group that must be registered instead.
    pub checked_on_register: bool,
    /// After how many seconds stopped AWS starts it again by itself (RDS:
    /// 7 days), if it does.
    pub restarts_after: Option<u64>,
    /// CloudWatch dimensions of its metrics, each with the index of the name
    /// field holding its value (none: never busy by metrics).
    pub dimensions: &'static [(&'static str, usize)],
    /// How its resources are found by their `cloudnap:managed=true` tag, if
    /// they can be.
    pub tagged: Option<Tagged>,
    /// The API call that puts a resource (named by its name fields) to
    /// sleep as cloudnap's own sleep does, for the AWS-side deadline (see
    /// [`crate::core::policy::deadline`]).
    pub sleep_call: fn(&[String]) -> SleepCall,
    /// Which of its resources AWS answers together in one call.
    pub batch: Batch,
    /// Its busy rules: CloudWatch metrics compared with a threshold under
    /// `busy` in settings.json (see `crate::core::policy::busy`).
    pub busy: &'static [Metric],
    /// `LIST_*` rows grouped into `{cluster_name, region, <key>: [rows]}`
    /// per cluster, under this key (`services`), instead of a flat list.
    pub list_group: Option<&'static str>,
    /// Whether `LIST_ALL_SERVICES` lists it (the original protocol's three).
    pub list_all: bool,
    /// Whether its resources share a cluster's control plane that is priced
    /// once per cluster (EKS), not per resource.
    pub control_plane: bool,
    /// After how many seconds a woken resource still not usable is named
    /// in a notification (see [`crate::core::policy::readiness`]).
    pub ready_within: u64,
    /// Whether its services.yaml entries take `ready_port: N` (a TCP port
    /// that must answer on its address for it to count as ready).
    pub ready_port: bool,
    /// How long one usually takes from its start to being usable, until
    /// cloudnap has measured it (the pre-wake starts it that far ahead).
    pub ready_in: Duration,
}

/// Which resources of a kind go to its adapter together (of one region
/// and profile): it answers them with as few calls as its API allows (one
/// describe, stop or tag call for all where the API takes many, else one
/// call each, all at once), so each phase of a sleep or wake is one round
/// trip deep whatever the number of resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    /// All of a region's.
    Region,
    /// Those sharing the name field at this index (ECS services of a cluster).
    Field(usize),
}

impl Batch {
    /// What resources named `names` are batched by: equal keys (of one
    /// region and profile) go together.
    pub fn key(self, names: &[String]) -> String {
        match self {
            Batch::Region => String::new(),
            Batch::Field(i) => field(names, i).to_string(),
        }
    }
}

/// How a busy metric's datapoints are reduced to one figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduce {
    /// The mean of the `Average` datapoints (a percentage).
    Mean,
    /// The `Sum` datapoints of every metric added up, per second of the
    /// window, in kB (1000 bytes).
    KilobytesPerSecond,
}

impl Reduce {
    /// The CloudWatch statistic read for it.
    pub fn stat(self) -> &'static str {
        match self {
            Reduce::Mean => "Average",
            Reduce::KilobytesPerSecond => "Sum",
        }
    }
}

/// One busy rule of a kind: a CloudWatch metric (or the sum of several)
/// compared with a threshold under `busy` in settings.json.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metric {
    /// Its key under `busy` in settings.json.
    pub setting: &'static str,
    /// The threshold when settings.json does not set one.
    pub default: f64,
    /// The largest threshold allowed.
    pub max: f64,
    /// What the report calls it: `CPU`, `network`.
    pub label: &'static str,
    pub unit: &'static str,
    pub namespace: &'static str,
    pub metrics: &'static [&'static str],
    pub reduce: Reduce,
}

/// The API call a deadline schedule's universal target makes: `service:action`
/// (as in `arn:aws:scheduler:::aws-sdk:ec2:stopInstances`) and its JSON input.
#[derive(Debug, Clone, PartialEq)]
pub struct SleepCall {
    /// `ec2:stopInstances`.
    pub action: &'static str,
    /// The call's parameters, named as in the service's API reference.
    pub input: Value,
}

impl SleepCall {
    /// The universal target ARN of the call.
    pub fn arn(&self) -> String {
        format!("arn:aws:scheduler:::aws-sdk:{}", self.action)
    }
}

/// How resources of a kind are found by tag (Resource Groups Tagging API)
/// and named from their ARN.
#[derive(Debug)]
pub struct Tagged {
    /// The API's resource type filter, `service:resource` (`ec2:instance`):
    /// the ARN's service and the start of its resource part.
    pub resource_type: &'static str,
    /// What precedes the name fields, `/`-separated, in the ARN's resource
    /// part (`instance/` in `instance/i-0abc`); parts after them (a
    /// nodegroup's id) are ignored.
    pub names_after: &'static str,
    /// The ARN's service and resource parts, `{}` standing for the name
    /// fields joined by `/` (`ec2:instance/{}`), `*` for parts cloudnap
    /// does not know: what IAM policies name.
    pub arn: &'static str,
}

/// The name field at `index` (empty if there is none).
pub fn field(names: &[String], index: usize) -> &str {
    names.get(index).map_or("", String::as_str)
}

/// No checks beyond the generic ones.
pub fn no_check(_: &[String]) -> Result<(), String> {
    Ok(())
}
