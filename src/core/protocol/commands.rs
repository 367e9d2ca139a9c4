//! The UDP command protocol: one table of text commands and one of JSON
//! envelope types, from which the parsers, `HELP`, the "unknown command"
//! message and docs/protocol.md's command lists all come; and the shape of
//! replies. Pure: no sockets, no clock (the caller passes ids and `now`).

use crate::core::config::registry::check_id;
use crate::core::config::settings::is_valid_region;
use crate::core::model::resource::{Kind, ResourceId};
use crate::core::protocol::auth::{valid_nonce, Credential, Signature};
use crate::core::protocol::reply::{CommandError, HelpRow, Reply};
use serde_json::{json, Map, Value};
use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// A parsed command.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `LIST_EC2|LIST_ECS|LIST_EKS` (`kind` set) or `LIST_ALL_SERVICES` (`None`).
    List {
        kind: Option<Kind>,
        region: Option<String>,
    },
    /// Start an instance, or scale a service/nodegroup back up: to the
    /// capacity cloudnap saved, else to `count`, else to 1 (ECS) or the
    /// entry's `desired_size` (EKS).
    Start { id: ResourceId, count: Option<i32> },
    /// Stop an instance, or scale a service/nodegroup to 0.
    Stop { id: ResourceId },
    /// Set a group's desired size (kinds with `SCALE_*`).
    Scale { id: ResourceId, desired: i32 },
    /// Add a resource to services.yaml.
    Register { id: ResourceId, description: String },
    /// Remove a resource from services.yaml.
    Unregister { id: ResourceId },
    /// List services.yaml.
    ListRegistered,
    /// Idle state, time to sleep, what is asleep.
    Status,
    /// Put registered resources to sleep now.
    SleepNow,
    /// Wake what is asleep now.
    WakeNow,
    /// Keep resources awake for this many minutes.
    Pause { minutes: f64 },
    /// End a pause (and every other hold).
    Resume,
    /// Keep resources awake: for `minutes` (if given), and while a client
    /// renews the lease of `lease_seconds` (if given); everything, or the
    /// registered resource named `only`.
    Hold {
        minutes: Option<f64>,
        reason: String,
        only: Option<String>,
        lease_seconds: Option<f64>,
    },
    /// Renew a hold's lease.
    HoldRenew { id: u64 },
    /// End a hold.
    HoldRelease { id: u64 },
    /// The active holds.
    ListHolds,
    /// The savings report over the last `days` days.
    Report { days: u32 },
    /// Counts as user activity.
    UserActivity,
    /// The command tables.
    Help,
}

impl Command {
    /// Whether the command calls AWS (these are rate-limited per source).
    pub fn calls_aws(&self) -> bool {
        matches!(
            self,
            Command::List { .. }
                | Command::Start { .. }
                | Command::Stop { .. }
                | Command::Scale { .. }
                | Command::SleepNow
                | Command::WakeNow
        )
    }
}

/// How a JSON request wrote its `timestamp`; the reply writes its own the
/// same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimestampForm {
    /// An RFC 3339 string (also when the request had none).
    #[default]
    Rfc3339,
    /// Whole Unix seconds, as the original cloudnap sent (`1621234567`).
    UnixSeconds,
    /// Unix seconds with a fraction.
    UnixFractional,
}

/// How a request arrived, which decides the reply's shape.
#[derive(Debug, Clone, PartialEq)]
pub enum Format {
    /// A `NAME:field:...` text command.
    Text { name: String },
    /// A JSON envelope with this `id` (if any) and `type`.
    Json {
        id: Option<String>,
        kind: String,
        timestamp: TimestampForm,
    },
}

/// A parsed datagram.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub format: Format,
    /// What the datagram carries to prove it may command cloudnap.
    pub credential: Credential,
    pub command: Command,
}

/// A datagram that could not be parsed; `format` says how to reply.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    pub format: Format,
    pub message: String,
}

/// Largest pause accepted: one week.
const MAX_PAUSE_MINUTES: f64 = 7.0 * 24.0 * 60.0;
/// Largest hold lease accepted.
const MAX_LEASE_SECONDS: f64 = crate::core::policy::holds::MAX_LEASE.as_secs() as f64;
/// Largest count accepted for ECS tasks or EKS nodes.
const MAX_COUNT: i64 = 10_000;

