//! The UDP command protocol: parsing text commands and JSON envelopes into
//! [`Command`]s, and shaping replies. Pure: no sockets, no clock (the caller
//! passes ids and timestamps in).

use crate::core::registry::check_id;
use crate::core::resource::{Kind, ResourceId};
use crate::core::settings::is_valid_region;
use serde_json::{json, Map, Value};

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
    /// Set a nodegroup's desired size.
    ScaleEks { id: ResourceId, desired: i32 },
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
    /// End a pause.
    Resume,
    /// Counts as user activity.
    UserActivity,
}

impl Command {
    /// Whether the command calls AWS (these are rate-limited per source).
    pub fn calls_aws(&self) -> bool {
        matches!(
            self,
            Command::List { .. }
                | Command::Start { .. }
                | Command::Stop { .. }
                | Command::ScaleEks { .. }
                | Command::SleepNow
                | Command::WakeNow
        )
    }
}

/// How a request arrived, which decides the reply's shape.
#[derive(Debug, Clone, PartialEq)]
pub enum Format {
    /// A `NAME:field:...` text command.
    Text { name: String },
    /// A JSON envelope with this `id` (if any) and `type`.
    Json { id: Option<String>, kind: String },
}

/// A parsed datagram.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub format: Format,
    pub token: Option<String>,
    pub command: Command,
}

/// A datagram that could not be parsed; `format` says how to reply.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    pub format: Format,
    pub message: String,
}

/// The text commands: name, fields after the name, and the expected form.
const TEXT_FORMS: &[(&str, &str)] = &[
    ("LIST_EC2", "LIST_EC2[:region]"),
    ("LIST_ECS", "LIST_ECS[:region]"),
    ("LIST_EKS", "LIST_EKS[:region]"),
    ("LIST_ALL_SERVICES", "LIST_ALL_SERVICES[:region]"),
    ("START_EC2", "START_EC2:instance_id:region"),
    ("STOP_EC2", "STOP_EC2:instance_id:region"),
    ("START_ECS", "START_ECS:cluster:service:region[:count]"),
    ("STOP_ECS", "STOP_ECS:cluster:service:region"),
    ("START_EKS", "START_EKS:cluster:nodegroup:region[:desired]"),
    ("STOP_EKS", "STOP_EKS:cluster:nodegroup:region"),
    ("SCALE_EKS", "SCALE_EKS:cluster:nodegroup:region:count"),
    (
        "REGISTER_EC2",
        "REGISTER_EC2:instance_id:region[:description]",
    ),
    (
        "REGISTER_ECS",
        "REGISTER_ECS:cluster:service:region[:description]",
    ),
    (
        "REGISTER_EKS",
        "REGISTER_EKS:cluster:nodegroup:region[:description]",
    ),
    ("UNREGISTER_EC2", "UNREGISTER_EC2:instance_id:region"),
    ("UNREGISTER_ECS", "UNREGISTER_ECS:cluster:service:region"),
    ("UNREGISTER_EKS", "UNREGISTER_EKS:cluster:nodegroup:region"),
    ("LIST_REGISTERED_SERVICES", "LIST_REGISTERED_SERVICES"),
    ("STATUS", "STATUS"),
    ("SLEEP_NOW", "SLEEP_NOW"),
    ("WAKE_NOW", "WAKE_NOW"),
    ("PAUSE", "PAUSE:minutes"),
    ("RESUME", "RESUME"),
    ("USER_ACTIVITY", "USER_ACTIVITY"),
];

/// The JSON envelope types.
pub const JSON_TYPES: &[&str] = &[
    "AWS_EC2_LIST",
    "AWS_ECS_LIST",
    "AWS_EKS_LIST",
    "AWS_SERVICE_STATUS",
    "REGISTER_SERVICE",
    "UNREGISTER_SERVICE",
    "LIST_REGISTERED_SERVICES",
    "STATUS",
    "USER_ACTIVITY",
    "PAUSE",
    "RESUME",
    "SLEEP_NOW",
    "WAKE_NOW",
];

