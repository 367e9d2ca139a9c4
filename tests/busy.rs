//! The busy veto against moto, through the real binary: CloudWatch metrics
//! (seeded with PutMetricData) and an ECS deployment in progress keep
//! resources running, the metric reads of one sleep are one GetMetricData
//! call per region (counted on the wire by a forwarder in front of moto),
//! and a resource left busy sleeps at a later check once its metric drops,
//! while the user stays away.

mod common;
#[path = "common/forwarder.rs"]
mod forwarder;

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
use common::*;
use forwarder::Forwarder;
use serde_json::{json, Value};
use std::time::{Duration, SystemTime};

const A: &str = "ap-south-1";
const B: &str = "ca-central-1";

/// Puts one datapoint of `metric` (namespace, dimensions) at `at`, through
/// the forwarder (the SDK speaks CBOR, which the forwarder turns to JSON).
async fn put_metric(
    fwd: &Forwarder,
    region: &str,
    namespace: &str,
    metric: &str,
    dimensions: &[(&str, &str)],
    value: f64,
    at: SystemTime,
) {
    let conf = aws_sdk_cloudwatch::config::Builder::from(&sdk(region).await)
        .endpoint_url(&fwd.url)
        .build();
    let cw = aws_sdk_cloudwatch::Client::from_conf(conf);
    let mut datum = MetricDatum::builder()
        .metric_name(metric)
        .value(value)
        .timestamp(DateTime::from(at));
    for (name, v) in dimensions {
        datum = datum.dimensions(Dimension::builder().name(*name).value(*v).build());
    }
    cw.put_metric_data()
        .namespace(namespace)
        .metric_data(datum.build())
        .send()
        .await
        .unwrap();
}