/// A field of a text command, after its name.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Field {
    /// A name field of the command's kind, with its label.
    Name(&'static str),
    Region,
    OptRegion,
    /// A required count with this label.
    Count(&'static str),
    /// An optional count with this label.
    OptCount(&'static str),
    Minutes,
    /// A hold's id.
    HoldId,
    /// The rest of the datagram, `:` included; optional.
    Description,
    /// A hold's reason: the rest of the datagram, like `Description`.
    Reason,
}

impl Field {
    fn label(self) -> &'static str {
        match self {
            Field::Name(l) => l,
            Field::Region | Field::OptRegion => "region",
            Field::Count(l) | Field::OptCount(l) => l,
            Field::Minutes => "minutes",
            Field::HoldId => "id",
            Field::Description => "description",
            Field::Reason => "reason",
        }
    }

    fn optional(self) -> bool {
        matches!(
            self,
            Field::OptRegion | Field::OptCount(_) | Field::Description | Field::Reason
        )
    }
}

/// A text command's fields, read and checked.
#[derive(Debug, Default)]
struct Args {
    /// The command's kind, if it has one.
    kind: Option<Kind>,
    id: Option<ResourceId>,
    region: Option<String>,
    count: Option<i32>,
    minutes: f64,
    hold_id: u64,
    description: String,
}

impl Args {
    fn id(&self) -> Result<ResourceId, String> {
        self.id
            .clone()
            .ok_or_else(|| "no resource given".to_string())
    }
}

/// One text command: its name, its fields and what it does.
pub struct TextCommand {
    pub name: String,
    /// The kind of resource it is about, if any.
    kind: Option<Kind>,
    fields: Vec<Field>,
    /// What the command does, for `HELP` and docs/protocol.md.
    pub does: String,
    build: fn(Args) -> Result<Command, String>,
}

impl TextCommand {
    /// A command about no kind of resource.
    fn plain(
        name: &str,
        fields: &[Field],
        does: &str,
        build: fn(Args) -> Result<Command, String>,
    ) -> Self {
        TextCommand {
            name: name.to_string(),
            kind: None,
            fields: fields.to_vec(),
            does: does.to_string(),
            build,
        }
    }

    /// `<verb>_<label>` of `kind`: its name fields and region, then `extra`.
    fn of_kind(
        verb: &str,
        kind: Kind,
        extra: &[Field],
        does: &str,
        build: fn(Args) -> Result<Command, String>,
    ) -> Self {
        let spec = kind.spec();
        let mut fields: Vec<Field> = spec.names.iter().map(|f| Name(f.label)).collect();
        fields.push(Region);
        fields.extend_from_slice(extra);
        TextCommand {
            name: format!("{verb}_{}", spec.label),
            kind: Some(kind),
            fields,
            does: does.to_string(),
            build,
        }
    }

    /// The command's form, e.g. `START_ECS:cluster:service:region[:count]`.
    pub fn form(&self) -> String {
        let mut form = self.name.clone();
        for f in &self.fields {
            if f.optional() {
                form += &format!("[:{}]", f.label());
            } else {
                form += &format!(":{}", f.label());
            }
        }
        form
    }
}

use Field::*;

/// Every text command: for each kind its `LIST_`, `START_`, `STOP_`,
/// `SCALE_`, `REGISTER_` and `UNREGISTER_` commands, then the others.
/// Names are matched case-insensitively.
pub static TEXT_COMMANDS: LazyLock<Vec<TextCommand>> = LazyLock::new(|| {
    let mut t = Vec::new();
    for kind in Kind::ALL {
        let spec = kind.spec();
        t.push(TextCommand {
            name: format!("LIST_{}", spec.label),
            kind: Some(kind),
            fields: vec![OptRegion],
            does: spec.list.to_string(),
            build: |a| {
                Ok(Command::List {
                    kind: a.kind,
                    region: a.region,
                })
            },
        });
    }
    t.push(TextCommand::plain(
        "LIST_ALL_SERVICES",
        &[OptRegion],
        "`{\"ec2\": [instances], \"ecs\": [clusters], \"eks\": [clusters]}`",
        |a| {
            Ok(Command::List {
                kind: None,
                region: a.region,
            })
        },
    ));
    for kind in Kind::ALL {
        let spec = kind.spec();
        let count: Vec<Field> = spec.start_count.into_iter().map(OptCount).collect();
        t.push(TextCommand::of_kind(
            "START",
            kind,
            &count,
            spec.start,
            |a| {
                Ok(Command::Start {
                    id: a.id()?,
                    count: a.count,
                })
            },
        ));
        t.push(TextCommand::of_kind("STOP", kind, &[], spec.stop, |a| {
            Ok(Command::Stop { id: a.id()? })
        }));
        if let Some(does) = spec.scale {
            t.push(TextCommand::of_kind(
                "SCALE",
                kind,
                &[Count("count")],
                does,
                |a| {
                    Ok(Command::Scale {
                        id: a.id()?,
                        desired: a.count.unwrap_or_default(),
                    })
                },
            ));
        }
    }
    for kind in Kind::ALL {
        let does = format!("adds the {} to services.yaml", kind.spec().noun);
        t.push(TextCommand::of_kind(
            "REGISTER",
            kind,
            &[Description],
            &does,
            |a| {
                Ok(Command::Register {
                    id: a.id()?,
                    description: a.description,
                })
            },
        ));
    }
    for kind in Kind::ALL {
        let does = format!("removes the {} from services.yaml", kind.spec().noun);
        t.push(TextCommand::of_kind("UNREGISTER", kind, &[], &does, |a| {
            Ok(Command::Unregister { id: a.id()? })
        }));
    }
    t.extend([
    TextCommand::plain(
        "LIST_REGISTERED_SERVICES",
        &[],
        "`{\"services\": [{resource, description, profile, desired_size, source}], \"config_error\": null}` (source: `services.yaml`, or `tag` for a resource found by its `cloudnap:managed=true` tag)",
        |_| Ok(Command::ListRegistered),
    ),
    TextCommand::plain(
        "STATUS",
        &[],
        "idle state, time to sleep, what is asleep (below)",
        |_| Ok(Command::Status),
    ),
    TextCommand::plain(
        "SLEEP_NOW",
        &[],
        "puts registered resources to sleep now; the reply is the per-resource report",
        |_| Ok(Command::SleepNow),
    ),
    TextCommand::plain(
        "WAKE_NOW",
        &[],
        "wakes what cloudnap put to sleep; the reply is the per-resource report",
        |_| Ok(Command::WakeNow),
    ),
    TextCommand::plain(
        "PAUSE",
        &[Minutes],
        "keeps resources awake for that long (wakes them if asleep)",
        |a| Ok(Command::Pause { minutes: a.minutes }),
    ),
    TextCommand::plain(
        "RESUME",
        &[],
        "ends a pause and every other hold; the idle countdown restarts",
        |_| Ok(Command::Resume),
    ),
    TextCommand::plain(
        "HOLD",
        &[Minutes, Reason],
        "keeps every resource awake for that long (wakes them if asleep), with the rest of the datagram as its reason; the reply is the hold `{\"hold\": {id, reason, only, lease_seconds, expires_in_seconds, ends_in_seconds}}`",
        |a| Ok(Command::Hold {
            minutes: Some(a.minutes),
            reason: if a.description.is_empty() { "HOLD".into() } else { a.description },
            only: None,
            lease_seconds: None,
        }),
    ),
    TextCommand::plain(
        "HOLD_RENEW",
        &[HoldId],
        "renews the lease of hold `id` (holds with a lease end if not renewed in time)",
        |a| Ok(Command::HoldRenew { id: a.hold_id }),
    ),
    TextCommand::plain(
        "HOLD_RELEASE",
        &[HoldId],
        "ends hold `id`; the idle countdown restarts when no hold is left",
        |a| Ok(Command::HoldRelease { id: a.hold_id }),
    ),
    TextCommand::plain(
        "LIST_HOLDS",
        &[],
        "`{\"holds\": [{id, reason, only, lease_seconds, expires_in_seconds, ends_in_seconds}]}`",
        |_| Ok(Command::ListHolds),
    ),
    TextCommand::plain(
        "REPORT",
        &[OptCount("days")],
        "savings over the last `days` (default 7), as `cloudnap report --json`: `{since, until, resources: [{resource, kind, id, region, awake_seconds, asleep_seconds, saved_usd, still_costing_usd, asleep_now, sources, notes, asleep: [[from, to]], tracked_since}], totals: {asleep_seconds, saved_usd, still_costing_usd, sources}, assumptions, warnings}` (unix seconds and dollars, unrounded)",
        |a| report_days(a.count.map(i64::from)),
    ),
    TextCommand::plain(
        "USER_ACTIVITY",
        &[],
        "counts as user activity (wakes resources if asleep)",
        |_| Ok(Command::UserActivity),
    ),
    TextCommand::plain(
        "HELP",
        &[],
        "every text command and JSON type with what it does",
        |_| Ok(Command::Help),
    ),
    ]);
    t
});

/// One JSON envelope type: its name, its `content` and what it does.
pub struct JsonType {
    pub name: String,
    /// The `content` object's keys, for `HELP` and docs/protocol.md.
    pub content: String,
    /// The kind of resource it lists, if any.
    kind: Option<Kind>,
    build: fn(&Content) -> Result<Command, String>,
}

impl JsonType {
    fn plain(name: &str, content: &str, build: fn(&Content) -> Result<Command, String>) -> Self {
        JsonType {
            name: name.to_string(),
            content: content.to_string(),
            kind: None,
            build,
        }
    }
}

/// `a, b or c`.
fn one_of(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

/// The labels of every kind: `EC2, ECS or EKS`.
fn kind_labels() -> String {
    one_of(&Kind::ALL.map(|k| k.spec().label.to_string()))
}

/// The kinds that have `SCALE_*`, e.g. `EKS nodegroups`.
fn scalable() -> String {
    let kinds: Vec<String> = Kind::ALL
        .iter()
        .map(|k| k.spec())
        .filter(|s| s.scale.is_some())
        .map(|s| format!("{} {}s", s.label, s.noun))
        .collect();
    one_of(&kinds)
}

/// Every JSON envelope type: for each kind its `AWS_<label>_LIST`, then the
/// others.
pub static JSON_TYPES: LazyLock<Vec<JsonType>> = LazyLock::new(|| {
    let mut t = Vec::new();
    for kind in Kind::ALL {
        let spec = kind.spec();
        t.push(JsonType {
            name: format!("AWS_{}_LIST", spec.label),
            content: format!(
                "`{{\"region\"?}}`; reply `{{\"{}\": [...]}}` as `LIST_{}`",
                spec.list_key, spec.label
            ),
            kind: Some(kind),
            build: |c| {
                Ok(Command::List {
                    kind: c.kind,
                    region: c.region(false)?,
                })
            },
        });
    }
    let quoted = |s: &str| format!("\"{s}\"");
    let types: Vec<String> = Kind::ALL.iter().map(|k| quoted(k.spec().label)).collect();
    let ids: Vec<String> = Kind::ALL
        .iter()
        .map(|k| {
            k.spec()
                .names
                .iter()
                .map(|f| quoted(f.key))
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    let scale_labels: Vec<String> = Kind::ALL
        .iter()
        .map(|k| k.spec())
        .filter(|s| s.scale.is_some())
        .map(|s| s.label.to_string())
        .collect();
    t.push(JsonType::plain(
        "AWS_SERVICE_STATUS",
        &format!(
            "`{{\"action\": \"START\"|\"STOP\"|\"SCALE\", \"service_type\": {}, {}, \"desired_size\"?, \"region\"}}`; `SCALE` is for {} and needs `desired_size`",
            types.join("|"),
            ids.join("` or `"),
            one_of(&scale_labels)
        ),
        service_status,
    ));
    t.extend([
    JsonType::plain(
        "REGISTER_SERVICE",
        "`{\"service_type\", ids as above, \"region\", \"description\"?}`",
        |c| {
            Ok(Command::Register {
                id: c.resource_id()?,
                description: c.string("description", false)?.unwrap_or_default(),
            })
        },
    ),
    JsonType::plain(
        "UNREGISTER_SERVICE",
        "`{\"service_type\", ids as above, \"region\"}`",
        |c| Ok(Command::Unregister { id: c.resource_id()? }),
    ),
    JsonType::plain("LIST_REGISTERED_SERVICES", "none", |_| Ok(Command::ListRegistered)),
    JsonType::plain("STATUS", "none", |_| Ok(Command::Status)),
    JsonType::plain("USER_ACTIVITY", "none", |_| Ok(Command::UserActivity)),
    JsonType::plain("PAUSE", "`{\"minutes\": 60}`", |c| {
        let minutes = match c.map.get("minutes") {
            Some(Value::Number(n)) => minutes(&n.to_string()),
            Some(Value::String(s)) => minutes(s),
            _ => Err("content.minutes must be a number above 0".into()),
        };
        Ok(Command::Pause { minutes: minutes? })
    }),
    JsonType::plain("RESUME", "none", |_| Ok(Command::Resume)),
    JsonType::plain(
        "HOLD",
        "`{\"minutes\"?, \"reason\"?, \"only\"?, \"lease_seconds\"?}`: `only` names one registered resource (`i-0abc`, `cluster/service`); with `lease_seconds` (at most 120) the hold ends unless renewed in time; needs `minutes` or `lease_seconds`",
        |c| {
            let minutes = c.number("minutes", minutes)?;
            let lease_seconds = c.number("lease_seconds", lease)?;
            if minutes.is_none() && lease_seconds.is_none() {
                return Err("content.minutes or content.lease_seconds is required".into());
            }
            Ok(Command::Hold {
                minutes,
                reason: c.string("reason", false)?.unwrap_or_else(|| "HOLD".into()),
                only: c.string("only", false)?,
                lease_seconds,
            })
        },
    ),
    JsonType::plain("HOLD_RENEW", "`{\"id\": 3}`", |c| Ok(Command::HoldRenew { id: c.hold_id()? })),
    JsonType::plain("HOLD_RELEASE", "`{\"id\": 3}`", |c| {
        Ok(Command::HoldRelease { id: c.hold_id()? })
    }),
    JsonType::plain("LIST_HOLDS", "none", |_| Ok(Command::ListHolds)),
    JsonType::plain("REPORT", "`{\"days\": 30}` (optional, default 7)", |c| {
        report_days(c.count("days")?.map(i64::from))
    }),
    JsonType::plain("SLEEP_NOW", "none", |_| Ok(Command::SleepNow)),
    JsonType::plain("WAKE_NOW", "none", |_| Ok(Command::WakeNow)),
    JsonType::plain("HELP", "none", |_| Ok(Command::Help)),
    ]);
    t
});

/// `AWS_SERVICE_STATUS`: start, stop or (kinds with `SCALE_*`) scale one resource.
fn service_status(c: &Content) -> Result<Command, String> {
    let id = c.resource_id()?;
    let action = c.string("action", true)?.unwrap_or_default();
    match action.to_ascii_uppercase().as_str() {
        "START" => Ok(Command::Start {
            count: c.count("desired_size")?,
            id,
        }),
        "STOP" => Ok(Command::Stop { id }),
        "SCALE" if id.kind().spec().scale.is_some() => Ok(Command::Scale {
            desired: c
                .count("desired_size")?
                .ok_or("content.desired_size is required for SCALE")?,
            id,
        }),
        "SCALE" => Err(format!(
            "content.action SCALE is for {}; for {} use START or STOP",
            scalable(),
            id.kind()
        )),
        other => Err(format!(
            "content.action `{}` must be START, STOP or SCALE",
            truncate(other, 32)
        )),
    }
}

/// The command tables as `HELP` returns them.
pub fn help() -> Reply {
    Reply::Help {
        commands: TEXT_COMMANDS
            .iter()
            .map(|c| HelpRow {
                form: c.form(),
                does: c.does.clone(),
            })
            .collect(),
        json_types: JSON_TYPES
            .iter()
            .map(|t| HelpRow {
                form: t.name.clone(),
                does: t.content.clone(),
            })
            .collect(),
    }
}

/// The text command table of docs/protocol.md, in Markdown.
pub fn text_commands_markdown() -> String {
    let mut s = "| command | does |\n| --- | --- |\n".to_string();
    for c in TEXT_COMMANDS.iter() {
        s += &format!("| `{}` | {} |\n", c.form(), c.does);
    }
    s
}

/// The JSON type table of docs/protocol.md, in Markdown.
pub fn json_types_markdown() -> String {
    let mut s = "| type | content |\n| --- | --- |\n".to_string();
    for t in JSON_TYPES.iter() {
        s += &format!("| `{}` | {} |\n", t.name, t.content);
    }
    s
}

fn names<T>(table: &[T], name: impl Fn(&T) -> &str) -> String {
    table.iter().map(name).collect::<Vec<_>>().join(", ")
}

/// Parses one datagram.
pub fn parse(datagram: &[u8]) -> Result<Request, ParseError> {
    let text_err = |message: String| ParseError {
        format: Format::Text {
            name: String::new(),
        },
        message,
    };
    let text = std::str::from_utf8(datagram).map_err(|e| {
        text_err(format!(
            "the datagram is not valid UTF-8 (invalid byte at position {})",
            e.valid_up_to()
        ))
    })?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(text_err(
            "empty command: send e.g. STATUS or a JSON envelope".into(),
        ));
    }
    if trimmed.starts_with('{') {
        parse_json(trimmed)
    } else {
        parse_text(trimmed)
    }
}

fn parse_text(text: &str) -> Result<Request, ParseError> {
    if text
        .get(..5)
        .is_some_and(|p| p.eq_ignore_ascii_case("AUTH:"))
    {
        return parse_signed_text(text);
    }
    let mut fields: Vec<&str> = text.split(':').collect();
    let mut token = None;
    if fields[0].eq_ignore_ascii_case("TOKEN") {
        if fields.len() < 3 {
            return Err(ParseError {
                format: Format::Text {
                    name: "TOKEN".into(),
                },
                message: "wrong number of fields: expected TOKEN:<token>:COMMAND...".into(),
            });
        }
        token = Some(Credential::Token(fields[1].to_string()));
        fields.drain(..2);
    }
    let name = fields[0].to_ascii_uppercase();
    let Some(spec) = TEXT_COMMANDS.iter().find(|c| c.name == name) else {
        return Err(ParseError {
            format: Format::Text {
                name: String::new(),
            },
            message: format!(
                "unknown command `{}`; known commands: {}",
                truncate(fields[0], 64),
                names(&TEXT_COMMANDS, |c| &c.name)
            ),
        });
    };
    let command = read_text(spec, &fields[1..]).map_err(|message| ParseError {
        format: Format::Text { name: name.clone() },
        message,
    })?;
    Ok(Request {
        format: Format::Text { name },
        credential: token.unwrap_or(Credential::None),
        command,
    })
}

/// `AUTH:<unix-ts>:<nonce>:<hex-mac>:<payload>`, the payload a text command
/// or a JSON envelope without a credential of its own.
fn parse_signed_text(text: &str) -> Result<Request, ParseError> {
    let err = |message: &str| ParseError {
        format: Format::Text {
            name: "AUTH".into(),
        },
        message: format!("{message}: expected AUTH:<unix-ts>:<nonce>:<hex-hmac>:COMMAND"),
    };
    let mut fields = text.splitn(5, ':').skip(1);
    let (Some(ts), Some(nonce), Some(mac), Some(payload)) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(err("wrong number of fields"));
    };
    let signature = signature(ts.parse().ok(), nonce, mac, payload).map_err(|m| err(&m))?;
    signed(signature)
}

/// A signature's fields, checked for form (not yet for validity).
fn signature(
    timestamp: Option<i64>,
    nonce: &str,
    mac: &str,
    payload: &str,
) -> Result<Signature, String> {
    let timestamp = timestamp.ok_or("the timestamp must be whole unix seconds")?;
    if !valid_nonce(nonce) {
        return Err("the nonce must be 1 to 64 of A-Z a-z 0-9 _ -".into());
    }
    let mac = hex::decode(mac)
        .ok()
        .filter(|m| m.len() == 32)
        .ok_or("the MAC must be 64 hex digits (HMAC-SHA256)")?;
    Ok(Signature {
        timestamp,
        nonce: nonce.to_string(),
        mac,
        payload: payload.to_string(),
    })
}

/// The request a signature carries.
fn signed(signature: Signature) -> Result<Request, ParseError> {
    let inner = parse(signature.payload.as_bytes())?;
    if inner.credential != Credential::None {
        return Err(ParseError {
            format: inner.format,
            message: "a signed command carries no token or signature of its own".into(),
        });
    }
    Ok(Request {
        credential: Credential::Signed(signature),
        ..inner
    })
}

/// Reads `args` by `spec`'s fields: arity, region, resource id, count,
/// minutes, description, in that order of checks.
fn read_text(spec: &TextCommand, args: &[&str]) -> Result<Command, String> {
    let required = spec.fields.iter().filter(|f| !f.optional()).count();
    let rest = matches!(spec.fields.last(), Some(Description | Reason));
    if args.len() < required || (!rest && args.len() > spec.fields.len()) {
        return Err(format!(
            "wrong number of fields for {}: expected {}",
            spec.name,
            spec.form()
        ));
    }
    let mut a = Args {
        kind: spec.kind,
        ..Args::default()
    };
    let (mut names, mut count) = (Vec::new(), None);
    for (i, field) in spec.fields.iter().enumerate() {
        let Some(value) = args.get(i) else { break };
        match field {
            Name(_) => names.push(value.to_string()),
            Region | OptRegion if is_valid_region(value) => a.region = Some(value.to_string()),
            Region | OptRegion => {
                return Err(format!(
                    "bad region `{}`: expected an AWS region such as us-east-1",
                    truncate(value, 64)
                ))
            }
            Count(label) | OptCount(label) => count = Some((*label, *value)),
            Minutes => a.minutes = minutes(value)?,
            HoldId => a.hold_id = hold_id(value)?,
            Description | Reason => a.description = args[i..].join(":").trim().to_string(),
        }
    }
    if let (Some(kind), false) = (spec.kind, names.is_empty()) {
        let id = ResourceId::new(kind, names, a.region.clone().unwrap_or_default());
        check_id(&id).map_err(|e| format!("{}: {e}", spec.name))?;
        a.id = Some(id);
    }
    if let Some((label, c)) = count {
        a.count = Some(
            c.parse::<i64>()
                .ok()
                .filter(|c| (0..=MAX_COUNT).contains(c))
                .map(|c| c as i32)
                .ok_or_else(|| {
                    format!(
                        "{label} `{}` must be a whole number from 0 to {MAX_COUNT}",
                        truncate(c, 32)
                    )
                })?,
        );
    }
    (spec.build)(a)
}

/// `REPORT`'s period: 1 to 3660 days, 7 when not given.
fn report_days(days: Option<i64>) -> Result<Command, String> {
    match days.unwrap_or(7) {
        d @ 1..=3660 => Ok(Command::Report { days: d as u32 }),
        d => Err(format!("days `{d}` must be from 1 to 3660")),
    }
}

fn minutes(s: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .ok()
        .filter(|m| *m > 0.0 && *m <= MAX_PAUSE_MINUTES)
        .ok_or_else(|| {
            format!(
                "minutes `{}` must be a number above 0 and at most {MAX_PAUSE_MINUTES}",
                truncate(s, 32)
            )
        })
}

fn lease(s: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .ok()
        .filter(|l| *l > 0.0 && *l <= MAX_LEASE_SECONDS)
        .ok_or_else(|| {
            format!(
                "lease_seconds `{}` must be a number above 0 and at most {MAX_LEASE_SECONDS}",
                truncate(s, 32)
            )
        })
}

fn hold_id(s: &str) -> Result<u64, String> {
    s.parse::<u64>()
        .map_err(|_| format!("hold id `{}` must be a whole number", truncate(s, 32)))
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// The 0-based byte offset of a 1-based line and column.
fn position(text: &str, line: usize, column: usize) -> usize {
    text.split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum::<usize>()
        + column.saturating_sub(1)
}

fn parse_json(text: &str) -> Result<Request, ParseError> {
    let early = |message: String| ParseError {
        format: Format::Json {
            id: None,
            kind: "ERROR".into(),
            timestamp: TimestampForm::default(),
        },
        message,
    };
    let value: Value = serde_json::from_str(text).map_err(|e| {
        early(format!(
            "invalid JSON at position {}: {}",
            position(text, e.line(), e.column()),
            e
        ))
    })?;
    let Value::Object(env) = value else {
        return Err(early("a JSON envelope must be an object".into()));
    };
    if let Some(auth) = env.get("auth") {
        return parse_signed_json(auth, env.get("signed")).map_err(|e| match e {
            Ok(parsed) => parsed,
            Err(message) => early(message),
        });
    }
    let id = match env.get("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => None,
    };
    let kind = env
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let timestamp = match env.get("timestamp") {
        Some(Value::Number(n)) if n.is_f64() => TimestampForm::UnixFractional,
        Some(Value::Number(_)) => TimestampForm::UnixSeconds,
        _ => TimestampForm::Rfc3339,
    };
    let format = Format::Json {
        id,
        kind: kind.clone(),
        timestamp,
    };
    let err = |message: String| ParseError {
        format: format.clone(),
        message,
    };
    if matches!(env.get("id"), Some(v) if !(v.is_string() || v.is_number() || v.is_null())) {
        return Err(err("`id` must be a string".into()));
    }
    if !env.get("type").is_some_and(Value::is_string) {
        return Err(err(format!(
            "`type` must be a string, one of: {}",
            names(&JSON_TYPES, |t| &t.name)
        )));
    }
    let credential = match env.get("token") {
        None | Some(Value::Null) => Credential::None,
        Some(Value::String(t)) => Credential::Token(t.clone()),
        Some(_) => return Err(err("`token` must be a string".into())),
    };
    let empty = Map::new();
    let content = match env.get("content") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(_) => return Err(err("`content` must be an object".into())),
    };
    let Some(spec) = JSON_TYPES.iter().find(|t| t.name == kind) else {
        return Err(err(format!(
            "unknown type `{}`; known types: {}",
            truncate(&kind, 64),
            names(&JSON_TYPES, |t| &t.name)
        )));
    };
    let command = (spec.build)(&Content {
        map: content,
        kind: spec.kind,
    })
    .map_err(err)?;
    Ok(Request {
        format,
        credential,
        command,
    })
}

/// `{"auth": {"ts", "nonce", "mac"}, "signed": "<command or envelope>"}`:
/// the signed text is carried as a string, so the MAC covers its exact bytes.
/// The error is the inner command's, or a message about the wrapper.
fn parse_signed_json(
    auth: &Value,
    payload: Option<&Value>,
) -> Result<Request, Result<ParseError, String>> {
    let form = "expected {\"auth\": {\"ts\": <unix-ts>, \"nonce\": \"...\", \"mac\": \"<hex-hmac>\"}, \"signed\": \"<command>\"}";
    let Some(Value::String(payload)) = payload else {
        return Err(Err(format!("`signed` must be a string: {form}")));
    };
    let field = |k: &str| auth.get(k).and_then(Value::as_str).unwrap_or("");
    let signature = signature(
        auth.get("ts").and_then(Value::as_i64),
        field("nonce"),
        field("mac"),
        payload,
    )
    .map_err(|m| Err(format!("{m}: {form}")))?;
    signed(signature).map_err(Ok)
}

/// Typed access to an envelope's `content`.
struct Content<'a> {
    map: &'a Map<String, Value>,
    /// The kind of resource of the envelope's type, if any.
    kind: Option<Kind>,
}

impl Content<'_> {
    fn string(&self, key: &str, required: bool) -> Result<Option<String>, String> {
        match self.map.get(key) {
            None | Some(Value::Null) if !required => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            None | Some(Value::Null) => Err(format!("content.{key} is required")),
            Some(other) => Err(format!("content.{key} must be a string (got {other})")),
        }
    }

    fn region(&self, required: bool) -> Result<Option<String>, String> {
        match self.string("region", required)? {
            Some(r) if !is_valid_region(&r) => Err(format!(
                "bad region `{}`: expected an AWS region such as us-east-1",
                truncate(&r, 64)
            )),
            r => Ok(r),
        }
    }

    fn count(&self, key: &str) -> Result<Option<i32>, String> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_i64()
                .filter(|c| (0..=MAX_COUNT).contains(c))
                .map(|c| Some(c as i32))
                .ok_or_else(|| {
                    format!("content.{key} must be a whole number from 0 to {MAX_COUNT} (got {v})")
                }),
        }
    }

    /// An optional number (or numeric string) at `key`, checked by `check`.
    fn number(
        &self,
        key: &str,
        check: fn(&str) -> Result<f64, String>,
    ) -> Result<Option<f64>, String> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => check(&n.to_string()).map(Some),
            Some(Value::String(s)) => check(s).map(Some),
            Some(other) => Err(format!("content.{key} must be a number (got {other})")),
        }
    }

    fn hold_id(&self) -> Result<u64, String> {
        match self.map.get("id") {
            Some(Value::Number(n)) => hold_id(&n.to_string()),
            Some(Value::String(s)) => hold_id(s),
            _ => Err("content.id must be a hold id (a whole number)".into()),
        }
    }

    fn resource_id(&self) -> Result<ResourceId, String> {
        let service_type = self.string("service_type", true)?.unwrap_or_default();
        let region = self.region(true)?.unwrap_or_default();
        let req =
            |k: &str| -> Result<String, String> { Ok(self.string(k, true)?.unwrap_or_default()) };
        let kind = Kind::from_label(&service_type).ok_or_else(|| {
            format!(
                "content.service_type `{}` must be {}",
                truncate(&service_type, 32),
                kind_labels()
            )
        })?;
        let names = kind
            .spec()
            .names
            .iter()
            .map(|f| req(f.key))
            .collect::<Result<Vec<_>, _>>()?;
        let id = ResourceId::new(kind, names, region);
        check_id(&id)?;
        Ok(id)
    }
}

