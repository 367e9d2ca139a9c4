//! Wake on connect (`cloudnap ssh-proxy HOST PORT`): which registered EC2
//! instance HOST names, whether a connect may wake it, where to connect, and
//! what to say meanwhile. Pure: the CLI asks AWS and the running cloudnap,
//! these decide.

use crate::core::config::registry::Entry;
use crate::core::model::resource::ResourceId;
use crate::core::policy::readiness::ReadyState;
use std::time::Duration;

/// A registered instance as AWS reports it now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Seen {
    pub instance_id: String,
    pub region: String,
    /// Its `Name` tag.
    pub name: Option<String>,
    /// `running`, `stopped`, `pending`, ...
    pub state: String,
    pub public_ip: Option<String>,
    pub private_ip: Option<String>,
    pub public_dns: Option<String>,
    pub private_dns: Option<String>,
}

/// What HOST names among the registered instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Named<'a> {
    /// This registered instance.
    One(&'a Entry),
    /// Several: HOST cannot say which (give one an `ssh_host`).
    Several(Vec<ResourceId>),
    /// No registered instance: HOST is relayed untouched.
    Unknown,
}

fn same(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn named<'a>(found: Vec<&'a Entry>) -> Named<'a> {
    match found.as_slice() {
        [] => Named::Unknown,
        [one] => Named::One(one),
        _ => Named::Several(found.iter().map(|e| e.id.clone()).collect()),
    }
}

/// The registered EC2 instance whose `ssh_host` or instance id is `host`
/// (services.yaml alone: no AWS call).
pub fn by_config<'a>(host: &str, entries: &'a [Entry]) -> Named<'a> {
    let ec2 = entries.iter().filter(|e| e.id.kind().spec().ssh);
    let aliased: Vec<&Entry> = (ec2.clone())
        .filter(|e| e.ssh_host.as_deref().is_some_and(|h| same(h, host)))
        .collect();
    if !aliased.is_empty() {
        return named(aliased);
    }
    named(ec2.filter(|e| same(e.id.part(0), host)).collect())
}

/// The registered EC2 instance `host` names by what AWS reports for it
/// (`seen`): its Name tag, or one of its addresses or DNS names.
pub fn by_aws<'a>(host: &str, entries: &'a [Entry], seen: &[Seen]) -> Named<'a> {
    let of = |e: &Entry| {
        seen.iter()
            .find(|s| s.instance_id == e.id.part(0) && s.region == e.id.region())
    };
    let matches = |s: &Seen| {
        [
            &s.name,
            &s.public_ip,
            &s.private_ip,
            &s.public_dns,
            &s.private_dns,
        ]
        .into_iter()
        .flatten()
        .any(|v| same(v, host))
    };
    named(
        (entries.iter())
            .filter(|e| e.id.kind().spec().ssh)
            .filter(|e| of(e).is_some_and(matches))
            .collect(),
    )
}

/// A short name for the instance in messages: its `ssh_host`, its Name
/// tag, or its id.
pub fn label(entry: &Entry, seen: Option<&Seen>) -> String {
    (entry.ssh_host.clone())
        .or_else(|| seen.and_then(|s| s.name.clone()))
        .unwrap_or_else(|| entry.id.part(0).to_string())
}

/// Why the running cloudnap thinks the user is away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Away {
    /// Its state is asleep (the user left).
    Asleep,
    /// The screen is locked.
    Locked,
}

/// What the running cloudnap says, for one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DaemonView {
    /// cloudnap holds the instance asleep.
    pub asleep: bool,
    /// The user is away, and why.
    pub away: Option<Away>,
}

/// What a connect does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Holds the instance while connected (a lease), waking it first if
    /// it is asleep.
    Hold { wake: bool },
    /// Connects without a hold; the note says why.
    Unheld(String),
    /// Does not connect: the message says why and what to do.
    Refuse(String),
}

/// What a connect to `name` does, given what the running cloudnap says
/// (`None`: it does not answer) and `--wake`. While the user is away a
/// connect wakes nothing and holds nothing unless `--wake` says so: an IDE
/// reconnecting all night must not keep the instance up.
pub fn plan(name: &str, daemon: Option<DaemonView>, wake: bool) -> Plan {
    let Some(view) = daemon else {
        return Plan::Unheld(format!(
            "cloudnap is not running: connecting to {name} without waking or holding it"
        ));
    };
    let why = match view.away {
        Some(_) if wake => return Plan::Hold { wake: view.asleep },
        None => return Plan::Hold { wake: view.asleep },
        Some(Away::Asleep) => "you are away (cloudnap is asleep)",
        Some(Away::Locked) => "you are away (the screen is locked)",
    };
    if view.asleep {
        Plan::Refuse(format!(
            "{name} is asleep and {why}: not waking it. To wake it anyway: \
             cloudnap ssh-proxy --wake HOST PORT (or come back first)"
        ))
    } else {
        Plan::Unheld(format!(
            "{why}: connecting to {name} without keeping it awake (--wake holds it)"
        ))
    }
}

