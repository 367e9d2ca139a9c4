//! `settings.json`: parse, validate and resolve into [`Settings`].
//!
//! Missing keys take defaults, unknown keys produce a warning naming the key,
//! and invalid values produce an error naming the key and what is allowed.
//! Keys starting with `_` are comments and are ignored.
//!
//! The detector sections (one per section of [`list::DETECTORS`]) are read
//! inside `activity_monitor`, as the original cloudnap's README documents
//! them, or at the top level; inside `activity_monitor` wins when both are
//! there. Keys of the original that cloudnap replaced are explained, not
//! rejected ([`ORIGINAL_KEYS`]).

pub use super::checker::{is_valid_region, ORIGINAL_KEYS};
use super::checker::{Checker, Sec};
use crate::detect::definition::{DetectorSettings, Reading, Section, Values};
use crate::detect::list;
use crate::kinds::{Kind, Metric};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

/// The default `settings.json` written on first run.
pub const DEFAULT_SETTINGS_JSON: &str = include_str!("../../../settings.json");

/// Why `settings.json` could not be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SettingsError {
    /// Not valid JSON.
    #[error("settings.json line {line} column {column}: {message}")]
    Json {
        line: usize,
        column: usize,
        message: String,
    },
    /// Valid JSON with invalid values; each message names the key.
    #[error("settings.json is invalid:\n  {}", .0.join("\n  "))]
    Invalid(Vec<String>),
}

/// Idle timing.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivitySettings {
    /// No activity for this long puts resources to sleep.
    pub inactivity_timeout: Duration,
    /// How long before sleep the user is warned.
    pub warning: Duration,
}

/// AWS access.
#[derive(Debug, Clone, PartialEq)]
pub struct AwsSettings {
    /// Regions listed by `LIST_*` commands when none is given.
    pub regions: Vec<String>,
    /// Named profile from `~/.aws/config`; `None` uses the default chain.
    pub profile: Option<String>,
    /// Endpoint override for every SDK client (a local emulator).
    pub endpoint_url: Option<String>,
    /// How often the state of registered resources is refreshed.
    pub service_state_check_interval: Duration,
    /// Report what sleep/wake would do without changing anything.
    pub dry_run: bool,
    /// Upper bound on AWS calls in flight at once.
    pub max_concurrent_calls: usize,
    /// Resources tagged `cloudnap:managed=true` in `regions` are managed as
    /// if they were in services.yaml.
    pub tag_discovery: bool,
    /// Sleep hibernates every EC2 instance configured for hibernation, as
    /// `hibernate: true` on its entry does.
    pub ec2_hibernate: bool,
    /// The AWS-side deadline (see [`crate::core::policy::deadline`]): while
    /// resources are awake, AWS itself puts them to sleep if cloudnap has
    /// not been there to move it on.
    pub deadline: bool,
    /// How long after the idle timeout the deadline comes.
    pub deadline_margin: Duration,
    /// The IAM role EventBridge Scheduler assumes to put resources to sleep;
    /// without it no deadline is armed.
    pub deadline_role_arn: Option<String>,
}

/// Team mode (the `team` section; absent, or without a `table`, it is
/// off): shared resources sleep only when every member is away,
/// coordinated through a DynamoDB table (see [`crate::core::policy::team`]).
#[derive(Debug, Clone, PartialEq)]
pub struct TeamSettings {
    /// The DynamoDB table every member uses.
    pub table: String,
    /// The table's region (the same for every member).
    pub region: String,
    /// This member's id; `None`: the STS caller ARN `@` the host name.
    pub member: Option<String>,
    /// How often the presence item is renewed.
    pub heartbeat: Duration,
    /// How long a presence item lasts unless renewed.
    pub lease: Duration,
}

/// `prewake` in settings.json.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrewakeSettings {
    pub enabled: bool,
    /// No plan before the history covers this many weeks.
    pub min_weeks_of_history: u32,
    /// Pre-woken resources go back to sleep when the user has not come
    /// this long after their usual time.
    pub grace: Duration,
}

