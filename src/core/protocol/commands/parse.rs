//! Datagram to [`Request`]: text, JSON and signed forms, checked against the
//! tables.

use super::*;

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

pub(super) fn parse_text(text: &str) -> Result<Request, ParseError> {
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
pub(super) fn parse_signed_text(text: &str) -> Result<Request, ParseError> {
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
pub(super) fn signature(
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
pub(super) fn signed(signature: Signature) -> Result<Request, ParseError> {
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
pub(super) fn read_text(spec: &TextCommand, args: &[&str]) -> Result<Command, String> {
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
pub(super) fn report_days(days: Option<i64>) -> Result<Command, String> {
    match days.unwrap_or(7) {
        d @ 1..=3660 => Ok(Command::Report { days: d as u32 }),
        d => Err(format!("days `{d}` must be from 1 to 3660")),
    }
}

pub(super) fn minutes(s: &str) -> Result<f64, String> {
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

pub(super) fn lease(s: &str) -> Result<f64, String> {
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

pub(super) fn hold_id(s: &str) -> Result<u64, String> {
    s.parse::<u64>()
        .map_err(|_| format!("hold id `{}` must be a whole number", truncate(s, 32)))
}

pub(super) fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// The 0-based byte offset of a 1-based line and column.
pub(super) fn position(text: &str, line: usize, column: usize) -> usize {
    text.split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum::<usize>()
        + column.saturating_sub(1)
}

pub(super) fn parse_json(text: &str) -> Result<Request, ParseError> {
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
pub(super) fn parse_signed_json(
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
pub(super) struct Content<'a> {
    pub(super) map: &'a Map<String, Value>,
    /// The kind of resource of the envelope's type, if any.
    pub(super) kind: Option<Kind>,
}

impl Content<'_> {
    pub(super) fn string(&self, key: &str, required: bool) -> Result<Option<String>, String> {
        match self.map.get(key) {
            None | Some(Value::Null) if !required => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            None | Some(Value::Null) => Err(format!("content.{key} is required")),
            Some(other) => Err(format!("content.{key} must be a string (got {other})")),
        }
    }

    pub(super) fn region(&self, required: bool) -> Result<Option<String>, String> {
        match self.string("region", required)? {
            Some(r) if !is_valid_region(&r) => Err(format!(
                "bad region `{}`: expected an AWS region such as us-east-1",
                truncate(&r, 64)
            )),
            r => Ok(r),
        }
    }

    pub(super) fn count(&self, key: &str) -> Result<Option<i32>, String> {
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
    pub(super) fn number(
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

    pub(super) fn hold_id(&self) -> Result<u64, String> {
        match self.map.get("id") {
            Some(Value::Number(n)) => hold_id(&n.to_string()),
            Some(Value::String(s)) => hold_id(s),
            _ => Err("content.id must be a hold id (a whole number)".into()),
        }
    }

    pub(super) fn resource_id(&self) -> Result<ResourceId, String> {
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