/// Largest pause accepted: one week.
const MAX_PAUSE_MINUTES: f64 = 7.0 * 24.0 * 60.0;
/// Largest count accepted for ECS tasks or EKS nodes.
const MAX_COUNT: i64 = 10_000;

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
        token = Some(fields[1].to_string());
        fields.drain(..2);
    }
    let name = fields[0].to_ascii_uppercase();
    let args = &fields[1..];
    let err = |message: String| ParseError {
        format: Format::Text { name: name.clone() },
        message,
    };
    let Some((_, form)) = TEXT_FORMS.iter().find(|(n, _)| *n == name) else {
        return Err(ParseError {
            format: Format::Text {
                name: String::new(),
            },
            message: format!(
                "unknown command `{}`; known commands: {}",
                truncate(fields[0], 64),
                TEXT_FORMS
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    };
    let arity = |min: usize, max: usize| {
        if args.len() < min || args.len() > max {
            Err(err(format!(
                "wrong number of fields for {name}: expected {form}"
            )))
        } else {
            Ok(())
        }
    };
    let region = |i: usize| -> Result<Option<String>, ParseError> {
        match args.get(i) {
            None => Ok(None),
            Some(r) if is_valid_region(r) => Ok(Some(r.to_string())),
            Some(r) => Err(err(format!(
                "bad region `{}`: expected an AWS region such as us-east-1",
                truncate(r, 64)
            ))),
        }
    };
    let id = |kind: Kind| -> Result<ResourceId, ParseError> {
        let n = if kind == Kind::Ec2 { 2 } else { 3 };
        let region = region(n - 1)?.unwrap_or_default();
        let id = match kind {
            Kind::Ec2 => ResourceId::Ec2 {
                instance_id: args[0].to_string(),
                region,
            },
            Kind::Ecs => ResourceId::Ecs {
                cluster_name: args[0].to_string(),
                service_name: args[1].to_string(),
                region,
            },
            Kind::Eks => ResourceId::Eks {
                cluster_name: args[0].to_string(),
                nodegroup_name: args[1].to_string(),
                region,
            },
        };
        check_id(&id).map_err(|e| err(format!("{name}: {e}")))?;
        Ok(id)
    };
    let count = |i: usize, what: &str| -> Result<Option<i32>, ParseError> {
        args.get(i)
            .map(|c| {
                c.parse::<i64>()
                    .ok()
                    .filter(|c| (0..=MAX_COUNT).contains(c))
                    .map(|c| c as i32)
                    .ok_or_else(|| {
                        err(format!(
                            "{what} `{}` must be a whole number from 0 to {MAX_COUNT}",
                            truncate(c, 32)
                        ))
                    })
            })
            .transpose()
    };
    let kind_of = |suffix: &str| match suffix {
        "EC2" => Kind::Ec2,
        "ECS" => Kind::Ecs,
        _ => Kind::Eks,
    };
    let id_fields = |kind: Kind| if kind == Kind::Ec2 { 2 } else { 3 };
    let command = match name.as_str() {
        "LIST_EC2" | "LIST_ECS" | "LIST_EKS" | "LIST_ALL_SERVICES" => {
            arity(0, 1)?;
            Command::List {
                kind: name
                    .strip_prefix("LIST_")
                    .filter(|k| *k != "ALL_SERVICES")
                    .map(kind_of),
                region: region(0)?,
            }
        }
        "START_EC2" | "START_ECS" | "START_EKS" => {
            let kind = kind_of(&name[6..]);
            let n = id_fields(kind);
            arity(n, if kind == Kind::Ec2 { n } else { n + 1 })?;
            Command::Start {
                id: id(kind)?,
                count: count(n, "count")?,
            }
        }
        "STOP_EC2" | "STOP_ECS" | "STOP_EKS" => {
            let kind = kind_of(&name[5..]);
            arity(id_fields(kind), id_fields(kind))?;
            Command::Stop { id: id(kind)? }
        }
        "SCALE_EKS" => {
            arity(4, 4)?;
            Command::ScaleEks {
                id: id(Kind::Eks)?,
                desired: count(3, "count")?.unwrap_or_default(),
            }
        }
        "REGISTER_EC2" | "REGISTER_ECS" | "REGISTER_EKS" => {
            let kind = kind_of(&name[9..]);
            let n = id_fields(kind);
            if args.len() < n {
                arity(n, n)?;
            }
            Command::Register {
                id: id(kind)?,
                // The description is the rest, ':' included.
                description: args[n..].join(":").trim().to_string(),
            }
        }
        "UNREGISTER_EC2" | "UNREGISTER_ECS" | "UNREGISTER_EKS" => {
            let kind = kind_of(&name[11..]);
            arity(id_fields(kind), id_fields(kind))?;
            Command::Unregister { id: id(kind)? }
        }
        "PAUSE" => {
            arity(1, 1)?;
            Command::Pause {
                minutes: minutes(args[0]).map_err(err)?,
            }
        }
        _ => {
            arity(0, 0)?;
            match name.as_str() {
                "LIST_REGISTERED_SERVICES" => Command::ListRegistered,
                "STATUS" => Command::Status,
                "SLEEP_NOW" => Command::SleepNow,
                "WAKE_NOW" => Command::WakeNow,
                "RESUME" => Command::Resume,
                _ => Command::UserActivity,
            }
        }
    };
    Ok(Request {
        format: Format::Text { name },
        token,
        command,
    })
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
    let value: Value = serde_json::from_str(text).map_err(|e| ParseError {
        format: Format::Json {
            id: None,
            kind: "ERROR".into(),
        },
        message: format!(
            "invalid JSON at position {}: {}",
            position(text, e.line(), e.column()),
            e
        ),
    })?;
    let Value::Object(env) = value else {
        return Err(ParseError {
            format: Format::Json {
                id: None,
                kind: "ERROR".into(),
            },
            message: "a JSON envelope must be an object".into(),
        });
    };
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
    let err = |message: String| ParseError {
        format: Format::Json {
            id: id.clone(),
            kind: kind.clone(),
        },
        message,
    };
    if matches!(env.get("id"), Some(v) if !(v.is_string() || v.is_number() || v.is_null())) {
        return Err(err("`id` must be a string".into()));
    }
    if !env.get("type").is_some_and(Value::is_string) {
        return Err(err(format!(
            "`type` must be a string, one of: {}",
            JSON_TYPES.join(", ")
        )));
    }
    let token = match env.get("token") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => Some(t.clone()),
        Some(_) => return Err(err("`token` must be a string".into())),
    };
    let empty = Map::new();
    let content = match env.get("content") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(_) => return Err(err("`content` must be an object".into())),
    };
    let c = Content(content);
    let command = match kind.as_str() {
        "AWS_EC2_LIST" | "AWS_ECS_LIST" | "AWS_EKS_LIST" => Command::List {
            kind: Some(match &kind[4..7] {
                "EC2" => Kind::Ec2,
                "ECS" => Kind::Ecs,
                _ => Kind::Eks,
            }),
            region: c.region(false).map_err(err)?,
        },
        "AWS_SERVICE_STATUS" => {
            let id = c.resource_id().map_err(err)?;
            let action = c.string("action", true).map_err(err)?.unwrap_or_default();
            match action.to_ascii_uppercase().as_str() {
                "START" => Command::Start {
                    id,
                    count: c.count("desired_size").map_err(err)?,
                },
                "STOP" => Command::Stop { id },
                other => {
                    return Err(err(format!(
                        "content.action `{}` must be START or STOP",
                        truncate(other, 32)
                    )))
                }
            }
        }
        "REGISTER_SERVICE" => Command::Register {
            id: c.resource_id().map_err(err)?,
            description: c
                .string("description", false)
                .map_err(err)?
                .unwrap_or_default(),
        },
        "UNREGISTER_SERVICE" => Command::Unregister {
            id: c.resource_id().map_err(err)?,
        },
        "LIST_REGISTERED_SERVICES" => Command::ListRegistered,
        "STATUS" => Command::Status,
        "USER_ACTIVITY" => Command::UserActivity,
        "RESUME" => Command::Resume,
        "SLEEP_NOW" => Command::SleepNow,
        "WAKE_NOW" => Command::WakeNow,
        "PAUSE" => {
            let m = match content.get("minutes") {
                Some(Value::Number(n)) => minutes(&n.to_string()),
                Some(Value::String(s)) => minutes(s),
                _ => Err("content.minutes must be a number above 0".into()),
            };
            Command::Pause {
                minutes: m.map_err(err)?,
            }
        }
        other => {
            return Err(err(format!(
                "unknown type `{}`; known types: {}",
                truncate(other, 64),
                JSON_TYPES.join(", ")
            )))
        }
    };
    Ok(Request {
        format: Format::Json { id, kind },
        token,
        command,
    })
}