/// The busy veto: resources at work (by their CloudWatch metrics, or an ECS
/// deployment in progress) are left running by a sleep.
#[derive(Debug, Clone, PartialEq)]
pub struct BusySettings {
    pub enabled: bool,
    /// How far back the metrics are read.
    pub window: Duration,
    /// An ECS service with a deployment in progress is busy.
    pub ecs_deployments: bool,
    /// The threshold of each enabled rule of [`crate::core::policy::busy::RULES`],
    /// by its settings key; a rule without one is off.
    pub thresholds: BTreeMap<&'static str, f64>,
}

impl BusySettings {
    /// The threshold of the rule with settings key `setting`, if it is on.
    pub fn threshold(&self, setting: &str) -> Option<f64> {
        self.thresholds.get(setting).copied()
    }
}

/// UDP command server.
#[derive(Debug, Clone, PartialEq)]
pub struct UdpSettings {
    pub enabled: bool,
    pub ip: IpAddr,
    pub port: u16,
    /// Largest datagram accepted, in bytes.
    pub buffer_size: usize,
    /// Shared secret every command must carry; required off loopback.
    pub token: Option<String>,
    /// Where state changes and replies are echoed, if set.
    pub events_port: Option<u16>,
    /// AWS-calling commands per second accepted from one address.
    pub rate_limit_per_second: f64,
    /// Commands must be signed (`AUTH:`), `TOKEN:` refused: always when
    /// `ip` is not loopback.
    pub require_signature: bool,
    /// Accept loopback commands from other local users (normally only the
    /// user running cloudnap, and root).
    pub allow_other_users: bool,
}

/// Which desktop notifications are shown.
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationSettings {
    /// "Your N resources will sleep in 2 minutes".
    pub warning: bool,
    /// "Asleep: ..." after a sleep.
    pub asleep: bool,
    /// "Awake again: ..." after a wake.
    pub awake: bool,
    /// Failed resources, invalid config edits, bad credentials.
    pub errors: bool,
}

/// The desktop shell: tray icon, notifications, credential dialog, logs.
#[derive(Debug, Clone, PartialEq)]
pub struct DesktopSettings {
    /// Show the tray icon (needs a display and a tray host).
    pub tray: bool,
    pub notifications: NotificationSettings,
    /// Open the credential dialog at start when no credentials work.
    pub credentials_dialog: bool,
    /// Daily log files kept.
    pub log_keep_days: usize,
}

/// Everything in `settings.json`, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub activity: ActivitySettings,
    /// Every detector's section (see [`crate::detect::list`]).
    pub detectors: DetectorSettings,
    pub aws: AwsSettings,
    /// Team mode; `None`: off.
    pub team: Option<TeamSettings>,
    pub busy: BusySettings,
    /// Waking before the usual arrival (see [`crate::core::policy::prewake`]).
    pub prewake: PrewakeSettings,
    pub udp: UdpSettings,
    pub desktop: DesktopSettings,
}

impl Default for Settings {
    fn default() -> Self {
        // An empty object resolves every key to its default.
        Settings::parse("{}").expect("defaults are valid").0
    }
}

fn minutes(m: f64) -> Duration {
    Duration::from_secs_f64(m * 60.0)
}

impl Settings {
    /// Parses, validates and resolves `settings.json` text. Returns the
    /// settings and non-fatal warnings (unknown keys).
    pub fn parse(text: &str) -> Result<(Settings, Vec<String>), SettingsError> {
        let root = parse_json(text)?;
        let mut c = Checker::default();
        let sections = validate(&root, &mut c);
        let settings = resolve(sections, &mut c);
        if !c.errors.is_empty() {
            return Err(SettingsError::Invalid(c.errors));
        }
        Ok((settings, c.warnings))
    }
}

/// Step 1: JSON text to a tree; syntax errors carry their line and column.
fn parse_json(text: &str) -> Result<Value, SettingsError> {
    serde_json::from_str(text).map_err(|e| SettingsError::Json {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })
}

