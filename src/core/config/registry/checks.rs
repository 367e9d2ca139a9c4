//! The checks of a services.yaml entry's fields, each naming the field.

use super::{Entry, RawEntry, Registry};
use crate::core::config::settings::is_valid_region;
use crate::core::model::resource::ResourceId;
use crate::core::policy::order::{self, WakePolicy};
use std::time::Duration;

/// Checks an entry's `desired_size` and `ready_port`.
fn check_numbers(desired_size: Option<i32>, ready_port: Option<u16>) -> Result<(), String> {
    match (desired_size, ready_port) {
        (Some(d), _) if d < 0 => Err(format!("desired_size {d} must be 0 or more")),
        (_, Some(0)) => Err("ready_port 0 is not a TCP port".to_string()),
        _ => Ok(()),
    }
}

/// Checks a resource name: non-empty, no `:` (the UDP field separator), no whitespace.
pub fn check_name(what: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        Err(format!("{what} is empty"))
    } else if value.contains(':') || value.contains(char::is_whitespace) || value.len() > 255 {
        Err(format!(
            "{what} `{value}` must be at most 255 characters with no ':' or spaces"
        ))
    } else {
        Ok(())
    }
}

/// Checks an entry's fields after its names: profile, desired_size,
/// ready_port, ssh_host and ssh_address.
pub(super) fn check_options(e: &RawEntry) -> Result<(), String> {
    match &e.profile {
        Some(p) if p.is_empty() || p.contains(char::is_whitespace) => {
            return Err(format!(
                "profile `{p}` must be a profile name without spaces"
            ))
        }
        _ => {}
    }
    check_numbers(e.desired_size, e.ready_port)?;
    wake_policy(e)?;
    own_timeout(e)?;
    check_ssh([&e.ssh_host, &e.ssh_address])
}

/// The longest `timeout_minutes` (a week, as the settings' timeout).
const MAX_TIMEOUT_MINUTES: f64 = 10_080.0;

/// The entry's own timeout (`timeout_minutes`), if any: more than 0, at
/// most a week, and not on a shared resource (the team rule sleeps it).
pub(super) fn own_timeout(e: &RawEntry) -> Result<Option<Duration>, String> {
    let Some(m) = e.timeout_minutes else {
        return Ok(None);
    };
    if e.shared {
        return Err("timeout_minutes: a shared resource sleeps when every team member is away, not by a timeout of its own".to_string());
    }
    if !(m.is_finite() && m > 0.0 && m <= MAX_TIMEOUT_MINUTES) {
        return Err(format!(
            "timeout_minutes {m} must be more than 0 and at most {MAX_TIMEOUT_MINUTES}"
        ));
    }
    Ok(Some(Duration::from_millis(
        (m * 60_000.0).round().max(1.0) as u64
    )))
}

/// `timeout` in minutes as services.yaml and `check` write it: `10`, `0.1`.
pub fn minutes(timeout: Duration) -> f64 {
    timeout.as_millis() as f64 / 60_000.0
}

/// The entry's `wake:` policy: `auto` when not given.
pub(super) fn wake_policy(e: &RawEntry) -> Result<WakePolicy, String> {
    let Some(word) = &e.wake else {
        return Ok(WakePolicy::Auto);
    };
    WakePolicy::parse(word).ok_or_else(|| {
        let words: Vec<&str> = WakePolicy::ALL.iter().map(|p| p.name()).collect();
        format!("wake `{word}` must be one of {}", words.join(", "))
    })
}

/// Checks `ssh_host` and `ssh_address`: a name or address (with a port,
/// for `ssh_address`) with no spaces.
fn check_ssh([host, address]: [&Option<String>; 2]) -> Result<(), String> {
    for (field, value) in [("ssh_host", host), ("ssh_address", address)] {
        match value {
            Some(v) if v.is_empty() || v.contains(char::is_whitespace) || v.len() > 255 => {
                return Err(format!(
                    "{field} `{v}` must be a host name or address with no spaces"
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

/// What is wrong with the `after:` fields of `entries`: names that match
/// no resource (or several, or itself), and cycles.
pub fn check_order(entries: &[Entry]) -> Vec<String> {
    let named: Vec<(ResourceId, Option<String>)> = (entries.iter())
        .map(|e| (e.id.clone(), e.after.clone()))
        .collect();
    match order::resolve(&named) {
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
        Ok(_) => match order::stages(&Registry::order(entries)) {
            Err(e) => vec![e.to_string()],
            Ok(_) => Vec::new(),
        },
    }
}

/// Checks every field of a resource id; the messages name the field.
pub fn check_id(id: &ResourceId) -> Result<(), String> {
    if !is_valid_region(id.region()) {
        return Err(format!(
            "region `{}` is not an AWS region name such as us-east-1",
            id.region()
        ));
    }
    let spec = id.kind().spec();
    for (field, name) in spec.names.iter().zip(id.names()) {
        check_name(field.key, name)?;
    }
    (spec.check)(id.names())
}