/// Typed access to an envelope's `content`.
struct Content<'a>(&'a Map<String, Value>);

impl Content<'_> {
    fn string(&self, key: &str, required: bool) -> Result<Option<String>, String> {
        match self.0.get(key) {
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
        match self.0.get(key) {
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

    fn resource_id(&self) -> Result<ResourceId, String> {
        let service_type = self.string("service_type", true)?.unwrap_or_default();
        let region = self.region(true)?.unwrap_or_default();
        let req =
            |k: &str| -> Result<String, String> { Ok(self.string(k, true)?.unwrap_or_default()) };
        let id = match service_type.to_ascii_uppercase().as_str() {
            "EC2" => ResourceId::Ec2 {
                instance_id: req("instance_id")?,
                region,
            },
            "ECS" => ResourceId::Ecs {
                cluster_name: req("cluster_name")?,
                service_name: req("service_name")?,
                region,
            },
            "EKS" => ResourceId::Eks {
                cluster_name: req("cluster_name")?,
                nodegroup_name: req("nodegroup_name")?,
                region,
            },
            other => {
                return Err(format!(
                    "content.service_type `{}` must be EC2, ECS or EKS",
                    truncate(other, 32)
                ))
            }
        };
        check_id(&id)?;
        Ok(id)
    }
}

/// Builds the reply to a request: JSON for text commands
/// (`{"ok","command","result"|"error"}`), an envelope for JSON requests.
/// `reply_id` and `timestamp` come from the caller.
pub fn reply(
    format: &Format,
    result: Result<Value, String>,
    reply_id: &str,
    timestamp: &str,
) -> Value {
    match format {
        Format::Text { name } => {
            let command = if name.is_empty() {
                Value::Null
            } else {
                Value::from(name.as_str())
            };
            match result {
                Ok(result) => json!({"ok": true, "command": command, "result": result}),
                Err(error) => json!({"ok": false, "command": command, "error": error}),
            }
        }
        Format::Json { id, kind } => {
            let (kind, content) = match result {
                Ok(content) => (kind.as_str(), content),
                Err(error) => ("ERROR", json!({ "error": error, "request_type": kind })),
            };
            json!({
                "id": reply_id,
                "reply_to": id,
                "type": kind,
                "timestamp": timestamp,
                "source": "cloudnap",
                "content": content,
            })
        }
    }
}

/// Splits a serialized reply into datagrams of at most `max` bytes. A reply
/// that fits is sent as is; a larger one becomes `n` parts, each
/// `{"reply_to","part":i,"parts":n,"data":"<slice of the reply>"}`
/// (1-based `part`); concatenating `data` in order gives the reply.
pub fn split(reply: &str, reply_to: Option<&str>, max: usize) -> Vec<String> {
    if reply.len() <= max {
        return vec![reply.to_string()];
    }
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
        let ecs = ResourceId::Ecs {
            cluster_name: "c".into(),
            service_name: "s".into(),
            region: "us-east-1".into(),
        };
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
            Command::ScaleEks { desired: 3, .. }
        ));
        assert_eq!(
            cmd("REGISTER_ECS:c:s:us-east-1:my api: v2"),
            Command::Register {
                id: ecs,
                description: "my api: v2".into()
            }
        );
        assert_eq!(cmd("PAUSE:60"), Command::Pause { minutes: 60.0 });
        assert_eq!(cmd("STATUS"), Command::Status);
        let r = parse(b"TOKEN:s3cr3t-token:STATUS").unwrap();
        assert_eq!(r.token.as_deref(), Some("s3cr3t-token"));
        assert_eq!(r.command, Command::Status);
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
                kind: "AWS_SERVICE_STATUS".into()
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
                kind: "NOPE".into()
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

    #[test]
    fn replies_have_the_documented_shapes() {
        let text = Format::Text {
            name: "STATUS".into(),
        };
        assert_eq!(
            reply(&text, Ok(json!({"a":1})), "r", "t"),
            json!({"ok": true, "command": "STATUS", "result": {"a": 1}})
        );
        let j = Format::Json {
            id: Some("9".into()),
            kind: "STATUS".into(),
        };
        let r = reply(&j, Err("boom".into()), "r1", "2026-01-01T00:00:00Z");
        assert_eq!(r["type"], "ERROR");
        assert_eq!(r["reply_to"], "9");
        assert_eq!(r["id"], "r1");
        assert_eq!(r["content"]["error"], "boom");
    }

    #[test]
    fn split_parts_reassemble() {
        let big = json!({"data": "é\"x".repeat(50_000)}).to_string();
        let parts = split(&big, Some("id"), 60_000);
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
        assert_eq!(split("{}", None, 10), vec!["{}".to_string()]);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn parse_never_panics_on_command_like_text(s in "(TOKEN:[a-z]{0,9}:)?[A-Z_]{0,20}(:[a-z0-9.\\-]{0,12}){0,6}") {
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