/// Every section, read and range-checked but not yet [`resolve`]d.
struct Sections {
    activity: ActivityMinutes,
    detectors: DetectorSettings,
    aws: AwsSettings,
    team: Option<TeamSettings>,
    busy: BusySettings,
    prewake: PrewakeSettings,
    udp: UdpSettings,
    desktop: DesktopSettings,
}

/// `activity_monitor` as written, in minutes.
struct ActivityMinutes {
    timeout: f64,
    warning: f64,
}

/// Step 2: each section read by its own parser, in document order. Missing
/// keys take their defaults; unknown keys warn; bad values are errors.
fn validate(root: &Value, c: &mut Checker) -> Sections {
    let map = match root {
        Value::Object(m) => Some(m),
        _ => {
            c.errors.push("the top level must be a JSON object".into());
            None
        }
    };
    let root = Sec {
        path: String::new(),
        map,
    };
    let detectors = list::sections();
    let mut known = vec![
        "activity_monitor",
        "aws",
        "team",
        "busy",
        "prewake",
        "udp_server",
        "desktop",
    ];
    known.extend(detectors.iter().map(|d| d.name));
    c.unknown(&root, &known);
    let mut known = vec!["inactivity_timeout_minutes", "warning_minutes"];
    known.extend(detectors.iter().map(|d| d.name));
    let activity = c.sec(&root, "activity_monitor", &known);
    Sections {
        activity: activity_monitor(c, &activity),
        detectors: DetectorSettings::new(
            detectors
                .into_iter()
                .map(|d| detector(c, &root, &activity, d))
                .collect(),
        ),
        aws: aws(c, &root),
        team: team(c, &root),
        busy: busy(c, &root),
        prewake: prewake(c, &root),
        udp: udp_server(c, &root),
        desktop: desktop(c, &root),
    }
}

/// Step 3: the rules between fields: the warning never exceeds the timeout,
/// and a server bound off loopback needs a token and signed commands.
fn resolve(s: Sections, c: &mut Checker) -> Settings {
    if s.udp.enabled && !s.udp.ip.is_loopback() {
        if s.udp.token.is_none() {
            c.errors.push(format!(
                "udp_server.ip: {} is not a loopback address, so udp_server.token must be set",
                s.udp.ip
            ));
        }
        if !s.udp.require_signature {
            c.errors.push(format!(
                "udp_server.require_signature cannot be false: {} is not a loopback address, \
                 where a plain token could be sniffed and replayed",
                s.udp.ip
            ));
        }
    } else if s.udp.enabled && s.udp.require_signature && s.udp.token.is_none() {
        c.errors
            .push("udp_server.require_signature needs udp_server.token (the signing key)".into());
    }
    Settings {
        activity: ActivitySettings {
            inactivity_timeout: minutes(s.activity.timeout),
            warning: minutes(s.activity.warning.min(s.activity.timeout)),
        },
        detectors: s.detectors,
        aws: s.aws,
        team: s.team,
        busy: s.busy,
        prewake: s.prewake,
        udp: s.udp,
        desktop: s.desktop,
    }
}

/// `activity_monitor`'s own keys (its detector sections are read by
/// [`detector`]).
fn activity_monitor(c: &mut Checker, s: &Sec) -> ActivityMinutes {
    ActivityMinutes {
        timeout: c.num(s, "inactivity_timeout_minutes", 30.0, 0.001, 10_080.0),
        warning: c.num(s, "warning_minutes", 2.0, 0.0, 10_080.0),
    }
}