/// The reply's `timestamp` for `now`, in the request's form.
fn timestamp(form: TimestampForm, now: SystemTime) -> Value {
    let unix = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    match form {
        TimestampForm::Rfc3339 => humantime::format_rfc3339_millis(now).to_string().into(),
        TimestampForm::UnixSeconds => unix.as_secs().into(),
        TimestampForm::UnixFractional => ((unix.as_millis() as f64) / 1000.0).into(),
    }
}

/// A text command's reply: `{"ok", "command", "result"|"error", "code"?}`.
#[derive(serde::Serialize)]
struct TextReply<'a, T> {
    ok: bool,
    command: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'a str>,
}

/// An envelope's error content.
#[derive(serde::Serialize)]
struct ErrorContent<'a> {
    message: &'a str,
    error: &'a str,
    request_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'a str>,
}

/// A reply envelope.
#[derive(serde::Serialize)]
struct EnvelopeReply<'a, C> {
    id: &'a str,
    reply_to: &'a Option<String>,
    #[serde(rename = "type")]
    kind: &'a str,
    timestamp: Value,
    source: &'static str,
    content: C,
}

/// Either a result or an error's content, serialized as itself.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum ReplyContent<'a, T> {
    Ok(T),
    Err(ErrorContent<'a>),
}

/// Builds the reply to a request, serialized: JSON for text commands
/// (`{"ok","command","result"|"error"}`), an envelope for JSON requests.
/// Errors carry AWS's `code` when there is one. `reply_id` and `now` come
/// from the caller. Serialized straight from the types (no `Value` tree):
/// this runs for every datagram.
pub fn reply(
    format: &Format,
    result: Result<impl serde::Serialize, CommandError>,
    reply_id: &str,
    now: SystemTime,
) -> String {
    let text = match format {
        Format::Text { name } => {
            let command = (!name.is_empty()).then_some(name.as_str());
            match &result {
                Ok(r) => serde_json::to_string(&TextReply {
                    ok: true,
                    command,
                    result: Some(r),
                    error: None,
                    code: None,
                }),
                Err(e) => serde_json::to_string(&TextReply::<()> {
                    ok: false,
                    command,
                    result: None,
                    error: Some(e.to_string()),
                    code: e.code(),
                }),
            }
        }
        Format::Json {
            id,
            kind,
            timestamp: form,
        } => {
            let message;
            let (kind, content) = match &result {
                Ok(r) => (kind.as_str(), ReplyContent::Ok(r)),
                Err(e) => {
                    message = e.to_string();
                    let body = ErrorContent {
                        message: &message,
                        error: &message,
                        request_type: kind,
                        code: e.code(),
                    };
                    ("ERROR", ReplyContent::Err(body))
                }
            };
            serde_json::to_string(&EnvelopeReply {
                id: reply_id,
                reply_to: id,
                kind,
                timestamp: timestamp(*form, now),
                source: "cloudnap",
                content,
            })
        }
    };
    // Our own types always serialize; a failure would be a bug, answered
    // as an error rather than a panic.
    text.unwrap_or_else(|e| {
        format!(
            "{{\"ok\":false,\"error\":{}}}",
            Value::from(format!("reply not serializable: {e}"))
        )
    })
}

