//! Reading settings.json's values: each key checked against its type and
//! range, errors and warnings named by their dotted path.

use serde_json::{Map, Value};

/// Keys of the original cloudnap's settings.json that cloudnap does not
/// read, each with what it does instead: accepted, explained in the log.
pub const ORIGINAL_KEYS: &[(&str, &str)] = &[(
    "aws.credentials",
    "cloudnap keeps no AWS keys in settings.json; it uses the standard AWS \
     credential chain (`aws.profile`, ~/.aws/credentials and ~/.aws/config, \
     environment variables, SSO), and the tray's \"AWS credentials…\" dialog \
     writes ~/.aws for you",
)];

/// Whether `s` looks like an AWS region name such as `us-east-1` or `us-gov-west-1`.
pub fn is_valid_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].len() <= 2
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
}

/// A section of the document: its dotted path and, if present, its object.
pub(super) struct Sec<'a> {
    pub(super) path: String,
    pub(super) map: Option<&'a Map<String, Value>>,
}

impl<'a> Sec<'a> {
    pub(super) fn key(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }
    pub(super) fn get(&self, key: &str) -> Option<&'a Value> {
        self.map?.get(key).filter(|v| !v.is_null())
    }
}

/// Collects errors and warnings while reading values.
#[derive(Default)]
pub(super) struct Checker {
    pub(super) errors: Vec<String>,
    pub(super) warnings: Vec<String>,
}

impl Checker {
    /// Warns of each key of `sec` not in `known`, explaining the
    /// original's keys ([`ORIGINAL_KEYS`]).
    pub(super) fn unknown(&mut self, sec: &Sec, known: &[&str]) {
        for k in sec.map.into_iter().flat_map(|m| m.keys()) {
            if k.starts_with('_') || known.contains(&k.as_str()) {
                continue;
            }
            let path = sec.key(k);
            self.warnings.push(match ORIGINAL_KEYS.iter().find(|(o, _)| *o == path) {
                Some((_, instead)) => format!(
                    "settings.json: `{path}` (a key of the original cloudnap) is not used: {instead}"
                ),
                None => format!("settings.json: unknown key `{path}` is ignored"),
            });
        }
    }

    pub(super) fn sec<'a>(&mut self, parent: &Sec<'a>, name: &str, known: &[&str]) -> Sec<'a> {
        let path = parent.key(name);
        let map = match parent.get(name) {
            None => None,
            Some(Value::Object(m)) => Some(m),
            Some(other) => {
                self.bad(&path, "an object", other);
                None
            }
        };
        let sec = Sec { path, map };
        self.unknown(&sec, known);
        sec
    }

    pub(super) fn bad(&mut self, key: &str, allowed: &str, got: &Value) {
        // A secret is never echoed, not even a malformed one.
        let got = if key.ends_with("token") {
            "a value not shown here".to_string()
        } else {
            got.to_string()
        };
        self.errors
            .push(format!("`{key}` must be {allowed} (got {got})"));
    }

    pub(super) fn num(&mut self, s: &Sec, key: &str, default: f64, min: f64, max: f64) -> f64 {
        match s.get(key) {
            None => default,
            Some(v) => match v.as_f64() {
                Some(n) if n >= min && n <= max => n,
                _ => {
                    self.bad(&s.key(key), &format!("a number from {min} to {max}"), v);
                    default
                }
            },
        }
    }

    /// A threshold: the default when missing, off (`None`) when `null` or 0.
    pub(super) fn threshold(&mut self, s: &Sec, key: &str, default: f64, max: f64) -> Option<f64> {
        match s.map.and_then(|m| m.get(key)) {
            None => Some(default),
            Some(Value::Null) => None,
            Some(v) => match v.as_f64() {
                Some(0.0) => None,
                Some(n) if n > 0.0 && n <= max => Some(n),
                _ => {
                    self.bad(
                        &s.key(key),
                        &format!("a number from 0 to {max}, or null (0 and null turn it off)"),
                        v,
                    );
                    None
                }
            },
        }
    }

    pub(super) fn opt_int(&mut self, s: &Sec, key: &str, min: u64, max: u64) -> Option<u64> {
        let v = s.get(key)?;
        match v.as_u64() {
            Some(n) if n >= min && n <= max => Some(n),
            _ => {
                self.bad(
                    &s.key(key),
                    &format!("a whole number from {min} to {max}"),
                    v,
                );
                None
            }
        }
    }

    pub(super) fn int(&mut self, s: &Sec, key: &str, default: u64, min: u64, max: u64) -> u64 {
        self.opt_int(s, key, min, max).unwrap_or(default)
    }

    pub(super) fn boolean(&mut self, s: &Sec, key: &str, default: bool) -> bool {
        match s.get(key) {
            None => default,
            Some(Value::Bool(b)) => *b,
            Some(v) => {
                self.bad(&s.key(key), "true or false", v);
                default
            }
        }
    }

    pub(super) fn opt_string(
        &mut self,
        s: &Sec,
        key: &str,
        check: impl Fn(&str) -> Result<(), &'static str>,
    ) -> Option<String> {
        let v = s.get(key)?;
        match v.as_str().map(|t| (t, check(t))) {
            Some((t, Ok(()))) => Some(t.to_string()),
            Some((_, Err(allowed))) => {
                self.bad(&s.key(key), allowed, v);
                None
            }
            None => {
                self.bad(&s.key(key), "a string", v);
                None
            }
        }
    }

    pub(super) fn regions(&mut self, s: &Sec, key: &str) -> Vec<String> {
        let default = vec!["us-east-1".to_string()];
        let Some(v) = s.get(key) else { return default };
        let list: Option<Vec<&str>> = v
            .as_array()
            .and_then(|a| a.iter().map(Value::as_str).collect());
        match list {
            Some(l) if !l.is_empty() && l.iter().all(|r| is_valid_region(r)) => {
                l.into_iter().map(String::from).collect()
            }
            _ => {
                self.bad(
                    &s.key(key),
                    "a non-empty list of AWS region names such as [\"us-east-1\"]",
                    v,
                );
                default
            }
        }
    }

    /// A list of strings (none by default).
    pub(super) fn words(&mut self, s: &Sec, key: &str) -> Vec<String> {
        let Some(v) = s.get(key) else {
            return Vec::new();
        };
        let list: Option<Vec<String>> = v
            .as_array()
            .and_then(|a| a.iter().map(|w| w.as_str().map(String::from)).collect());
        list.unwrap_or_else(|| {
            self.bad(&s.key(key), "a list of strings such as [\"Firefox\"]", v);
            Vec::new()
        })
    }
}