/// The report row of `needle` (an instance id or a service name).
fn row<'a>(report: &'a Value, needle: &str) -> &'a Value {
    report
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"].to_string().contains(&format!("\"{needle}\"")))
        .unwrap_or_else(|| panic!("{needle} not in {report}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn busy_resources_stay_up_with_the_reason_and_sleep_once_their_metric_drops() {
    let fwd = Forwarder::start(&moto_url());
    let cluster = unique("busy");
    let busy_box = ec2_instance(A, false, &[]).await;
    let idle_box = ec2_instance(A, false, &[]).await;
    let far_box = ec2_instance(B, false, &[]).await;
    ecs_service(A, &cluster, "web", 2).await;
    ecs_service(A, &cluster, "quiet", 1).await;
    // More tasks than moto's services start (build/env.sh): a rollout that
    // is still in progress.
    ecs_service(A, &cluster, "deploying", 11).await;

    // Recent datapoints are 30 s old (moto's reads end at the whole second
    // before their end time); the busy instance's CPU ages out of the
    // 10-minute window 40 s from now.
    let now = SystemTime::now() - Duration::from_secs(30);
    let cpu = |id: &str| [("InstanceId", id)].map(|(k, v)| (k, v.to_string()));
    let busy_dim = cpu(&busy_box);
    let busy_dims = [(busy_dim[0].0, busy_dim[0].1.as_str())];
    let (ns, m) = ("AWS/EC2", "CPUUtilization");
    let ageing = now - Duration::from_secs(530);
    put_metric(&fwd, A, ns, m, &busy_dims, 63.0, ageing).await;
    put_metric(&fwd, A, ns, m, &[("InstanceId", &idle_box)], 2.0, now).await;
    put_metric(&fwd, B, ns, m, &[("InstanceId", &far_box)], 1.0, now).await;
    let web = [("ClusterName", cluster.as_str()), ("ServiceName", "web")];
    put_metric(&fwd, A, "AWS/ECS", m, &web, 80.0, now).await;
    let quiet = [("ClusterName", cluster.as_str()), ("ServiceName", "quiet")];
    put_metric(&fwd, A, "AWS/ECS", m, &quiet, 3.0, now).await;
    assert_eq!(fwd.count("PutMetricData"), 5);

    let services = format!(
        "ec2_instances:\n  - instance_id: {busy_box}\n    region: {A}\n  - instance_id: {idle_box}\n    region: {A}\n  - instance_id: {far_box}\n    region: {B}\n\
         ecs_services:\n  - cluster_name: {cluster}\n    service_name: web\n    region: {A}\n  - cluster_name: {cluster}\n    service_name: quiet\n    region: {A}\n  - cluster_name: {cluster}\n    service_name: deploying\n    region: {A}\n"
    );
    let settings = daemon_settings(
        &[A, B],
        detectors_off(json!({
            "aws": {"endpoint_url": fwd.url, "service_state_check_interval_minutes": 0.02}
        })),
    );
    let cfg = ConfigDir::with_settings(&settings, &services);

    // `cloudnap sleep`: the busy ones stay up with their reason; the metric
    // reads are one GetMetricData call per region.
    let t0 = std::time::Instant::now();
    let out = cfg.run(&["sleep", "--json"]);
    let sleep_time = t0.elapsed();
    assert!(out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let busy = |needle: &str, reason: &str| {
        let r = row(&report, needle);
        assert_eq!(r["action"], "busy", "{r}");
        assert_eq!(r["error"], reason, "{r}");
    };
    busy(&busy_box, "busy: CPU 63 % over 10 min");
    busy("web", "busy: CPU 80 % over 10 min");
    busy("deploying", "busy: ECS deployment in progress");
    for needle in [idle_box.as_str(), far_box.as_str(), "quiet"] {
        assert_eq!(row(&report, needle)["action"], "stopped", "{report}");
    }
    let calls = fwd.counts();
    assert_eq!(
        calls.get(&format!("GetMetricData {A}")),
        Some(&1),
        "{calls:?}"
    );
    assert_eq!(
        calls.get(&format!("GetMetricData {B}")),
        Some(&1),
        "{calls:?}"
    );
    assert_eq!(ec2_state(A, &busy_box).await.0, "running");
    assert_eq!(ec2_state(A, &idle_box).await.0, "stopped");
    assert_eq!(ec2_state(B, &far_box).await.0, "stopped");
    assert_eq!(ecs_desired(A, &cluster, "web").await.0, 2);
    assert_eq!(ecs_desired(A, &cluster, "deploying").await.0, 11);
    assert_eq!(ecs_desired(A, &cluster, "quiet").await.0, 0);
    eprintln!("sleep of 6 resources with the busy check: {sleep_time:?}");
    assert!(cfg.run(&["wake"]).status.success());
    assert_eq!(ec2_state(A, &idle_box).await.0, "running");

    // The daemon: the user goes away (SLEEP_NOW); what is busy is checked
    // again at each state check (every 1.2 s here) and stays up while busy.
    let d = Daemon::start(&cfg);
    let report = d.ok("SLEEP_NOW").await;
    assert_eq!(row(&report, &busy_box)["action"], "busy", "{report}");
    let status = d.ok("STATUS").await;
    assert_eq!(status["state"], "asleep");
    assert_eq!(status["busy"].as_array().unwrap().len(), 3, "{status}");
    let reads = fwd.count("GetMetricData");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(fwd.count("GetMetricData") >= reads + 2, "checked again");
    assert_eq!(ec2_state(A, &busy_box).await.0, "running", "still busy");
    assert!(
        SystemTime::now() < ageing + Duration::from_secs(600),
        "the test was too slow to see it busy"
    );

    // Its CPU datapoint leaves the window: the next check puts it to sleep,
    // the user still away.
    let status = d
        .wait_status(Duration::from_secs(60), "the busy instance asleep", |s| {
            s["busy"].as_array().is_some_and(|b| b.len() == 2)
        })
        .await;
    assert_eq!(status["state"], "asleep");
    assert_eq!(ec2_state(A, &busy_box).await.0, "stopped");
    let (_, tags) = ec2_state(A, &busy_box).await;
    assert!(
        tags.contains(&("cloudnap:sleeping".into(), "running".into())),
        "{tags:?}"
    );
    assert_eq!(ecs_desired(A, &cluster, "web").await.0, 2, "still busy");

    // The user is back: everything that slept wakes exactly.
    d.ok("USER_ACTIVITY").await;
    d.wait_status(Duration::from_secs(30), "awake", |s| {
        s["asleep"].as_array().is_some_and(|a| a.is_empty()) && s["state"] == "active"
    })
    .await;
    for (region, id) in [(A, &busy_box), (A, &idle_box), (B, &far_box)] {
        assert_eq!(ec2_state(region, id).await.0, "running", "{id}");
    }
    assert_eq!(ecs_desired(A, &cluster, "quiet").await.0, 1);
    assert_eq!(ecs_desired(A, &cluster, "web").await.0, 2);
}
