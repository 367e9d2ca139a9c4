//! Changing one value in the user's `settings.json` text while keeping
//! everything else (order, comments keys, spacing) as written.

use crate::core::config::settings::{Settings, SettingsError};

/// `text` with `aws.profile` set to `profile` (see [`set_aws_string`]).
pub fn set_aws_profile(text: &str, profile: &str) -> Result<String, SettingsError> {
    set_aws_string(text, "profile", profile)
}

/// `text` with `aws.<key>` set to the string `value`. Refuses a file that
/// is not valid settings (so a broken file is never rewritten) and a result
/// that would not be.
pub fn set_aws_string(text: &str, key: &str, value: &str) -> Result<String, SettingsError> {
    Settings::parse(text)?;
    let out = edit(text, key, value);
    Settings::parse(&out)?;
    Ok(out)
}

fn edit(text: &str, wanted: &str, value: &str) -> String {
    let value = serde_json::to_string(value).expect("a string serializes");
    let b = text.as_bytes();
    // The key that opened each enclosing container (None for the top level).
    let mut stack: Vec<Option<String>> = Vec::new();
    let mut key: Option<String> = None;
    let mut aws_open = None;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                let end = string_end(b, i);
                let j = skip_ws(b, end + 1);
                if b.get(j) == Some(&b':') {
                    let name = serde_json::from_str::<String>(&text[i..=end]).unwrap_or_default();
                    let v = skip_ws(b, j + 1);
                    if name == wanted && in_aws(&stack) {
                        let v_end = if b[v] == b'"' {
                            string_end(b, v) + 1
                        } else {
                            v + b[v..]
                                .iter()
                                .position(|c| {
                                    matches!(c, b',' | b'}' | b' ' | b'\n' | b'\r' | b'\t')
                                })
                                .unwrap_or(b.len() - v)
                        };
                        return format!("{}{value}{}", &text[..v], &text[v_end..]);
                    }
                    key = Some(name);
                    i = j + 1;
                } else {
                    i = end + 1;
                }
                continue;
            }
            b'{' | b'[' => {
                stack.push(key.take());
                if in_aws(&stack) {
                    aws_open = Some(i);
                }
            }
            b'}' | b']' => {
                stack.pop();
            }
            _ => {}
        }
        i += 1;
    }
    // No such key: add it to the `aws` object, or add an `aws` object.
    let key = serde_json::to_string(wanted).expect("a string serializes");
    let (at, member) = match aws_open {
        Some(open) => (open, format!("{key}: {value}")),
        None => (
            text.find('{').expect("settings are an object"),
            format!("\"aws\": {{ {key}: {value} }}"),
        ),
    };
    let rest = &text[at + 1..];
    let sep = if rest.trim_start().starts_with('}') {
        ""
    } else {
        ","
    };
    format!("{}{member}{sep} {rest}", &text[..=at])
}

fn in_aws(stack: &[Option<String>]) -> bool {
    matches!(stack, [None, Some(k)] if k == "aws")
}

/// Index of the closing quote of the string starting at `start`.
fn string_end(b: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return i,
            _ => i += 1,
        }
    }
    b.len() - 1
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(text: &str) -> Option<String> {
        Settings::parse(text).unwrap().0.aws.profile
    }

    #[test]
    fn replaces_null_or_a_string_in_place_keeping_the_rest() {
        let text = crate::core::config::settings::DEFAULT_SETTINGS_JSON;
        let out = set_aws_profile(text, "dev").unwrap();
        assert_eq!(profile(&out).as_deref(), Some("dev"));
        assert_eq!(
            out,
            text.replace("\"profile\": null", "\"profile\": \"dev\"")
        );
        let again = set_aws_profile(&out, "prod \"x\"").unwrap_err();
        assert!(again.to_string().contains("aws.profile"), "{again}");
        let out2 = set_aws_profile(&out, "prod").unwrap();
        assert_eq!(
            out2,
            text.replace("\"profile\": null", "\"profile\": \"prod\"")
        );
    }

    #[test]
    fn sets_any_aws_string_key() {
        let role = "arn:aws:iam::1:role/cloudnap-deadline";
        let text = crate::core::config::settings::DEFAULT_SETTINGS_JSON;
        let out = set_aws_string(text, "deadline_role_arn", role).unwrap();
        let parsed = Settings::parse(&out).unwrap().0;
        assert_eq!(parsed.aws.deadline_role_arn.as_deref(), Some(role));
        assert_eq!(parsed.aws.profile, None);
        let out = set_aws_string(
            r#"{"aws": {"regions": ["eu-west-1"]}}"#,
            "deadline_role_arn",
            role,
        )
        .unwrap();
        assert_eq!(
            out,
            format!(r#"{{"aws": {{"deadline_role_arn": "{role}", "regions": ["eu-west-1"]}}}}"#)
        );
    }

    #[test]
    fn adds_the_key_or_the_section_when_missing() {
        let out = set_aws_profile(r#"{"aws": {"regions": ["eu-west-1"]}}"#, "dev").unwrap();
        assert_eq!(
            out,
            r#"{"aws": {"profile": "dev", "regions": ["eu-west-1"]}}"#
        );
        let out = set_aws_profile(r#"{"aws": {}}"#, "dev").unwrap();
        assert_eq!(profile(&out).as_deref(), Some("dev"));
        let out = set_aws_profile("{\n  \"keyboard\": {\"profile\": 1}\n}", "dev").unwrap();
        assert_eq!(profile(&out).as_deref(), Some("dev"));
        assert!(out.contains("\"keyboard\": {\"profile\": 1}"));
        assert_eq!(
            profile(&set_aws_profile("{}", "dev").unwrap()).as_deref(),
            Some("dev")
        );
    }

    #[test]
    fn an_invalid_file_is_refused() {
        assert!(set_aws_profile("{ not json", "dev").is_err());
    }
}
