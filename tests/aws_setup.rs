//! `cloudnap aws-setup` with the real binary against moto's IAM: `--dry-run`
//! prints the role and its policies and changes nothing; the real run
//! creates the role (trusted by EventBridge Scheduler of this account only)
//! with a policy allowing just the sleep calls on the registered resources
//! and on those tagged `cloudnap:managed=true`, and sets
//! `aws.deadline_role_arn`, which `check` then shows; a second run updates
//! in place.

mod common;

use common::*;
use serde_json::{json, Value};

const R: &str = "ca-central-1";
const ROLE: &str = "cloudnap-deadline";
const ARN: &str = "arn:aws:iam::123456789012:role/cloudnap-deadline";

/// IAM returns policy documents URL-encoded.
fn decoded(text: &str) -> Value {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    serde_json::from_slice(&out).unwrap()
}

/// The role's trust policy and inline policy, if the role exists.
async fn role(iam: &aws_sdk_iam::Client) -> Option<(Value, Value)> {
    let got = iam.get_role().role_name(ROLE).send().await.ok()?;
    let trust = decoded(got.role()?.assume_role_policy_document()?);
    let policy = iam
        .get_role_policy()
        .role_name(ROLE)
        .policy_name("cloudnap-deadline-sleep")
        .send()
        .await
        .unwrap();
    Some((trust, decoded(policy.policy_document())))
}

/// Deletes the role (and its inline policy) left by an earlier run.
async fn delete_role(iam: &aws_sdk_iam::Client) {
    let _ = iam
        .delete_role_policy()
        .role_name(ROLE)
        .policy_name("cloudnap-deadline-sleep")
        .send()
        .await;
    let _ = iam.delete_role().role_name(ROLE).send().await;
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn aws_setup_makes_the_least_privilege_role_and_sets_it() {
    let iam = aws_sdk_iam::Client::new(&sdk(R).await);
    delete_role(&iam).await;
    let (id, cluster, yaml) = instance_and_service(R, "setup", 1).await;
    let cfg = ConfigDir::new(&[R], &yaml);
    let settings_before = std::fs::read_to_string(cfg.file("settings.json")).unwrap();

    // --dry-run: the documents, and nothing changed.
    let out = cfg.run(&["aws-setup", "--dry-run"]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.contains(&format!("role {ARN} (dry run")), "{text}");
    assert!(text.contains("scheduler.amazonaws.com"), "{text}");
    assert!(
        text.contains(&format!("arn:aws:ec2:{R}:123456789012:instance/{id}")),
        "{text}"
    );
    assert!(role(&iam).await.is_none(), "dry run created the role");
    assert_eq!(
        std::fs::read_to_string(cfg.file("settings.json")).unwrap(),
        settings_before
    );

    // The real run: the role, its policy, the setting.
    let out = cfg.run(&["aws-setup"]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.contains(&format!("role {ARN} created")), "{text}");
    let (trust, policy) = role(&iam).await.expect("the role");
    assert_eq!(
        trust["Statement"][0]["Principal"],
        json!({"Service": "scheduler.amazonaws.com"})
    );
    assert_eq!(
        trust["Statement"][0]["Condition"]["StringEquals"]["aws:SourceAccount"],
        "123456789012"
    );
    let registered = &policy["Statement"][0];
    assert_eq!(
        registered["Action"],
        json!(["ec2:StopInstances", "ecs:UpdateService"])
    );
    assert_eq!(
        registered["Resource"],
        json!([
            format!("arn:aws:ec2:{R}:123456789012:instance/{id}"),
            format!("arn:aws:ecs:{R}:123456789012:service/{cluster}/web")
        ])
    );
    let tagged = &policy["Statement"][1];
    assert_eq!(tagged["Resource"], "*");
    assert_eq!(
        tagged["Condition"],
        json!({"StringEquals": {"aws:ResourceTag/cloudnap:managed": "true"}})
    );
    let settings: Value =
        serde_json::from_str(&std::fs::read_to_string(cfg.file("settings.json")).unwrap()).unwrap();
    assert_eq!(settings["aws"]["deadline_role_arn"], ARN);
    let check = stdout(&cfg.run(&["check"]));
    assert!(
        check.contains("deadline:  on") && check.contains(ARN),
        "{check}"
    );

    // Again: updated in place, the settings left as they are.
    let settings_after = std::fs::read_to_string(cfg.file("settings.json")).unwrap();
    let out = cfg.run(&["aws-setup"]);
    assert!(out.status.success());
    assert!(stdout(&out).contains(&format!("role {ARN} updated")));
    assert!(!stdout(&out).contains("settings:"));
    assert_eq!(
        std::fs::read_to_string(cfg.file("settings.json")).unwrap(),
        settings_after
    );
    assert_eq!(role(&iam).await.unwrap().1, policy);
    delete_role(&iam).await;
}
