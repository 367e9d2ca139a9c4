//! [`Reply`] to datagrams: the text and JSON envelopes, split to fit.

use super::*;

/// The reply's `timestamp` for `now`, in the request's form.
pub(super) fn timestamp(form: TimestampForm, now: SystemTime) -> Value {
    let unix = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    match form {
        TimestampForm::Rfc3339 => humantime::format_rfc3339_millis(now).to_string().into(),
        TimestampForm::UnixSeconds => unix.as_secs().into(),
        TimestampForm::UnixFractional => ((unix.as_millis() as f64) / 1000.0).into(),
    }
}

/// A text command's reply: `{"ok", "command", "result"|"error", "code"?}`.
#[derive(serde::Serialize)]
pub(super) struct TextReply<'a, T> {
    pub(super) ok: bool,
    pub(super) command: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) result: Option<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) code: Option<&'a str>,
}

/// An envelope's error content.
#[derive(serde::Serialize)]
pub(super) struct ErrorContent<'a> {
    pub(super) message: &'a str,
    pub(super) error: &'a str,
    pub(super) request_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) code: Option<&'a str>,
}

/// A reply envelope.
#[derive(serde::Serialize)]
pub(super) struct EnvelopeReply<'a, C> {
    pub(super) id: &'a str,
    pub(super) reply_to: &'a Option<String>,
    #[serde(rename = "type")]
    pub(super) kind: &'a str,
    pub(super) timestamp: Value,
    pub(super) source: &'static str,
    pub(super) content: C,
}

/// Either a result or an error's content, serialized as itself.
#[derive(serde::Serialize)]
#[serde(untagged)]
pub(super) enum ReplyContent<'a, T> {
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