/// A detector section, from inside `activity_monitor` or else from the top
/// level; both there: the one inside wins, with a warning.
fn detector(c: &mut Checker, root: &Sec, activity: &Sec, section: &'static Section) -> Values {
    let name = section.name;
    let nested = activity.get(name).is_some();
    if nested && root.get(name).is_some() {
        c.warnings.push(format!(
            "settings.json: `{name}` is set both inside `activity_monitor` and at the top \
             level: `activity_monitor.{name}` is used, the top-level `{name}` is ignored"
        ));
    }
    let mut keys = vec!["enabled"];
    keys.extend(section.fields.iter().map(|f| f.key));
    let s = c.sec(if nested { activity } else { root }, name, &keys);
    let enabled = c.boolean(&s, "enabled", true);
    let readings = (section.fields.iter())
        .map(|f| match (f.words, f.whole) {
            (true, _) => Reading::Words(c.words(&s, f.key)),
            (false, true) => {
                Reading::Number(
                    c.int(&s, f.key, f.default as u64, f.min as u64, f.max as u64) as f64,
                )
            }
            (false, false) => Reading::Number(c.num(&s, f.key, f.default, f.min, f.max)),
        })
        .collect();
    Values::new(section, enabled, readings)
}

fn aws(c: &mut Checker, root: &Sec) -> AwsSettings {
    let s = c.sec(
        root,
        "aws",
        &[
            "regions",
            "profile",
            "endpoint_url",
            "service_state_check_interval_minutes",
            "dry_run",
            "max_concurrent_calls",
            "tag_discovery",
            "ec2_hibernate",
            "deadline",
            "deadline_margin_minutes",
            "deadline_role_arn",
        ],
    );
    AwsSettings {
        regions: c.regions(&s, "regions"),
        profile: c.opt_string(&s, "profile", |p| {
            (!p.is_empty() && !p.contains(char::is_whitespace))
                .then_some(())
                .ok_or("a profile name without spaces")
        }),
        endpoint_url: c.opt_string(&s, "endpoint_url", |u| {
            (u.starts_with("http://") || u.starts_with("https://"))
                .then_some(())
                .ok_or("an http:// or https:// URL")
        }),
        service_state_check_interval: minutes(c.num(
            &s,
            "service_state_check_interval_minutes",
            5.0,
            0.01,
            1440.0,
        )),
        dry_run: c.boolean(&s, "dry_run", false),
        max_concurrent_calls: c.int(&s, "max_concurrent_calls", 16, 1, 256) as usize,
        tag_discovery: c.boolean(&s, "tag_discovery", true),
        ec2_hibernate: c.boolean(&s, "ec2_hibernate", false),
        deadline: c.boolean(&s, "deadline", true),
        deadline_margin: minutes(c.num(&s, "deadline_margin_minutes", 10.0, 0.0, 1440.0)),
        deadline_role_arn: c.opt_string(&s, "deadline_role_arn", |a| {
            (a.starts_with("arn:") && a.contains(":role/"))
                .then_some(())
                .ok_or("an IAM role ARN (arn:aws:iam::123456789012:role/NAME)")
        }),
    }
}

fn team(c: &mut Checker, root: &Sec) -> Option<TeamSettings> {
    let s = c.sec(
        root,
        "team",
        &[
            "table",
            "region",
            "member",
            "heartbeat_seconds",
            "lease_seconds",
        ],
    );
    let table = c.opt_string(&s, "table", |t| {
        (t.len() >= 3
            && t.len() <= 255
            && t.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "_.-".contains(ch)))
        .then_some(())
        .ok_or("a DynamoDB table name (3 to 255 of a-z, A-Z, 0-9, _ . -)")
    });
    let region = c.opt_string(&s, "region", |r| {
        is_valid_region(r)
            .then_some(())
            .ok_or("an AWS region name such as \"us-east-1\"")
    });
    let member = c.opt_string(&s, "member", |m| {
        (!m.trim().is_empty() && m.len() <= 512 && !m.contains(char::is_control))
            .then_some(())
            .ok_or("a non-empty name of at most 512 characters")
    });
    let heartbeat = c.num(&s, "heartbeat_seconds", 60.0, 0.1, 3600.0);
    let lease = c.num(&s, "lease_seconds", 180.0, 3.0, 86_400.0);
    if lease < 2.0 * heartbeat {
        c.errors.push(format!(
            "`team.lease_seconds` must be at least twice `team.heartbeat_seconds` \
             (got {lease} and {heartbeat}): one late renewal must not end a lease"
        ));
    }
    let table = table?;
    let Some(region) = region else {
        c.errors.push(
            "`team.region` must be set when `team.table` is (every member uses the same table)"
                .into(),
        );
        return None;
    };
    Some(TeamSettings {
        table,
        region,
        member,
        heartbeat: Duration::from_secs_f64(heartbeat),
        lease: Duration::from_secs_f64(lease),
    })
}

