//! The IAM the AWS-side deadline needs (see [`crate::core::policy::deadline`]): the
//! role EventBridge Scheduler runs its schedules as, trusted only by the
//! scheduler of this account, and a policy allowing it nothing but the
//! sleep calls, on the registered resources and on those tagged
//! `cloudnap:managed=true`. Pure: `cloudnap aws-setup` applies it.

use crate::core::model::resource::ResourceId;
use crate::kinds::Kind;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// The role's name.
const ROLE_NAME: &str = "cloudnap-deadline";

/// The name of the role's inline policy.
const POLICY_NAME: &str = "cloudnap-deadline-sleep";

/// The tag that makes a resource managed (see tag discovery).
const MANAGED_TAG: &str = "aws:ResourceTag/cloudnap:managed";

/// An IAM role with one inline policy, as `cloudnap aws-setup` puts it.
#[derive(Debug, Clone, PartialEq)]
pub struct Role {
    pub name: String,
    pub description: String,
    /// The trust (assume-role) policy document.
    pub trust: Value,
    pub policy_name: String,
    /// The inline policy document.
    pub policy: Value,
}

/// The role of the AWS-side deadline in `account`, allowed to sleep the
/// `registered` resources and those tagged managed.
pub fn deadline_role(account: &str, registered: &[ResourceId]) -> Role {
    Role {
        name: ROLE_NAME.into(),
        description: "cloudnap's AWS-side deadline: EventBridge Scheduler puts idle dev \
                      resources to sleep as this role"
            .into(),
        trust: trust_policy(account),
        policy_name: POLICY_NAME.into(),
        policy: sleep_policy(account, registered),
    }
}

/// The role's ARN in `account`.
pub fn role_arn(account: &str) -> String {
    format!("arn:aws:iam::{account}:role/{ROLE_NAME}")
}

/// Who may assume the role: EventBridge Scheduler, for schedules of
/// `account` only.
fn trust_policy(account: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "scheduler.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": account}}
        }]
    })
}

/// The IAM action of `kind`'s sleep call (`ec2:StopInstances`).
fn action(kind: Kind) -> String {
    let call = (kind.spec().sleep_call)(&[]);
    let (service, name) = call.action.split_once(':').unwrap_or(("", call.action));
    let mut chars = name.chars();
    let first = chars.next().map(|c| c.to_ascii_uppercase());
    format!(
        "{service}:{}",
        first.into_iter().chain(chars).collect::<String>()
    )
}

/// What the role may do: the sleep call of each kind, on the `registered`
/// resources (by ARN in `account`) and on any resource tagged
/// `cloudnap:managed=true`.
fn sleep_policy(account: &str, registered: &[ResourceId]) -> Value {
    let actions: BTreeSet<String> = registered.iter().map(|id| action(id.kind())).collect();
    let arns: BTreeSet<String> = registered.iter().filter_map(|id| id.arn(account)).collect();
    let every: BTreeSet<String> = Kind::ALL.into_iter().map(action).collect();
    let mut statements = Vec::new();
    if !arns.is_empty() {
        statements.push(json!({
            "Sid": "SleepRegistered",
            "Effect": "Allow",
            "Action": actions,
            "Resource": arns,
        }));
    }
    statements.push(json!({
        "Sid": "SleepTagged",
        "Effect": "Allow",
        "Action": every,
        "Resource": "*",
        "Condition": {"StringEquals": {MANAGED_TAG: "true"}}
    }));
    json!({"Version": "2012-10-17", "Statement": statements})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_role_is_for_this_accounts_scheduler_only() {
        let trust = trust_policy("123456789012");
        let s = &trust["Statement"][0];
        assert_eq!(s["Principal"]["Service"], "scheduler.amazonaws.com");
        assert_eq!(
            s["Condition"]["StringEquals"]["aws:SourceAccount"],
            "123456789012"
        );
        assert_eq!(
            role_arn("123456789012"),
            "arn:aws:iam::123456789012:role/cloudnap-deadline"
        );
    }

    #[test]
    fn it_may_only_sleep_registered_and_managed_resources() {
        let registered = [
            ResourceId::new(Kind::Ec2, ["i-1"], "eu-west-1"),
            ResourceId::new(Kind::Ecs, ["web", "api"], "eu-west-1"),
            ResourceId::new(Kind::Ec2, ["i-2"], "us-east-1"),
        ];
        let policy = sleep_policy("1", &registered);
        let listed = &policy["Statement"][0];
        assert_eq!(
            listed["Action"],
            json!(["ec2:StopInstances", "ecs:UpdateService"])
        );
        assert_eq!(
            listed["Resource"],
            json!([
                "arn:aws:ec2:eu-west-1:1:instance/i-1",
                "arn:aws:ec2:us-east-1:1:instance/i-2",
                "arn:aws:ecs:eu-west-1:1:service/web/api"
            ])
        );
        let tagged = &policy["Statement"][1];
        assert_eq!(tagged["Resource"], "*");
        assert_eq!(
            tagged["Condition"]["StringEquals"]["aws:ResourceTag/cloudnap:managed"],
            "true"
        );
        let every = tagged["Action"].as_array().unwrap();
        assert_eq!(every.len(), Kind::ALL.len(), "{every:?}");
        for a in [
            "autoscaling:UpdateAutoScalingGroup",
            "eks:UpdateNodegroupConfig",
            "rds:StopDBInstance",
            "rds:StopDBCluster",
        ] {
            assert!(every.contains(&json!(a)), "{a}: {every:?}");
        }
        // Nothing registered: only resources tagged managed.
        let none = sleep_policy("1", &[]);
        assert_eq!(none["Statement"].as_array().unwrap().len(), 1);
        assert_eq!(none["Statement"][0]["Sid"], "SleepTagged");
    }
}
