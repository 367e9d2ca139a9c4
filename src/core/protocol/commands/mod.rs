//! The UDP command protocol: one table of text commands and one of JSON
//! envelope types, from which the parsers, `HELP`, the "unknown command"
//! message and docs/protocol.md's command lists all come; and the shape of
//! replies. Pure: no sockets, no clock (the caller passes ids and `now`).

mod parse;
mod tables;
mod wire;

use parse::*;
use tables::*;

use crate::core::config::registry::check_id;
use crate::core::config::settings::is_valid_region;
use crate::core::model::resource::{Kind, ResourceId};
use crate::core::protocol::auth::{valid_nonce, Credential, Signature};
use crate::core::protocol::reply::{CommandError, HelpRow, Reply};
pub use parse::parse;
use serde_json::{json, Map, Value};
use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};
pub use tables::{help, json_types_markdown, text_commands_markdown, JSON_TYPES, TEXT_COMMANDS};
pub use wire::{reply, split};

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
        let doc = include_str!("../../../../docs/protocol.md");
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