/// Every kind's busy metrics.
fn metrics() -> impl Iterator<Item = &'static Metric> {
    Kind::ALL.into_iter().flat_map(|k| k.spec().busy)
}

fn busy(c: &mut Checker, root: &Sec) -> BusySettings {
    let mut known = vec!["enabled", "window_minutes", "ecs_deployments"];
    known.extend(metrics().map(|r| r.setting));
    let s = c.sec(root, "busy", &known);
    BusySettings {
        enabled: c.boolean(&s, "enabled", true),
        window: minutes(c.num(&s, "window_minutes", 10.0, 1.0, 1440.0)),
        ecs_deployments: c.boolean(&s, "ecs_deployments", true),
        thresholds: metrics()
            .filter_map(|r| Some((r.setting, c.threshold(&s, r.setting, r.default, r.max)?)))
            .collect(),
    }
}

fn prewake(c: &mut Checker, root: &Sec) -> PrewakeSettings {
    let keys = ["enabled", "min_weeks_of_history", "grace_minutes"];
    let s = c.sec(root, "prewake", &keys);
    PrewakeSettings {
        enabled: c.boolean(&s, "enabled", true),
        min_weeks_of_history: c.int(&s, "min_weeks_of_history", 2, 1, 52) as u32,
        grace: minutes(c.num(&s, "grace_minutes", 30.0, 0.05, 720.0)),
    }
}

