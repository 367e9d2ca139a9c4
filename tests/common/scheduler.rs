//! The AWS-side deadline's schedules as EventBridge Scheduler keeps them
//! (read through the SDK from moto), and what firing one does.

use crate::common::sdk;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The deadline role of the tests (moto does not check it).
pub const ROLE: &str = "arn:aws:iam::123456789012:role/cloudnap-deadline";

/// Unix seconds now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// One schedule as AWS keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Armed {
    pub arn: String,
    pub role: String,
    pub input: Value,
    /// Unix seconds.
    pub at: u64,
    pub after_completion: String,
}

/// Unix seconds of an `at(2026-11-23T18:40:00)` expression in UTC.
fn at_seconds(expression: &str) -> u64 {
    let text = expression
        .strip_prefix("at(")
        .and_then(|t| t.strip_suffix(')'))
        .unwrap();
    let t = aws_sdk_scheduler::primitives::DateTime::from_str(
        &format!("{text}Z"),
        aws_sdk_scheduler::primitives::DateTimeFormat::DateTime,
    )
    .unwrap();
    t.secs() as u64
}

/// The schedules of group `cloudnap` in `region` whose input names `needle` (this
/// test's instance or cluster), by name.
pub async fn schedules(region: &str, needle: &str) -> BTreeMap<String, Armed> {
    let scheduler = aws_sdk_scheduler::Client::new(&sdk(region).await);
    let Ok(list) = scheduler
        .list_schedules()
        .group_name("cloudnap")
        .send()
        .await
    else {
        return BTreeMap::new();
    };
    let mut found = BTreeMap::new();
    for s in list.schedules() {
        let name = s.name().unwrap();
        let got = match scheduler
            .get_schedule()
            .group_name("cloudnap")
            .name(name)
            .send()
            .await
        {
            Ok(got) => got,
            // Deleted between the list and this read (by the daemon under test).
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                continue
            }
            Err(e) => panic!("GetSchedule {name}: {e:?}"),
        };
        let target = got.target().unwrap();
        let input: Value = serde_json::from_str(target.input().unwrap()).unwrap();
        if !input.to_string().contains(needle) {
            continue;
        }
        found.insert(
            name.to_string(),
            Armed {
                arn: target.arn().to_string(),
                role: target.role_arn().to_string(),
                input,
                at: at_seconds(got.schedule_expression().unwrap()),
                after_completion: got
                    .action_after_completion()
                    .map(|a| a.as_str().to_string())
                    .unwrap_or_default(),
            },
        );
    }
    found
}

/// Waits until `needle`'s schedule exists and `done` holds for it.
pub async fn schedule_of(
    region: &str,
    needle: &str,
    limit: Duration,
    done: impl Fn(&Armed) -> bool,
) -> Armed {
    let t0 = Instant::now();
    loop {
        if let Some(a) = schedules(region, needle)
            .await
            .into_values()
            .next()
            .filter(&done)
        {
            return a;
        }
        assert!(
            t0.elapsed() < limit,
            "no schedule for {needle}: {:?}",
            schedules(region, needle).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Does what EventBridge Scheduler does when `armed` fires: its universal
/// target's call with its input, through the SDK.
pub async fn fire(region: &str, armed: &Armed) {
    let conf = sdk(region).await;
    let input = &armed.input;
    match armed
        .arn
        .strip_prefix("arn:aws:scheduler:::aws-sdk:")
        .unwrap()
    {
        "ec2:stopInstances" => {
            let ids = input["InstanceIds"].as_array().unwrap();
            aws_sdk_ec2::Client::new(&conf)
                .stop_instances()
                .set_instance_ids(Some(
                    ids.iter().map(|i| i.as_str().unwrap().into()).collect(),
                ))
                .send()
                .await
                .unwrap();
        }
        "ecs:updateService" => {
            aws_sdk_ecs::Client::new(&conf)
                .update_service()
                .cluster(input["Cluster"].as_str().unwrap())
                .service(input["Service"].as_str().unwrap())
                .desired_count(input["DesiredCount"].as_i64().unwrap() as i32)
                .send()
                .await
                .unwrap();
        }
        "eks:updateNodegroupConfig" => {
            let scaling = &input["ScalingConfig"];
            let size = |k: &str| scaling[k].as_i64().map(|n| n as i32);
            aws_sdk_eks::Client::new(&conf)
                .update_nodegroup_config()
                .cluster_name(input["ClusterName"].as_str().unwrap())
                .nodegroup_name(input["NodegroupName"].as_str().unwrap())
                .scaling_config(
                    aws_sdk_eks::types::NodegroupScalingConfig::builder()
                        .set_min_size(size("MinSize"))
                        .set_desired_size(size("DesiredSize"))
                        .build(),
                )
                .send()
                .await
                .unwrap();
        }
        other => panic!("unexpected target {other}"),
    }
}