/// Where to connect: `ssh_address` if the entry has one (its port, or
/// `port`), else the instance's current public address, else its private
/// one. `None`: AWS shows no address (it is not running).
pub fn address(entry: &Entry, seen: Option<&Seen>, port: u16) -> Option<String> {
    if let Some(over) = &entry.ssh_address {
        let has_port = match over.rsplit_once(':') {
            Some((host, p)) => {
                p.parse::<u16>().is_ok() && (!host.contains(':') || host.ends_with(']'))
            }
            None => false,
        };
        return Some(if has_port {
            over.clone()
        } else if over.contains(':') && !over.starts_with('[') {
            format!("[{over}]:{port}")
        } else {
            format!("{over}:{port}")
        });
    }
    let seen = seen.filter(|s| s.state == "running")?;
    let ip = seen.public_ip.as_ref().or(seen.private_ip.as_ref())?;
    Some(format!("{ip}:{port}"))
}

/// Whether `cloudnap hold --only R --ready -- COMMAND` may start COMMAND:
/// once R's row in STATUS `readiness` (`row`) says ready, or, with no row,
/// once R is not held asleep (it never was, or its wake is not followed).
/// A hold that wakes R adds R's row before its reply, so R never shows
/// neither asleep nor followed while it wakes.
pub fn may_start(asleep: bool, row: Option<ReadyState>) -> bool {
    match row {
        Some(ReadyState::Ready) => true,
        Some(ReadyState::Starting) => false,
        None => !asleep,
    }
}

/// A step of a wake on connect, as stderr shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The wake was asked for.
    Waking,
    /// AWS shows it running, `after` the start.
    Running { after: Duration },
    /// `port` answers, `after` the start.
    Up { port: u16, after: Duration },
}