fn udp_server(c: &mut Checker, root: &Sec) -> UdpSettings {
    let s = c.sec(
        root,
        "udp_server",
        &[
            "enabled",
            "ip",
            "port",
            "buffer_size",
            "token",
            "events_port",
            "rate_limit_per_second",
            "require_signature",
            "allow_other_users",
        ],
    );
    let ip = c
        .opt_string(&s, "ip", |v| {
            v.parse::<IpAddr>()
                .map(|_| ())
                .map_err(|_| "an IPv4 or IPv6 address such as 127.0.0.1")
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    UdpSettings {
        enabled: c.boolean(&s, "enabled", true),
        ip,
        port: c.int(&s, "port", 20200, 0, 65535) as u16,
        buffer_size: c.int(&s, "buffer_size", 65_535, 512, 65_535) as usize,
        token: c.opt_string(&s, "token", |t| {
            (t.len() >= 8 && !t.contains(':'))
                .then_some(())
                .ok_or("at least 8 characters and no ':'")
        }),
        events_port: c.opt_int(&s, "events_port", 1, 65535).map(|p| p as u16),
        rate_limit_per_second: c.num(&s, "rate_limit_per_second", 20.0, 0.1, 100_000.0),
        require_signature: c.boolean(&s, "require_signature", !ip.is_loopback()),
        allow_other_users: c.boolean(&s, "allow_other_users", false),
    }
}

fn desktop(c: &mut Checker, root: &Sec) -> DesktopSettings {
    let s = c.sec(
        root,
        "desktop",
        &[
            "tray",
            "notifications",
            "credentials_dialog",
            "log_keep_days",
        ],
    );
    let n = c.sec(
        &s,
        "notifications",
        &["warning", "asleep", "awake", "errors"],
    );
    DesktopSettings {
        tray: c.boolean(&s, "tray", true),
        notifications: NotificationSettings {
            warning: c.boolean(&n, "warning", true),
            asleep: c.boolean(&n, "asleep", true),
            awake: c.boolean(&n, "awake", true),
            errors: c.boolean(&n, "errors", true),
        },
        credentials_dialog: c.boolean(&s, "credentials_dialog", true),
        log_keep_days: c.int(&s, "log_keep_days", 7, 1, 3650) as usize,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_defaults_parse_cleanly() {
        let (s, warnings) = Settings::parse(DEFAULT_SETTINGS_JSON).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(s.activity.inactivity_timeout, Duration::from_secs(1800));
        assert_eq!(s.udp.port, 20200);
        assert_eq!(s.udp.ip, IpAddr::from([127, 0, 0, 1]));
        assert_eq!(s.aws.service_state_check_interval, Duration::from_secs(300));
        assert_eq!(s, Settings::default());
    }

    /// The values read for `section`.
    fn section(s: &Settings, section: &'static Section) -> Values {
        s.detectors.of(section)
    }

    #[test]
    fn detector_sections_are_read_inside_activity_monitor_and_at_the_top_level() {
        use crate::detect::{list::by_name, lock};
        let screen = by_name("screen").unwrap().sections[0];
        let mouse = by_name("keyboard/mouse").unwrap().sections[1];
        let nested = r#"{"activity_monitor":{"inactivity_timeout_minutes":10,
            "screen":{"enabled":false,"capture_interval_sec":3},
            "mouse":{"movement_threshold":25},
            "screen_lock":{"lock_grace_minutes":1}}}"#;
        let top = r#"{"activity_monitor":{"inactivity_timeout_minutes":10},
            "screen":{"enabled":false,"capture_interval_sec":3},
            "mouse":{"movement_threshold":25},
            "screen_lock":{"lock_grace_minutes":1}}"#;
        for json in [nested, top] {
            let (s, warnings) = Settings::parse(json).unwrap();
            assert!(warnings.is_empty(), "{warnings:?}");
            let sc = section(&s, screen);
            assert!(!sc.enabled);
            assert_eq!(sc.get(&screen.fields[0]), 3.0);
            assert_eq!(sc.get(&screen.fields[1]), 0.01, "the default");
            assert_eq!(section(&s, mouse).get(&mouse.fields[1]), 25.0);
            assert!(section(&s, mouse).enabled);
            assert_eq!(lock::grace(&s.detectors), Duration::from_secs(60));
            assert_eq!(s.activity.inactivity_timeout, Duration::from_secs(600));
        }
        assert_eq!(
            Settings::parse(nested).unwrap().0,
            Settings::parse(top).unwrap().0
        );
        // Errors and unknown keys are named by their path as written.
        let err = Settings::parse(r#"{"activity_monitor":{"mouse":{"enabled":1}}}"#).unwrap_err();
        assert!(
            err.to_string()
                .contains("`activity_monitor.mouse.enabled` must be true or false"),
            "{err}"
        );
        let (_, w) =
            Settings::parse(r#"{"activity_monitor":{"audio":{"volume":1},"sound":{}}}"#).unwrap();
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].contains("unknown key `activity_monitor.sound`"),
            "{w:?}"
        );
        assert!(
            w[1].contains("unknown key `activity_monitor.audio.volume`"),
            "{w:?}"
        );
    }

    #[test]
    fn a_section_in_both_places_takes_the_nested_one_and_says_so() {
        let audio = crate::detect::list::by_name("audio").unwrap().sections[0];
        let (s, w) = Settings::parse(
            r#"{"activity_monitor":{"audio":{"check_interval_sec":7}},
                "audio":{"enabled":false,"check_interval_sec":1}}"#,
        )
        .unwrap();
        let read = section(&s, audio);
        assert!(read.enabled, "nothing of the top-level one is used");
        assert_eq!(read.get(&audio.fields[0]), 7.0);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("`audio` is set both inside `activity_monitor` and at the top level")
                && w[0].contains("`activity_monitor.audio` is used"),
            "{w:?}"
        );
        // The ignored one is not checked either: it cannot fail the file.
        let (_, w) =
            Settings::parse(r#"{"activity_monitor":{"audio":{}}, "audio":{"enabled":"yes"}}"#)
                .unwrap();
        assert_eq!(w.len(), 1, "{w:?}");
    }

    #[test]
    fn the_original_keys_are_explained_not_rejected() {
        let (s, w) = Settings::parse(
            r#"{"aws":{"regions":["eu-west-1"],"credentials":{"access_key_id":"AKIA..."}}}"#,
        )
        .unwrap();
        assert_eq!(s.aws.regions, vec!["eu-west-1".to_string()]);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("`aws.credentials` (a key of the original cloudnap) is not used")
                && w[0].contains("credential chain"),
            "{w:?}"
        );
        assert!(!w[0].contains("AKIA"), "its value is not echoed: {w:?}");
    }

    #[test]
    fn fractional_timeout_works() {
        let (s, _) =
            Settings::parse(r#"{"activity_monitor":{"inactivity_timeout_minutes":0.1}}"#).unwrap();
        assert_eq!(s.activity.inactivity_timeout, Duration::from_secs(6));
        // The warning never exceeds the timeout.
        assert_eq!(s.activity.warning, Duration::from_secs(6));
    }

    #[test]
    fn unknown_keys_warn_with_their_path() {
        let (_, w) = Settings::parse(r#"{"aws":{"regoins":[]},"extra":1,"_comment":"x"}"#).unwrap();
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w.iter().any(|m| m.contains("`aws.regoins`")));
        assert!(w.iter().any(|m| m.contains("`extra`")));
    }

    #[test]
    fn invalid_values_name_the_key_and_what_is_allowed() {
        let err = Settings::parse(
            r#"{"activity_monitor":{"inactivity_timeout_minutes":-1},
                "udp_server":{"port":"x"},"aws":{"regions":["mars-1"]},"mouse":{"enabled":1}}"#,
        )
        .unwrap_err();
        let SettingsError::Invalid(errs) = err else {
            panic!("{err:?}")
        };
        assert_eq!(errs.len(), 4, "{errs:?}");
        assert!(errs[0]
            .contains("`activity_monitor.inactivity_timeout_minutes` must be a number from 0.001"));
        assert!(errs
            .iter()
            .any(|e| e.contains("`udp_server.port` must be a whole number")));
        assert!(errs.iter().any(|e| e.contains("`aws.regions`")));
        assert!(errs
            .iter()
            .any(|e| e.contains("`mouse.enabled` must be true or false")));
    }

    #[test]
    fn json_syntax_errors_have_a_line() {
        let err = Settings::parse("{\n\"aws\": {,}\n}").unwrap_err();
        assert!(
            matches!(err, SettingsError::Json { line: 2, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn a_bad_token_is_reported_without_its_value() {
        let err = Settings::parse(r#"{"udp_server":{"token":"my:secret"}}"#).unwrap_err();
        assert!(err.to_string().contains("udp_server.token"), "{err}");
        assert!(!err.to_string().contains("my:secret"), "{err}");
    }

    #[test]
    fn busy_thresholds_default_and_turn_off_with_null_or_zero() {
        let s = Settings::default().busy;
        assert!(s.enabled && s.ecs_deployments);
        assert_eq!(s.window, Duration::from_secs(600));
        assert_eq!(s.threshold("ec2_cpu_percent"), Some(10.0));
        assert_eq!(s.threshold("ecs_cpu_percent"), Some(10.0));
        assert_eq!(s.threshold("ec2_network_kb_per_second"), Some(100.0));
        let (s, w) = Settings::parse(
            r#"{"busy":{"window_minutes":5,"ec2_cpu_percent":null,"ecs_cpu_percent":0,"ec2_network_kb_per_second":50}}"#,
        )
        .unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(s.busy.window, Duration::from_secs(300));
        assert_eq!(s.busy.threshold("ec2_cpu_percent"), None);
        assert_eq!(s.busy.threshold("ecs_cpu_percent"), None);
        assert_eq!(s.busy.threshold("ec2_network_kb_per_second"), Some(50.0));
        let err = Settings::parse(r#"{"busy":{"ec2_cpu_percent":150}}"#).unwrap_err();
        assert!(
            err.to_string()
                .contains("`busy.ec2_cpu_percent` must be a number from 0 to 100"),
            "{err}"
        );
    }

    #[test]
    fn non_loopback_bind_needs_a_token() {
        let err = Settings::parse(r#"{"udp_server":{"ip":"0.0.0.0"}}"#).unwrap_err();
        assert!(
            err.to_string().contains("udp_server.token must be set"),
            "{err}"
        );
        let err = Settings::parse(
            r#"{"udp_server":{"ip":"0.0.0.0","token":"s3cr3t-token","require_signature":false}}"#,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("require_signature cannot be false"),
            "{err}"
        );
        let err = Settings::parse(r#"{"udp_server":{"require_signature":true}}"#).unwrap_err();
        assert!(err.to_string().contains("needs udp_server.token"), "{err}");
        let (ok, _) =
            Settings::parse(r#"{"udp_server":{"ip":"0.0.0.0","token":"s3cr3t-token"}}"#).unwrap();
        assert!(
            ok.udp.require_signature,
            "signing is the default off loopback"
        );
        assert!(
            !Settings::default().udp.require_signature
                && !Settings::default().udp.allow_other_users
        );
    }

    #[test]
    fn team_mode_is_off_without_a_table_and_checked_with_one() {
        assert_eq!(Settings::default().team, None);
        let (s, w) = Settings::parse(r#"{"team":{"table":null,"region":null}}"#).unwrap();
        assert!(s.team.is_none() && w.is_empty(), "{w:?}");
        let (s, w) =
            Settings::parse(r#"{"team":{"table":"cloudnap-team","region":"eu-west-1","leese":1}}"#)
                .unwrap();
        assert_eq!(
            s.team,
            Some(TeamSettings {
                table: "cloudnap-team".into(),
                region: "eu-west-1".into(),
                member: None,
                heartbeat: Duration::from_secs(60),
                lease: Duration::from_secs(180),
            })
        );
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("`team.leese`"), "{w:?}");
        let (s, _) = Settings::parse(
            r#"{"team":{"table":"t.1","region":"us-east-1","member":"dev-a@laptop-1",
                "heartbeat_seconds":0.5,"lease_seconds":3}}"#,
        )
        .unwrap();
        let team = s.team.unwrap();
        assert_eq!(team.member.as_deref(), Some("dev-a@laptop-1"));
        assert_eq!(
            (team.heartbeat, team.lease),
            (Duration::from_millis(500), Duration::from_secs(3))
        );
        for (bad, key) in [
            (
                r#"{"table":"x y","region":"us-east-1"}"#,
                "`team.table` must be a DynamoDB",
            ),
            (r#"{"table":"team"}"#, "`team.region` must be set"),
            (
                r#"{"table":"team","region":"mars"}"#,
                "`team.region` must be an AWS region",
            ),
            (
                r#"{"table":"team","region":"us-east-1","member":""}"#,
                "`team.member`",
            ),
            (
                r#"{"table":"team","region":"us-east-1","heartbeat_seconds":60,"lease_seconds":90}"#,
                "at least twice",
            ),
            (
                r#"{"table":"team","region":"us-east-1","lease_seconds":1}"#,
                "`team.lease_seconds`",
            ),
            ("[]", "`team` must be an object"),
        ] {
            let err = Settings::parse(&format!(r#"{{"team":{bad}}}"#)).unwrap_err();
            assert!(err.to_string().contains(key), "{bad}: {err}");
        }
    }

    #[test]
    fn region_names() {
        for ok in [
            "us-east-1",
            "eu-central-2",
            "us-gov-west-1",
            "ap-southeast-4",
        ] {
            assert!(is_valid_region(ok), "{ok}");
        }
        for bad in [
            "",
            "us",
            "us-east",
            "US-east-1",
            "us-east-x",
            "mars-1",
            "us--1",
        ] {
            assert!(!is_valid_region(bad), "{bad}");
        }
    }
}
