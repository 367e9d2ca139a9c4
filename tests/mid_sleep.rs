//! The return never waits for a sleep: with the real binary against moto
//! (behind the counting forwarder), `USER_ACTIVITY` halfway through a sleep
//! of 50 resources (25 EC2 instances, 25 ECS services in five clusters, one
//! batch at a time: `aws.max_concurrent_calls` 1) while the reads of the
//! fourth batch take 4 s (its look, and the read back of its stops). What
//! was stopped is woken at once (a read is not waited for), the batches not
//! reached yet are never stopped, and afterwards every capacity, record and
//! tag is as before the sleep.

mod common;
#[path = "common/forwarder.rs"]
mod forwarder;
use common::*;
use forwarder::Forwarder;
use serde_json::json;
use std::time::{Duration, Instant};

const R: &str = "ap-southeast-2";
const TAG: &str = "cloudnap:sleeping";

/// The 50 resources: instance ids, and (cluster, service, desired count).
struct Fleet {
    instances: Vec<String>,
    services: Vec<(String, String, i32)>,
}

impl Fleet {
    async fn create() -> Fleet {
        let mut instances = Vec::new();
        for _ in 0..25 {
            instances.push(ec2_instance(R, false, &[]).await);
        }
        let mut services = Vec::new();
        for c in 0..5 {
            let cluster = unique(&format!("mid{c}"));
            for s in 0..5 {
                let (name, desired) = (format!("web{s}"), 1 + s);
                ecs_service(R, &cluster, &name, desired).await;
                services.push((cluster.clone(), name, desired));
            }
        }
        Fleet {
            instances,
            services,
        }
    }

    fn yaml(&self) -> String {
        let mut y = String::from("ec2_instances:\n");
        for id in &self.instances {
            y += &format!("  - instance_id: {id}\n    region: {R}\n");
        }
        y += "ecs_services:\n";
        for (cluster, service, _) in &self.services {
            y += &format!(
                "  - cluster_name: {cluster}\n    service_name: {service}\n    region: {R}\n"
            );
        }
        y
    }

    /// Each instance's state and whether it has the sleep tag, then each
    /// service's desired count and whether it has it.
    async fn look(&self) -> (Vec<(String, bool)>, Vec<(i32, bool)>) {
        let ec2 = aws_sdk_ec2::Client::new(&sdk(R).await);
        let out = ec2
            .describe_instances()
            .set_instance_ids(Some(self.instances.clone()))
            .send()
            .await
            .unwrap();
        let mut by_id = std::collections::HashMap::new();
        for i in out.reservations().iter().flat_map(|r| r.instances()) {
            let tagged = i.tags().iter().any(|t| t.key() == Some(TAG));
            let state = i.state().unwrap().name().unwrap().as_str().to_string();
            by_id.insert(i.instance_id().unwrap().to_string(), (state, tagged));
        }
        let instances = self.instances.iter().map(|id| by_id[id].clone()).collect();
        let mut services = Vec::new();
        for (cluster, service, _) in &self.services {
            let (desired, tags) = ecs_desired(R, cluster, service).await;
            services.push((desired, tags.iter().any(|t| t == TAG)));
        }
        (instances, services)
    }

    /// Whether every capacity is as before the sleep.
    async fn all_up(&self) -> bool {
        let (instances, services) = self.look().await;
        instances.iter().all(|(s, _)| s == "running")
            && services
                .iter()
                .zip(&self.services)
                .all(|((d, _), (_, _, before))| d == before)
    }

