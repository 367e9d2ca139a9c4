//! Readiness after a wake, through the real binary against a world slow on
//! purpose: a forwarder in front of moto says each resource is not ready for
//! a set time (instance status checks `initializing`, an ECS service one
//! task short, a database `starting`), then passes moto's answers through.
//! `STATUS` shows each resource `starting`, then `ready` once its time has
//! passed (never before); one "all ready" notification reaches a fake
//! notification server; and the looks are batched: one
//! `DescribeInstanceStatus` per region per look, whatever the number of
//! instances (counted on the wire).
// D-Bus notifications: Linux desktops only (zbus is a Linux dependency).
#![cfg(target_os = "linux")]

mod common;
#[path = "common/desktop.rs"]
mod desktop;
#[path = "common/forwarder.rs"]
mod forwarder;
#[path = "common/notifications.rs"]
mod notifications;

use common::*;
use desktop::PrivateBus;
use forwarder::Forwarder;
use notifications::{daemon_on, serve};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const A: &str = "eu-north-1";
const B: &str = "ap-northeast-3";

/// The `readiness` row of the resource whose JSON mentions `needle`.
fn row<'a>(status: &'a Value, needle: &str) -> &'a Value {
    status["readiness"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"].to_string().contains(&format!("\"{needle}\"")))
        .unwrap_or_else(|| panic!("{needle} not in {status}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn each_woken_resource_is_ready_after_its_delay_and_one_notification_says_all_are() {
    let bus = PrivateBus::start();
    let (_conn, shown) = serve(&bus, &["body"]);
    let fwd = Forwarder::start(&moto_url());
    let mut boxes = Vec::new();
    for _ in 0..3 {
        boxes.push(ec2_instance(A, false, &[]).await);
    }
    let far = ec2_instance(B, false, &[]).await;
    let cluster = unique("ready");
    ecs_service(A, &cluster, "web", 2).await;
    let db = unique("ready-db");
    rds_instance(A, &db, &[]).await;
    let ec2: String = (boxes.iter().map(|b| (b, A)))
        .chain([(&far, B)])
        .map(|(id, r)| format!("  - instance_id: {id}\n    region: {r}\n"))
        .collect();
    let services = format!(
        "ec2_instances:\n{ec2}ecs_services:\n  - cluster_name: {cluster}\n    service_name: web\n    region: {A}\n\
         rds_instances:\n  - db_instance_identifier: {db}\n    region: {A}\n"
    );
    let settings = daemon_settings(
        &[A, B],
        detectors_off(json!({"aws": {"endpoint_url": fwd.url}})),
    );
    let cfg = ConfigDir::with_settings(&settings, &services);
    let d = daemon_on(&bus, &cfg);
    let slept = d.ok("SLEEP_NOW").await;
    assert_eq!(slept.as_array().unwrap().len(), 6, "{slept}");
    assert_eq!(ec2_state(B, &far).await.0, "stopped");

    // Slow on purpose, from now: ECS 5 s, the instances 12 s, the
    // database 20 s.
    let t0 = Instant::now();
    let delays: BTreeMap<String, Duration> = (boxes.iter().chain([&far]))
        .map(|b| (b.clone(), Duration::from_secs(12)))
        .chain([
            ("web".to_string(), Duration::from_secs(5)),
            (db.clone(), Duration::from_secs(20)),
        ])
        .collect();
    for (resource, delay) in &delays {
        fwd.slow(resource, t0 + *delay);
    }
    d.ok("WAKE_NOW").await;
    // The wake's own describes are done; the first look comes 2 s after.
    let before = fwd.counts();
    let woke = t0.elapsed();

    // STATUS every 200 ms: when each resource is first seen ready.
    let mut seen: BTreeMap<String, Duration> = BTreeMap::new();
    let mut starting_seen = false;
    let mut lines = Vec::new();
    while seen.len() < delays.len() {
        assert!(t0.elapsed() < Duration::from_secs(90), "{seen:?}");
        let status = d.ok("STATUS").await;
        assert_eq!(status["readiness"].as_array().unwrap().len(), 6, "{status}");
        lines.push(status["tray"]["line"].as_str().unwrap().to_string());
        for (resource, delay) in &delays {
            let r = row(&status, resource);
            let at = t0.elapsed();
            match r["state"].as_str().unwrap() {
                "ready" => {
                    let after = r["ready_after_seconds"].as_f64().unwrap();
                    assert!(after >= 0.0, "{r}");
                    seen.entry(resource.clone()).or_insert(at);
                }
                "starting" => {
                    assert!(r["ready_after_seconds"].is_null(), "{r}");
                    assert!(!seen.contains_key(resource), "ready, then starting: {r}");
                    starting_seen |= at < *delay;
                }
                other => panic!("state {other}: {r}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(starting_seen, "never seen starting");
    for (resource, delay) in &delays {
        let at = seen[resource];
        // Not before its delay; within the longest wait between looks
        // (15 s) and slack for this machine after it.
        assert!(at >= *delay, "{resource} ready at {at:?}, before {delay:?}");
        assert!(
            at <= *delay + Duration::from_secs(20),
            "{resource} ready only at {at:?} (delay {delay:?}, wake took {woke:?})"
        );
    }
    assert!(seen["web"] < seen[&db], "{seen:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("waking: ") && l.contains(" of 6 ready")),
        "{lines:?}"
    );
    let status = d.ok("STATUS").await;
    assert!(!status["tray"]["line"].as_str().unwrap().contains("waking"));

    // One notification: all ready, and nothing about a laggard.
    let t1 = Instant::now();
    let all = loop {
        let found: Vec<_> = (shown.lock().unwrap().iter())
            .filter(|s| s.summary.starts_with("All "))
            .cloned()
            .collect();
        if !found.is_empty() {
            break found;
        }
        assert!(
            t1.elapsed() < Duration::from_secs(10),
            "{:?}",
            shown.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let shown = shown.lock().unwrap().clone();
    let all_ready: Vec<_> = shown
        .iter()
        .filter(|s| s.summary.starts_with("All "))
        .collect();
    assert_eq!(all_ready.len(), 1, "{shown:?}");
    assert!(all[0].summary.starts_with("All 6 ready after "), "{all:?}");
    assert!(
        !shown.iter().any(|s| s.summary.contains("still starting")),
        "{shown:?}"
    );

    // Batched: each look asks one DescribeInstanceStatus per region (three
    // instances in A, one in B), and the instances were looked at about as
    // often in A as in B.
    let after = fwd.counts();
    let calls = |op: &str, region: &str| {
        let key = format!("{op} {region}");
        after.get(&key).unwrap_or(&0) - before.get(&key).unwrap_or(&0)
    };
    let (in_a, in_b) = (
        calls("DescribeInstanceStatus", A),
        calls("DescribeInstanceStatus", B),
    );
    // Looks at about 2, 6, 14, 29 s after the wake: 3 to 5 while the
    // instances start (12 s), not 3 per look.
    assert!((3..=5).contains(&in_a), "{in_a} in {A}: {after:?}");
    assert!(in_a.abs_diff(in_b) <= 1, "{in_a} in {A}, {in_b} in {B}");
    let services = calls("DescribeServices", A);
    assert!((1..=4).contains(&services), "{services}: {after:?}");

    // The history has each time to ready; the report says how long the
    // user waited (the database's wait was the longest).
    let out = cfg.run(&["report", "--since", "1d", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let waits = &report["waits"];
    assert_eq!(waits["resources"], 6, "{report:#}");
    let longest = waits["longest_seconds"].as_f64().unwrap();
    assert!(longest >= 20.0 - woke.as_secs_f64(), "{waits}");
    assert!(longest <= seen[&db].as_secs_f64(), "{waits}");
    let history = std::fs::read_to_string(cfg.file("history.jsonl")).unwrap();
    let ready_lines = history
        .lines()
        .filter(|l| l.contains(r#""change":"ready""#));
    assert_eq!(ready_lines.count(), 6, "{history}");
    let text = cfg.run(&["report", "--since", "1d"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("Waiting after a wake: 6 resources ready after "),
        "{text}"
    );
    eprintln!("ready at {seen:?}; wake took {woke:?}; calls {after:?}");
}

/// `n` running instances in `region`, in one call.
async fn instances(region: &str, n: i32) -> Vec<String> {
    let ec2 = aws_sdk_ec2::Client::new(&sdk(region).await);
    let out = ec2
        .run_instances()
        .image_id("ami-12345678")
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
        .min_count(n)
        .max_count(n)
        .send()
        .await
        .unwrap();
    (out.instances().iter())
        .map(|i| i.instance_id().unwrap().to_string())
        .collect()
}

/// A measure more than a check (its bounds are loose): the AWS calls of
/// the looks while 200 resources (190 instances in two regions, 10 ECS
/// services of one cluster) stay not ready for a minute, and the time
/// from their being ready on AWS's side to the notification.
#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_resources_cost_a_few_calls_a_minute_and_the_notification_follows_soon() {
    const C: &str = "sa-east-1";
    let bus = PrivateBus::start();
    let (_conn, shown) = serve(&bus, &["body"]);
    let fwd = Forwarder::start(&moto_url());
    let mut boxes: Vec<(String, &str)> = Vec::new();
    for region in [B, C] {
        boxes.extend(instances(region, 95).await.into_iter().map(|i| (i, region)));
    }
    let cluster = unique("ready200");
    let services: Vec<String> = (0..10).map(|i| format!("svc{i}-{cluster}")).collect();
    for s in &services {
        ecs_service(C, &cluster, s, 1).await;
    }
    let ec2: String = (boxes.iter())
        .map(|(id, r)| format!("  - instance_id: {id}\n    region: {r}\n"))
        .collect();
    let ecs: String = (services.iter())
        .map(|s| format!("  - cluster_name: {cluster}\n    service_name: {s}\n    region: {C}\n"))
        .collect();
    let settings = daemon_settings(
        &[B, C],
        detectors_off(json!({"aws": {"endpoint_url": fwd.url}})),
    );
    let cfg = ConfigDir::with_settings(
        &settings,
        &format!("ec2_instances:\n{ec2}ecs_services:\n{ecs}"),
    );
    let d = daemon_on(&bus, &cfg);
    d.ok("SLEEP_NOW").await;

    // Not ready during the wake, then for a minute from its end.
    let names: Vec<&String> = boxes.iter().map(|(id, _)| id).chain(&services).collect();
    for name in &names {
        fwd.slow(name, Instant::now() + Duration::from_secs(3600));
    }
    let woke = d.ok("WAKE_NOW").await;
    assert_eq!(woke.as_array().unwrap().len(), 200);
    let minute = Duration::from_secs(60);
    let t0 = Instant::now();
    for name in &names {
        fwd.slow(name, t0 + minute);
    }
    let before = fwd.counts();
    tokio::time::sleep(minute).await;
    let counts = fwd.counts();
    let calls: usize = (counts.iter())
        .filter(|(k, _)| {
            k.starts_with("DescribeInstanceStatus ") || k.starts_with("DescribeServices ")
        })
        .map(|(k, n)| n - before.get(k).unwrap_or(&0))
        .sum();
    let per_minute = calls as f64 * 60.0 / t0.elapsed().as_secs_f64();
    let status = d.ok("STATUS").await;
    assert!(
        (status["readiness"].as_array().unwrap().iter()).all(|r| r["state"] == "starting"),
        "{status}"
    );

    // Ready on AWS's side at t0 + 1 min: the notification within one look.
    let notified = loop {
        if shown
            .lock()
            .unwrap()
            .iter()
            .any(|s| s.summary.starts_with("All 200 ready"))
        {
            break t0.elapsed() - minute;
        }
        assert!(t0.elapsed() < minute * 2, "{:?}", shown.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Looks at 2, 6, 14, 29, 44, 59 s: 6 a minute, then 4; each one
    // DescribeInstanceStatus per region and one DescribeServices: 18 calls
    // (per resource it would be 1200).
    assert!(
        per_minute <= 24.0,
        "{per_minute} calls a minute: {counts:?}"
    );
    assert!(notified <= Duration::from_secs(16), "{notified:?}");
    eprintln!(
        "readiness of 200 resources: {calls} calls in the first minute after the wake \
         ({per_minute:.1} a minute); notification {:.2} s after ready on AWS's side",
        notified.as_secs_f64()
    );
}

/// An instance in a subnet of 127.0.0.0/8 (moto gives it a private address
/// there, which is this machine's loopback), with no public address.
async fn instance_on_loopback(region: &str) -> (String, String) {
    let ec2 = aws_sdk_ec2::Client::new(&sdk(region).await);
    let vpc = ec2
        .create_vpc()
        .cidr_block("127.0.0.0/16")
        .send()
        .await
        .unwrap();
    let vpc = vpc.vpc().unwrap().vpc_id().unwrap();
    let subnet = (ec2.create_subnet().vpc_id(vpc).cidr_block("127.0.9.0/24"))
        .send()
        .await
        .unwrap();
    let out = ec2
        .run_instances()
        .image_id("ami-12345678")
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
        .subnet_id(subnet.subnet().unwrap().subnet_id().unwrap())
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .unwrap();
    let i = &out.instances()[0];
    assert_eq!(i.public_ip_address(), None);
    let ip = i.private_ip_address().unwrap().to_string();
    (i.instance_id().unwrap().to_string(), ip)
}

#[tokio::test(flavor = "multi_thread")]
async fn with_ready_port_an_instance_is_ready_once_that_port_answers_on_its_address() {
    const R: &str = "eu-west-3";
    let (id, ip) = instance_on_loopback(R).await;
    // A free port, not listened on yet.
    let port = std::net::TcpListener::bind((ip.as_str(), 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let services =
        format!("ec2_instances:\n  - instance_id: {id}\n    region: {R}\n    ready_port: {port}\n");
    let cfg = ConfigDir::with_settings(&daemon_settings(&[R], detectors_off(json!({}))), &services);
    let d = Daemon::start(&cfg);
    d.ok("SLEEP_NOW").await;
    d.ok("WAKE_NOW").await;
    let t0 = Instant::now();
    // Running with its status checks passed (moto), but the port is closed.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let status = d.ok("STATUS").await;
    assert_eq!(ec2_state(R, &id).await.0, "running");
    assert_eq!(row(&status, &id)["state"], "starting", "{status}");
    let listener = tokio::net::TcpListener::bind((ip.as_str(), port))
        .await
        .unwrap();
    let opened = t0.elapsed();
    let status = d
        .wait_status(Duration::from_secs(25), "ready", |s| {
            row(s, &id)["state"] == "ready"
        })
        .await;
    let after = row(&status, &id)["ready_after_seconds"].as_f64().unwrap();
    assert!(
        after >= opened.as_secs_f64(),
        "{after} s, port opened at {opened:?}"
    );
    drop(listener);
}
