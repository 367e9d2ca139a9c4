//! The AWS-side deadline, with the real binary against moto (which keeps
//! EventBridge Scheduler schedules but never fires them): after the start
//! each resource has a one-time schedule in group `cloudnap` with the right
//! universal target, role, input and time; activity moves it; `kill -9`
//! leaves it armed; the test then does what the scheduler would (the
//! target's call with its input, through the SDK) and `cloudnap wake`
//! restores exactly what ran before. The daemon talks to moto through a
//! forwarder that counts its calls on the wire (printed: calls per arm and
//! per move).

mod common;
#[path = "common/forwarder.rs"]
mod forwarder;
#[path = "common/scheduler.rs"]
mod scheduler;

use common::*;
use forwarder::Forwarder;
use scheduler::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const R: &str = "ap-northeast-3";
/// The inactivity timeout and the deadline margin of this test: the
/// deadline is 26 s ahead, moved when it lags by 13 s.
const TIMEOUT: Duration = Duration::from_secs(20);
const MARGIN: Duration = Duration::from_secs(6);

/// The calls in `after` that are not in `before`, by operation (REST paths
/// cut to their first segment: `PUT /schedules`).
fn calls(
    before: &BTreeMap<String, usize>,
    after: &BTreeMap<String, usize>,
) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (k, n) in after {
        let extra = n - before.get(k).copied().unwrap_or(0);
        if extra > 0 {
            let op: Vec<&str> = k.split(' ').collect();
            let name = match op.as_slice() {
                [method, path, ..] if path.starts_with('/') => {
                    format!("{method} /{}", path[1..].split(['/', '?']).next().unwrap())
                }
                _ => op[0].to_string(),
            };
            *out.entry(name).or_default() += extra;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn the_deadline_is_armed_moved_survives_a_kill_and_its_sleep_is_woken_exactly() {
    let fwd = Forwarder::start(&moto_url());
    let (id, cluster, yaml) = instance_and_service(R, "deadline", 2).await;
    let eks = unique("deadline-eks");
    eks_nodegroup(R, &eks, "workers", (1, 2, 4)).await;
    let yaml = format!(
        "{yaml}eks_nodegroups:\n  - cluster_name: {eks}\n    nodegroup_name: workers\n    region: {R}\n"
    );
    let settings = timeout_settings(
        R,
        TIMEOUT,
        json!({
            "aws": {
                "endpoint_url": fwd.url,
                "deadline_role_arn": ROLE,
                "deadline_margin_minutes": MARGIN.as_secs_f64() / 60.0
            }
        }),
    );
    let cfg = ConfigDir::with_settings(&settings, &yaml);
    let start = unix_now();
    let mut d = Daemon::start(&cfg);

    // Armed at start: one schedule per resource, at the end of the timeout
    // plus the margin.
    let expected = start + (TIMEOUT + MARGIN).as_secs();
    let window = |a: &Armed| (expected - 2..=expected + 5).contains(&a.at);
    let ec2 = schedule_of(R, &id, Duration::from_secs(10), window).await;
    let ecs = schedule_of(R, &cluster, Duration::from_secs(10), window).await;
    let armed_calls = fwd.counts();
    eprintln!(
        "calls to arm 3 resources: {:?}",
        calls(&BTreeMap::new(), &armed_calls)
    );
    assert_eq!(ec2.arn, "arn:aws:scheduler:::aws-sdk:ec2:stopInstances");
    assert_eq!(ec2.input, json!({"InstanceIds": [id]}));
    assert_eq!(ecs.arn, "arn:aws:scheduler:::aws-sdk:ecs:updateService");
    assert_eq!(
        ecs.input,
        json!({"Cluster": cluster, "Service": "web", "DesiredCount": 0})
    );
    for a in [&ec2, &ecs] {
        assert_eq!(a.role, ROLE);
        assert_eq!(a.after_completion, "DELETE");
    }
    let names: Vec<String> = schedules(R, &id)
        .await
        .into_keys()
        .chain(schedules(R, &cluster).await.into_keys())
        .collect();
    assert!(
        names[0].contains(".ec2.") && names[1].contains(".ecs."),
        "{names:?}"
    );
    assert!(names.iter().all(|n| n.len() <= 64), "{names:?}");

    // The capacity is written ahead into the sleep tag, and an awake
    // resource with it is not taken for asleep.
    let tag = |tags: &[(String, String)]| {
        tags.iter()
            .find(|(k, _)| k == "cloudnap:sleeping")
            .map(|(_, v)| v.clone())
    };
    let (state, tags) = ec2_state(R, &id).await;
    assert_eq!(state, "running");
    assert!(tag(&tags).is_some(), "{tags:?}");
    assert!(ecs_desired(R, &cluster, "web")
        .await
        .1
        .contains(&"cloudnap:sleeping".to_string()));
    let status = d.ok("STATUS").await;
    assert_eq!(status["asleep"], json!([]), "{status}");
    assert!(status.get("deadline_off").is_none(), "{status}");

    // An active user moves it (at most every 13 s here).
    let first = ec2.at;
    let t0 = Instant::now();
    let moved = loop {
        d.ok("USER_ACTIVITY").await;
        let now = schedules(R, &id).await.into_values().next().unwrap();
        if now.at > first {
            break now;
        }
        assert!(t0.elapsed() < Duration::from_secs(25), "not moved: {now:?}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let lag = unix_now() + (TIMEOUT + MARGIN).as_secs() - moved.at;
    assert!(moved.at >= first + 13 && lag <= 6, "{first} -> {moved:?}");
    let ecs_moved = schedule_of(R, &cluster, Duration::from_secs(5), |a| a.at == moved.at).await;
    let eks_moved = schedule_of(R, &eks, Duration::from_secs(5), |a| a.at == moved.at).await;
    assert_eq!(
        eks_moved.input,
        json!({"ClusterName": eks, "NodegroupName": "workers",
               "ScalingConfig": {"MinSize": 0, "DesiredSize": 0}})
    );
    let moved_calls = calls(&armed_calls, &fwd.counts());
    eprintln!("calls to move 3 deadlines: {moved_calls:?}");
    assert_eq!(
        moved_calls.get("PUT /schedules"),
        Some(&3),
        "one update each: {moved_calls:?}"
    );
    assert_eq!(moved_calls.get("POST /schedules"), None, "{moved_calls:?}");

    // kill -9: the deadline stays armed.
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        schedules(R, &id).await.into_values().next(),
        Some(moved.clone())
    );
    assert_eq!(
        schedules(R, &cluster).await.into_values().next(),
        Some(ecs_moved.clone())
    );

    // It fires: the resources sleep as cloudnap would, their capacity in
    // their tags.
    fire(R, &moved).await;
    fire(R, &ecs_moved).await;
    fire(R, &eks_moved).await;
    assert_eq!(eks_scaling(R, &eks, "workers").await.0, (0, 0, 4));
    let (state, tags) = ec2_state(R, &id).await;
    assert_eq!(state, "stopped");
    assert!(tag(&tags).is_some(), "{tags:?}");
    let (desired, tags) = ecs_desired(R, &cluster, "web").await;
    assert_eq!(desired, 0);
    assert!(tags.contains(&"cloudnap:sleeping".to_string()), "{tags:?}");

    // `cloudnap wake` restores exactly: the service at its earlier 2 tasks,
    // the nodegroup at its earlier min, desired and max.
    let out = cfg.run(&["wake"]);
    assert!(out.status.success());
    assert_eq!(eks_scaling(R, &eks, "workers").await.0, (1, 2, 4));
    assert_eq!(ec2_state(R, &id).await.0, "running");
    let (desired, tags) = ecs_desired(R, &cluster, "web").await;
    assert_eq!(desired, 2);
    assert!(!tags.contains(&"cloudnap:sleeping".to_string()), "{tags:?}");

    // The next run deletes this machine's schedules that are for nothing
    // registered and up (a crashed run's), and arms its own again.
    let member = names[0].split('.').next().unwrap().to_string();
    let stale = format!("{member}.ec2.0000000000000000");
    let scheduler = aws_sdk_scheduler::Client::new(&sdk(R).await);
    let target = aws_sdk_scheduler::types::Target::builder()
        .arn("arn:aws:scheduler:::aws-sdk:ec2:stopInstances")
        .role_arn(ROLE)
        .input(json!({"InstanceIds": ["i-00000000"], "stale": &id}).to_string())
        .build()
        .unwrap();
    scheduler
        .create_schedule()
        .group_name("cloudnap")
        .name(&stale)
        .schedule_expression("at(2030-01-01T00:00:00)")
        .flexible_time_window(
            aws_sdk_scheduler::types::FlexibleTimeWindow::builder()
                .mode(aws_sdk_scheduler::types::FlexibleTimeWindowMode::Off)
                .build()
                .unwrap(),
        )
        .target(target)
        .send()
        .await
        .unwrap();
    assert!(schedules(R, &id).await.contains_key(&stale));
    let restart = unix_now();
    let d = Daemon::start(&cfg);
    let again = schedule_of(R, &id, Duration::from_secs(10), |a| a.at > moved.at).await;
    assert!(
        again.at >= restart + (TIMEOUT + MARGIN).as_secs() - 2,
        "{again:?}"
    );
    let t0 = Instant::now();
    while schedules(R, &id).await.contains_key(&stale) {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "stale one not deleted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // cloudnap's own sleep removes the deadlines; the return sets them again.
    d.ok("SLEEP_NOW").await;
    d.wait_status(Duration::from_secs(10), "asleep", |s| {
        s["state"] == "asleep" && s["operation"].is_null()
    })
    .await;
    let t0 = Instant::now();
    while !(schedules(R, &id).await.is_empty() && schedules(R, &cluster).await.is_empty()) {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "still armed while asleep"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    d.ok("USER_ACTIVITY").await;
    schedule_of(R, &id, Duration::from_secs(10), |_| true).await;
    schedule_of(R, &cluster, Duration::from_secs(10), |_| true).await;
    assert_eq!(ecs_desired(R, &cluster, "web").await.0, 2);
}

#[test]
fn check_says_whether_the_deadline_can_be_armed() {
    let stdout = |settings: Value| {
        let cfg = ConfigDir::with_settings(&daemon_settings(&[R], settings), "ec2_instances: []\n");
        let out = cfg.run(&["check"]);
        assert!(out.status.success(), "works on without it");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = stdout(json!({}));
    assert!(
        text.contains("deadline:  NOT ARMED: aws.deadline_role_arn is not set"),
        "{text}"
    );
    let text = stdout(json!({"aws": {"deadline_role_arn": ROLE}}));
    assert!(
        text.contains(&format!(
            "deadline:  on, 600s after the idle timeout, run as {ROLE}"
        )),
        "{text}"
    );
    let text = stdout(json!({"aws": {"deadline": false}}));
    assert!(
        text.contains("deadline:  off (aws.deadline: false)"),
        "{text}"
    );
}