    /// Polls until every capacity is as before; how long that took.
    async fn time_to_all_up(&self, from: Instant) -> Duration {
        while !self.all_up().await {
            assert!(
                from.elapsed() < Duration::from_secs(30),
                "not all up after 30 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        from.elapsed()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn activity_halfway_through_a_sleep_of_50_wakes_what_was_stopped_and_stops_no_more() {
    let fleet = Fleet::create().await;
    let fwd = Forwarder::start(&moto_url());
    // The fourth batch (after the instances, clusters 0 and 1: cluster 2)
    // takes 4 s to read: its look, what it is made of (beside its tags and
    // stops), and its read back.
    let slow_cluster = fleet.services[10].0.clone();
    fwd.delay("DescribeServices", &slow_cluster, Duration::from_secs(4));
    let settings = timeout_settings(
        R,
        Duration::from_secs(3600),
        json!({"aws": {"endpoint_url": fwd.url, "max_concurrent_calls": 1}}),
    );
    let cfg = ConfigDir::with_settings(&settings, &fleet.yaml());
    let d = Daemon::start(&cfg);

    let addr = d.addr;
    let sleep = tokio::spawn(async move { request(addr, "SLEEP_NOW").await });
    let t0 = Instant::now();
    while fwd.delayed() < 3 || fwd.count("UpdateService") < 15 {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the fourth batch is never read back"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Halfway: 40 stopped (5 of them being read back), 10 not reached.
    let (instances, services) = loop {
        let (instances, services) = fleet.look().await;
        if services[..15].iter().all(|(d, _)| *d == 0) || t0.elapsed().as_secs() > 30 {
            break (instances, services);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(
        instances.iter().all(|(s, tag)| s == "stopped" && *tag),
        "{instances:?}"
    );
    let desired: Vec<i32> = services.iter().map(|(d, _)| *d).collect();
    assert_eq!(&desired[..15], &[0; 15], "{services:?}");
    assert_eq!(
        &desired[15..],
        &[1, 2, 3, 4, 5].repeat(2)[..],
        "{services:?}"
    );
    let returned = Instant::now();
    assert_eq!(d.ok("USER_ACTIVITY").await["state"], "active");
    let mid = fleet.time_to_all_up(returned).await;

    let report = sleep.await.unwrap();
    assert_eq!(report["ok"], true, "{report}");
    let rows = report["result"].as_array().unwrap();
    assert_eq!(rows.len(), 50, "{report}");
    assert!(rows.iter().all(|r| r["action"] == "cancelled"), "{report}");
    let woken = rows
        .iter()
        .filter(|r| r["error"] == "stopped, then woken: you came back")
        .count();
    assert_eq!(woken, 40, "{report}");
    let status = d
        .wait_status(Duration::from_secs(20), "awake", |s| {
            s["operation"].is_null()
        })
        .await;
    assert_eq!(status["state"], "active", "{status}");
    assert_eq!(status["asleep"], json!([]), "{status}");
    let records: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cfg.file("state.json")).unwrap()).unwrap();
    assert_eq!(records["sleeping"], json!([]), "{records}");
    let (instances, services) = fleet.look().await;
    assert!(
        instances.iter().all(|(s, tag)| s == "running" && !tag),
        "{instances:?}"
    );
    for ((desired, tag), (cluster, service, before)) in services.iter().zip(&fleet.services) {
        assert_eq!((desired, tag), (before, &false), "{cluster}/{service}");
    }
    // Only the first three clusters were ever scaled, down then up once
    // each, and tagged and untagged; the last two never touched.
    assert_eq!(fwd.count("UpdateService"), 30, "{:?}", fwd.counts());
    assert_eq!(fwd.count("TagResource"), 15, "{:?}", fwd.counts());
    assert_eq!(fwd.count("UntagResource"), 15, "{:?}", fwd.counts());
    assert_eq!(fwd.count("StopInstances"), 1, "{:?}", fwd.counts());
    assert_eq!(fwd.count("StartInstances"), 1, "{:?}", fwd.counts());

    // The same 50 from fully asleep.
    fwd.undelay();
    d.sleep_now().await;
    let woke = Instant::now();
    assert_eq!(d.ok("USER_ACTIVITY").await["state"], "active");
    let plain = fleet.time_to_all_up(woke).await;
    eprintln!("all 50 up {mid:?} after a mid-sleep return, {plain:?} after a plain wake");
    assert!(
        mid <= plain + Duration::from_millis(300),
        "{mid:?} after a mid-sleep return vs {plain:?} from asleep"
    );
}
