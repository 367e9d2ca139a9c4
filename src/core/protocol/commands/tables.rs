//! The two tables every part of the protocol comes from: text commands and
//! JSON envelope types, with `HELP` and docs/protocol.md's lists.

use super::*;

/// Largest pause accepted: one week.
pub(super) const MAX_PAUSE_MINUTES: f64 = 7.0 * 24.0 * 60.0;
/// Largest hold lease accepted.
pub(super) const MAX_LEASE_SECONDS: f64 = crate::core::policy::holds::MAX_LEASE.as_secs() as f64;
/// Largest count accepted for ECS tasks or EKS nodes.
pub(super) const MAX_COUNT: i64 = 10_000;

/// A field of a text command, after its name.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Field {
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
    pub(super) fn label(self) -> &'static str {
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

    pub(super) fn optional(self) -> bool {
        matches!(
            self,
            Field::OptRegion | Field::OptCount(_) | Field::Description | Field::Reason
        )
    }
}

/// A text command's fields, read and checked.
#[derive(Debug, Default)]
pub(super) struct Args {
    /// The command's kind, if it has one.
    pub(super) kind: Option<Kind>,
    pub(super) id: Option<ResourceId>,
    pub(super) region: Option<String>,
    pub(super) count: Option<i32>,
    pub(super) minutes: f64,
    pub(super) hold_id: u64,
    pub(super) description: String,
}

impl Args {
    pub(super) fn id(&self) -> Result<ResourceId, String> {
        self.id
            .clone()
            .ok_or_else(|| "no resource given".to_string())
    }
}

/// One text command: its name, its fields and what it does.
pub struct TextCommand {
    pub name: String,
    /// The kind of resource it is about, if any.
    pub(super) kind: Option<Kind>,
    pub(super) fields: Vec<Field>,
    /// What the command does, for `HELP` and docs/protocol.md.
    pub does: String,
    pub(super) build: fn(Args) -> Result<Command, String>,
}

impl TextCommand {
    /// A command about no kind of resource.
    pub(super) fn plain(
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
    pub(super) fn of_kind(
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

pub(super) use Field::*;

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
        "`{\"services\": [{resource, description, profile, desired_size, timeout_minutes, wake, after, source}], \"config_error\": null}` (source: `services.yaml`, or `tag` for a resource found by its `cloudnap:managed=true` tag; `timeout_minutes`: its idle timeout, its own `timeout_minutes` else `activity_monitor.inactivity_timeout_minutes`; `wake`: `auto`, `manual` or `on_connect`; `after`: the resource it starts after, as written in services.yaml, absent when none)",
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
    pub(super) kind: Option<Kind>,
    pub(super) build: fn(&Content) -> Result<Command, String>,
}

impl JsonType {
    pub(super) fn plain(
        name: &str,
        content: &str,
        build: fn(&Content) -> Result<Command, String>,
    ) -> Self {
        JsonType {
            name: name.to_string(),
            content: content.to_string(),
            kind: None,
            build,
        }
    }
}

/// `a, b or c`.
pub(super) fn one_of(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

/// The labels of every kind: `EC2, ECS or EKS`.
pub(super) fn kind_labels() -> String {
    one_of(&Kind::ALL.map(|k| k.spec().label.to_string()))
}

/// The kinds that have `SCALE_*`, e.g. `EKS nodegroups`.
pub(super) fn scalable() -> String {
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
        "`{\"minutes\"?, \"reason\"?, \"only\"?, \"lease_seconds\"?}`: `only` names one registered resource (`i-0abc`, `cluster/service`) and wakes that one alone if it is asleep (STATUS `readiness` shows it `starting` from the reply on); with `lease_seconds` (at most 120) the hold ends unless renewed in time; needs `minutes` or `lease_seconds`",
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
pub(super) fn service_status(c: &Content) -> Result<Command, String> {
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

pub(super) fn names<T>(table: &[T], name: impl Fn(&T) -> &str) -> String {
    table.iter().map(name).collect::<Vec<_>>().join(", ")
}