/// The text of `step` for `name`; the steps print on one line:
/// `waking devbox... running after 23 s, ssh up after 41 s`.
pub fn progress(name: &str, step: Step) -> String {
    match step {
        Step::Waking => format!("waking {name}... "),
        Step::Running { after } => format!("running after {} s, ", after.as_secs()),
        Step::Up { port: 22, after } => format!("ssh up after {} s\n", after.as_secs()),
        Step::Up { port, after } => format!("port {port} up after {} s\n", after.as_secs()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::resource::Kind;

    fn ec2(id: &str, region: &str) -> Entry {
        Entry::new(ResourceId::new(Kind::Ec2, [id], region))
    }

    fn seen(id: &str, name: &str, ip: &str) -> Seen {
        Seen {
            instance_id: id.into(),
            region: "us-east-1".into(),
            name: Some(name.into()),
            state: "running".into(),
            public_ip: Some(ip.into()),
            private_ip: Some("10.0.0.5".into()),
            public_dns: Some(format!("ec2-{ip}.compute-1.amazonaws.com")),
            private_dns: Some("ip-10-0-0-5.ec2.internal".into()),
        }
    }

    #[test]
    fn host_names_an_instance_by_alias_id_name_tag_or_address() {
        let mut dev = ec2("i-0dev", "us-east-1");
        dev.ssh_host = Some("DevBox".into());
        let entries = [
            dev.clone(),
            ec2("i-0ci", "us-east-1"),
            ec2("i-0eu", "eu-west-1"),
        ];
        assert_eq!(by_config("devbox", &entries), Named::One(&entries[0]));
        assert_eq!(by_config("i-0ci", &entries), Named::One(&entries[1]));
        assert_eq!(by_config("ci", &entries), Named::Unknown);
        let seen = [
            seen("i-0dev", "dev", "3.3.3.3"),
            seen("i-0ci", "ci", "4.4.4.4"),
        ];
        assert_eq!(by_aws("ci", &entries, &seen), Named::One(&entries[1]));
        assert_eq!(by_aws("3.3.3.3", &entries, &seen), Named::One(&entries[0]));
        assert_eq!(
            by_aws("ec2-4.4.4.4.compute-1.amazonaws.com", &entries, &seen),
            Named::One(&entries[1])
        );
        // The same private address on both: which one is unclear.
        assert!(matches!(by_aws("10.0.0.5", &entries, &seen), Named::Several(v) if v.len() == 2));
        // A Name tag seen in another region is not this entry's.
        assert_eq!(by_aws("github.com", &entries, &seen), Named::Unknown);
        let other_region = [Seen {
            region: "us-west-2".into(),
            ..seen[1].clone()
        }];
        assert_eq!(by_aws("ci", &entries, &other_region), Named::Unknown);
        assert_eq!(label(&entries[0], None), "DevBox");
        assert_eq!(label(&entries[1], Some(&seen[1])), "ci");
        assert_eq!(label(&entries[2], None), "i-0eu");
    }

    #[test]
    fn a_connect_wakes_only_with_the_user_present_or_wake_given() {
        let present = |asleep| Some(DaemonView { asleep, away: None });
        let away = |asleep, why| {
            Some(DaemonView {
                asleep,
                away: Some(why),
            })
        };
        assert_eq!(plan("dev", present(true), false), Plan::Hold { wake: true });
        assert_eq!(
            plan("dev", present(false), false),
            Plan::Hold { wake: false }
        );
        for why in [Away::Asleep, Away::Locked] {
            assert_eq!(
                plan("dev", away(true, why), true),
                Plan::Hold { wake: true }
            );
            assert_eq!(
                plan("dev", away(false, why), true),
                Plan::Hold { wake: false }
            );
            let Plan::Refuse(m) = plan("dev", away(true, why), false) else {
                panic!()
            };
            assert!(
                m.starts_with("dev is asleep and you are away") && m.contains("--wake"),
                "{m}"
            );
            let Plan::Unheld(m) = plan("dev", away(false, why), false) else {
                panic!()
            };
            assert!(m.contains("without keeping it awake"), "{m}");
        }
        let Plan::Refuse(m) = plan("dev", away(true, Away::Locked), false) else {
            panic!()
        };
        assert!(m.contains("the screen is locked"), "{m}");
        let Plan::Unheld(m) = plan("dev", None, true) else {
            panic!()
        };
        assert!(m.starts_with("cloudnap is not running"), "{m}");
    }

    #[test]
    fn the_address_is_the_override_else_the_current_public_then_private_ip() {
        let mut e = ec2("i-0dev", "us-east-1");
        let mut s = seen("i-0dev", "dev", "3.3.3.3");
        assert_eq!(address(&e, Some(&s), 22).as_deref(), Some("3.3.3.3:22"));
        s.public_ip = None;
        assert_eq!(
            address(&e, Some(&s), 2222).as_deref(),
            Some("10.0.0.5:2222")
        );
        s.state = "stopped".into();
        assert_eq!(address(&e, Some(&s), 22), None);
        assert_eq!(address(&e, None, 22), None);
        for (over, want) in [
            ("127.0.0.1:2200", "127.0.0.1:2200"),
            ("bastion.example", "bastion.example:22"),
            ("::1", "[::1]:22"),
            ("[::1]:2200", "[::1]:2200"),
        ] {
            e.ssh_address = Some(over.into());
            assert_eq!(address(&e, Some(&s), 22).as_deref(), Some(want), "{over}");
        }
    }

    #[test]
    fn a_command_starts_once_its_resource_is_ready_or_was_never_asleep() {
        assert!(may_start(false, None), "never asleep");
        assert!(!may_start(true, None), "asleep, its wake not begun");
        assert!(!may_start(false, Some(ReadyState::Starting)));
        assert!(!may_start(true, Some(ReadyState::Starting)));
        assert!(may_start(false, Some(ReadyState::Ready)));
    }

    #[test]
    fn progress_reads_as_one_line() {
        let s = |n: u64| Duration::from_millis(n * 1000 + 400);
        let line = [
            progress("devbox", Step::Waking),
            progress("devbox", Step::Running { after: s(23) }),
            progress(
                "devbox",
                Step::Up {
                    port: 22,
                    after: s(41),
                },
            ),
        ]
        .concat();
        assert_eq!(
            line,
            "waking devbox... running after 23 s, ssh up after 41 s\n"
        );
        assert_eq!(
            progress(
                "db",
                Step::Up {
                    port: 5432,
                    after: s(9)
                }
            ),
            "port 5432 up after 9 s\n"
        );
    }
}