/// Splits a serialized reply into datagrams of at most `max` bytes. A reply
/// that fits is sent as is; a larger one becomes `n` parts, each
/// `{"reply_to","part":i,"parts":n,"data":"<slice of the reply>"}`
/// (1-based `part`); concatenating `data` in order gives the reply.
pub fn split(reply: String, reply_to: Option<&str>, max: usize) -> Vec<String> {
    if reply.len() <= max {
        return vec![reply];
    }
    let reply = reply.as_str();
    // Frame placeholders wide enough for any part numbers.
    let frame = |data: &str, i: usize, n: usize| {
        json!({"reply_to": reply_to, "part": i, "parts": n, "data": data}).to_string()
    };
    let overhead = frame("", usize::MAX, usize::MAX).len();
    let budget = max.saturating_sub(overhead).max(8);
    let mut slices = Vec::new();
    let mut rest = reply;
    while !rest.is_empty() {
        let mut end = budget.min(rest.len());
        loop {
            while !rest.is_char_boundary(end) {
                end -= 1;
            }
            let escaped = serde_json::to_string(&rest[..end]).map_or(usize::MAX, |s| s.len());
            if escaped <= budget + 2 || end <= 1 {
                break;
            }
            end = (end * budget / escaped).max(1);
        }
        let end = end.max(rest.chars().next().map_or(0, char::len_utf8));
        slices.push(&rest[..end]);
        rest = &rest[end..];
    }
    let n = slices.len();
    slices
        .into_iter()
        .enumerate()
        .map(|(i, data)| frame(data, i + 1, n))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(s: &str) -> Command {
        parse(s.as_bytes())
            .unwrap_or_else(|e| panic!("{s}: {e:?}"))
            .command
    }

    fn error(s: &[u8]) -> String {
        parse(s).unwrap_err().message
    }

    #[test]
    fn a_multibyte_character_where_auth_would_end_is_an_error_not_a_panic() {
        assert!(
            error("ABCDé".as_bytes()).contains("unknown command"),
            "{}",
            error("ABCDé".as_bytes())
        );
    }

    #[test]
    fn text_commands() {
        assert_eq!(
            cmd("LIST_EC2"),
            Command::List {
                kind: Some(Kind::Ec2),
                region: None
            }
        );
        assert_eq!(
            cmd("list_all_services:eu-west-1\n"),
            Command::List {
                kind: None,
                region: Some("eu-west-1".into())
            }
        );
        let ecs = ResourceId::new(Kind::Ecs, ["c", "s"], "us-east-1");
        assert_eq!(
            cmd("START_ECS:c:s:us-east-1"),
            Command::Start {
                id: ecs.clone(),
                count: None
            }
        );
        assert_eq!(
            cmd("START_ECS:c:s:us-east-1:4"),
            Command::Start {
                id: ecs.clone(),
                count: Some(4)
            }
        );
        assert_eq!(
            cmd("STOP_ECS:c:s:us-east-1"),
            Command::Stop { id: ecs.clone() }
        );
        assert!(matches!(
            cmd("SCALE_EKS:k:ng:us-east-1:3"),
            Command::Scale { desired: 3, .. }
        ));
        assert_eq!(
            cmd("REGISTER_ECS:c:s:us-east-1:my api: v2"),
            Command::Register {
                id: ecs,
                description: "my api: v2".into()
            }
        );
        assert_eq!(cmd("PAUSE:60"), Command::Pause { minutes: 60.0 });
        assert_eq!(
            cmd("HOLD:90:deploy: v2"),
            Command::Hold {
                minutes: Some(90.0),
                reason: "deploy: v2".into(),
                only: None,
                lease_seconds: None
            }
        );
        assert_eq!(cmd("hold_release:7"), Command::HoldRelease { id: 7 });
        assert_eq!(cmd("HOLD_RENEW:7"), Command::HoldRenew { id: 7 });
        assert_eq!(cmd("LIST_HOLDS"), Command::ListHolds);
        assert_eq!(cmd("REPORT"), Command::Report { days: 7 });
        assert_eq!(cmd("REPORT:30"), Command::Report { days: 30 });
        assert!(error(b"HOLD_RELEASE:x").contains("must be a whole number"));
        assert!(error(b"HOLD").starts_with("wrong number of fields for HOLD"));
        let json = |c: &str| parse(format!(r#"{{"type":"HOLD","content":{c}}}"#).as_bytes());
        assert_eq!(
            json(r#"{"lease_seconds":3,"reason":"sleep 20","only":"i-1"}"#)
                .unwrap()
                .command,
            Command::Hold {
                minutes: None,
                reason: "sleep 20".into(),
                only: Some("i-1".into()),
                lease_seconds: Some(3.0)
            }
        );
        assert!(json("{}").unwrap_err().message.contains("is required"));
        assert!(json(r#"{"lease_seconds":600}"#)
            .unwrap_err()
            .message
            .contains("at most 120"));
        assert_eq!(cmd("STATUS"), Command::Status);
        let r = parse(b"TOKEN:s3cr3t-token:STATUS").unwrap();
        assert_eq!(r.credential, Credential::Token("s3cr3t-token".into()));
        assert_eq!(r.command, Command::Status);
    }

    #[test]
    fn signed_commands_carry_their_signature() {
        use crate::core::protocol::auth::{sign, signed_datagram};
        let (key, ts) = ("k3y-k3y-k3y", 1_800_000_000);
        let d = signed_datagram(key, ts, "n-1", "STOP_EC2:i-0abcdef1:us-east-1");
        let r = parse(d.as_bytes()).unwrap();
        let Credential::Signed(sig) = &r.credential else {
            panic!("{r:?}")
        };
        assert_eq!((sig.timestamp, sig.nonce.as_str()), (ts, "n-1"));
        assert_eq!(sig.payload, "STOP_EC2:i-0abcdef1:us-east-1");
        assert!(matches!(r.command, Command::Stop { .. }));

        let env = r#"{"type":"STATUS","id":"7"}"#;
        let wrapped = json!({"auth": {"ts": ts, "nonce": "n2", "mac": sign(key, ts, "n2", env)},
            "signed": env});
        let r = parse(wrapped.to_string().as_bytes()).unwrap();
        assert!(matches!(&r.format, Format::Json { id: Some(id), .. } if id == "7"));
        assert!(matches!(&r.credential, Credential::Signed(s) if s.payload == env));
        assert_eq!(r.command, Command::Status);

        assert!(error(b"AUTH:1:n:zz:STATUS").contains("64 hex digits"));
        assert!(error(b"AUTH:x:n:00:STATUS").contains("whole unix seconds"));
        assert!(error(b"AUTH:1:n").contains("wrong number of fields"));
        assert!(error(b"AUTH:1:a b:00:STATUS").contains("nonce"));
        let nested = signed_datagram(key, ts, "n3", "TOKEN:abcdefgh:STATUS");
        assert!(error(nested.as_bytes()).contains("no token or signature of its own"));
        assert!(error(br#"{"auth": {}, "signed": 3}"#).contains("`signed` must be a string"));
    }

    #[test]
    fn text_errors_are_specific() {
        assert!(error(b"").contains("empty command"));
        assert!(error(b"  \n").contains("empty command"));
        assert!(error(b"\xff\xfe").contains("not valid UTF-8"));
        assert!(error(b"FROB").contains("unknown command `FROB`"));
        assert_eq!(
            error(b"START_EC2:i-123"),
            "wrong number of fields for START_EC2: expected START_EC2:instance_id:region"
        );
        assert!(error(b"STATUS:extra").contains("expected STATUS"));
        assert!(error(b"START_EC2:i-123:mars").contains("bad region `mars`"));
        assert!(error(b"START_EC2:bogus:us-east-1").contains("must look like i-"));
        assert!(error(b"SCALE_EKS:k:n:us-east-1:-1").contains("whole number"));
        assert!(error(b"PAUSE:0").contains("above 0"));
        assert!(error(b"TOKEN:x").contains("TOKEN:<token>:COMMAND"));
    }

    #[test]
    fn json_envelopes() {
        let r = parse(br#"{"id":"1","type":"AWS_SERVICE_STATUS","timestamp":"t","source":"me",
            "content":{"action":"START","service_type":"EKS","cluster_name":"k","nodegroup_name":"n",
            "desired_size":2,"region":"us-west-2"}}"#)
        .unwrap();
        assert_eq!(
            r.format,
            Format::Json {
                id: Some("1".into()),
                kind: "AWS_SERVICE_STATUS".into(),
                timestamp: TimestampForm::Rfc3339,
            }
        );
        assert!(matches!(r.command, Command::Start { count: Some(2), .. }));
        assert_eq!(cmd(r#"{"id":"2","type":"STATUS"}"#), Command::Status);
        assert_eq!(
            cmd(r#"{"type":"PAUSE","content":{"minutes":1.5}}"#),
            Command::Pause { minutes: 1.5 }
        );
        assert!(matches!(
            cmd(
                r#"{"type":"REGISTER_SERVICE","content":{"service_type":"EC2","instance_id":"i-1","region":"us-east-1"}}"#
            ),
            Command::Register { .. }
        ));
    }

    #[test]
    fn json_errors_keep_the_request_id() {
        let e = parse(br#"{"id":"7","type":"NOPE"}"#).unwrap_err();
        assert_eq!(
            e.format,
            Format::Json {
                id: Some("7".into()),
                kind: "NOPE".into(),
                timestamp: TimestampForm::Rfc3339,
            }
        );
        assert!(e.message.contains("unknown type `NOPE`"));
        assert!(
            error(br#"{"id":"7","type":"AWS_EC2_LIST","content":{"region":5}}"#)
                .contains("content.region must be a string")
        );
        assert!(error(br#"{"type":"AWS_SERVICE_STATUS","content":{"action":"START","service_type":"EC2","region":"us-east-1"}}"#)
            .contains("content.instance_id is required"));
        assert!(error(br#"{"type":"PAUSE","content":"x"}"#).contains("`content` must be an object"));
        assert_eq!(
            error(br#"{"type": 5}"#).split(',').next().unwrap(),
            "`type` must be a string"
        );
        let e = error(b"{\"id\": \"1\",\n \"type\": }");
        assert!(e.starts_with("invalid JSON at position 21"), "{e}");
    }

    /// A reply, parsed back.
    fn reply_value(
        format: &Format,
        result: Result<Value, CommandError>,
        id: &str,
        now: SystemTime,
    ) -> Value {
        serde_json::from_str(&reply(format, result, id, now)).unwrap()
    }

    #[test]
    fn replies_have_the_documented_shapes() {
        let text = Format::Text {
            name: "STATUS".into(),
        };
        let now = UNIX_EPOCH + std::time::Duration::from_millis(1_621_234_567_250);
        assert_eq!(
            reply_value(&text, Ok(json!({"a":1})), "r", now),
            json!({"ok": true, "command": "STATUS", "result": {"a": 1}})
        );
        let denied = CommandError::Cloud {
            subject: "EC2 i-1 (us-east-1)".into(),
            code: Some("UnauthorizedOperation".into()),
            message: "no".into(),
        };
        let r = reply_value(&text, Err::<Value, _>(denied), "r", now);
        assert_eq!(r["code"], "UnauthorizedOperation");
        assert_eq!(r["error"], "EC2 i-1 (us-east-1): UnauthorizedOperation: no");
        let j = Format::Json {
            id: Some("9".into()),
            kind: "STATUS".into(),
            timestamp: TimestampForm::Rfc3339,
        };
        let r = reply_value(
            &j,
            Err::<Value, _>(CommandError::Invalid("boom".into())),
            "r1",
            now,
        );
        assert_eq!(r["type"], "ERROR");
        assert_eq!(r["reply_to"], "9");
        assert_eq!(r["id"], "r1");
        assert_eq!(r["timestamp"], "2021-05-17T06:56:07.250Z");
        assert_eq!(r["content"]["message"], "boom");
        assert_eq!(r["content"]["error"], "boom");
        assert_eq!(r["content"]["request_type"], "STATUS");
        assert!(r["content"].get("code").is_none());
    }

    #[test]
    fn replies_carry_the_timestamp_form_of_the_request() {
        let now = UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_500);
        let stamp = |doc: &str| {
            let req = parse(doc.as_bytes()).unwrap();
            reply_value(&req.format, Ok(json!({})), "r", now)["timestamp"].clone()
        };
        assert_eq!(
            stamp(r#"{"id":"a","type":"STATUS","timestamp":1621234567}"#),
            json!(1_700_000_000u64)
        );
        assert_eq!(
            stamp(r#"{"id":"a","type":"STATUS","timestamp":1621234567.5}"#),
            json!(1_700_000_000.5)
        );
        assert_eq!(
            stamp(r#"{"id":"a","type":"STATUS","timestamp":"2021-05-17T06:56:07Z"}"#),
            json!("2023-11-14T22:13:20.500Z")
        );
        assert_eq!(
            stamp(r#"{"type":"STATUS"}"#),
            json!("2023-11-14T22:13:20.500Z")
        );
    }

    #[test]
    fn eks_can_be_scaled_through_service_status() {
        let scale = |t: &str, extra: &str| {
            parse(format!(r#"{{"type":"AWS_SERVICE_STATUS","content":{{"action":"SCALE","service_type":"{t}","cluster_name":"k","nodegroup_name":"n","service_name":"s","region":"us-east-1"{extra}}}}}"#).as_bytes())
        };
        assert!(matches!(
            scale("EKS", r#","desired_size":3"#).unwrap().command,
            Command::Scale { desired: 3, .. }
        ));
        assert!(scale("EKS", "")
            .unwrap_err()
            .message
            .contains("desired_size is required"));
        assert!(scale("ECS", r#","desired_size":3"#)
            .unwrap_err()
            .message
            .contains("SCALE is for EKS"));
    }

    /// Returns the block of `doc` between `<!-- begin NAME -->` and `<!-- end NAME -->`.
    fn doc_block<'a>(doc: &'a str, name: &str) -> &'a str {
        let begin = format!("<!-- begin {name} -->\n");
        let start = doc.find(&begin).expect("begin marker") + begin.len();
        let end = doc
            .find(&format!("<!-- end {name} -->"))
            .expect("end marker");
        &doc[start..end]
    }

    #[test]
    fn docs_list_exactly_the_commands_of_the_tables() {
        let doc = include_str!("../../../docs/protocol.md");
        assert_eq!(
            doc_block(doc, "text commands"),
            text_commands_markdown(),
            "docs/protocol.md's text command table must be exactly this"
        );
        assert_eq!(
            doc_block(doc, "json types"),
            json_types_markdown(),
            "docs/protocol.md's JSON type table must be exactly this"
        );
    }

    #[test]
    fn every_command_in_the_tables_parses_and_help_lists_them() {
        for c in TEXT_COMMANDS.iter() {
            let err = parse(format!("{}:{}", c.name, "x:".repeat(8)).as_bytes());
            if let Err(e) = err {
                assert!(!e.message.starts_with("unknown command"), "{}", c.name);
            }
        }
        for t in JSON_TYPES.iter() {
            let r = parse(format!(r#"{{"type":"{}"}}"#, t.name).as_bytes());
            if let Err(e) = r {
                assert!(!e.message.starts_with("unknown type"), "{}", t.name);
            }
        }
        let Reply::Help {
            commands,
            json_types,
        } = help()
        else {
            panic!("help is a Help reply");
        };
        assert_eq!(commands.len(), TEXT_COMMANDS.len());
        assert_eq!(json_types.len(), JSON_TYPES.len());
        assert!(error(b"FROB").ends_with(&names(&TEXT_COMMANDS, |c| &c.name)));
        let form = |name: &str| {
            TEXT_COMMANDS
                .iter()
                .find(|c| c.name == name)
                .unwrap()
                .form()
        };
        assert_eq!(
            form("START_ECS"),
            "START_ECS:cluster:service:region[:count]"
        );
        assert_eq!(
            form("REGISTER_ASG"),
            "REGISTER_ASG:group:region[:description]"
        );
    }

    #[test]
    fn split_parts_reassemble() {
        let big = json!({"data": "é\"x".repeat(50_000)}).to_string();
        let parts = split(big.clone(), Some("id"), 60_000);
        assert!(parts.len() > 1);
        let mut joined = String::new();
        for (i, p) in parts.iter().enumerate() {
            assert!(p.len() <= 60_000);
            let v: Value = serde_json::from_str(p).unwrap();
            assert_eq!(v["part"], i + 1);
            assert_eq!(v["parts"], parts.len());
            joined += v["data"].as_str().unwrap();
        }
        assert_eq!(joined, big);
        assert_eq!(split("{}".into(), None, 10), vec!["{}".to_string()]);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn parse_never_panics_on_text_with_multibyte_characters(s in "\\PC{0,12}") {
            let _ = parse(s.as_bytes());
        }

        #[test]
        fn parse_never_panics_on_command_like_text(s in "(TOKEN:[a-z]{0,9}:|AUTH:-?[0-9]{0,11}:[a-z0-9_:\\-]{0,9}:[0-9a-f]{0,66}:)?[A-Z_]{0,20}(:[a-z0-9.\\-]{0,12}){0,6}") {
            let _ = parse(s.as_bytes());
        }

        #[test]
        fn parse_never_panics_on_envelope_like_json(
            t in "[A-Z_]{0,20}",
            k in "[a-z_]{0,14}",
            v in proptest::prelude::any::<i64>(),
            s in ".{0,20}",
        ) {
            let doc = json!({"id": s, "type": t, "content": {k.clone(): v, "region": s, "service_type": "EKS", "action": t}});
            let _ = parse(doc.to_string().as_bytes());
        }
    }
}
