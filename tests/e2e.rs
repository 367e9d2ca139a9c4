//! The main job end to end: the real `cloudnap run` under Xvfb (all
//! detectors on) against moto, put to sleep by real idleness and woken by one
//! real key press (xdotool). Capacities are read back through the AWS API.

mod common;
// The daemon runs with every detector on, as under build/test.sh.
common::before_main!(X, Pulse);
use common::*;
use serde_json::json;

use std::time::{Duration, Instant};

const A: &str = "ap-southeast-1";
const B: &str = "ap-southeast-2";

/// One test at a time: they share the X server's keyboard.
static X: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// EC2 in two regions, an ECS service at 2, an EKS nodegroup at 1/2/3.
struct Fleet {
    ec2: Vec<(&'static str, String)>,
    cluster: String,
    eks_cluster: String,
}

impl Fleet {
    async fn create() -> Fleet {
        let cluster = unique("e2e-ecs");
        let eks_cluster = unique("e2e-eks");
        ecs_service(A, &cluster, "api", 2).await;
        eks_nodegroup(B, &eks_cluster, "workers", (1, 2, 3)).await;
        Fleet {
            ec2: vec![
                (A, ec2_instance(A, false, &[]).await),
                (B, ec2_instance(B, false, &[]).await),
            ],
            cluster,
            eks_cluster,
        }
    }

    fn services_yaml(&self) -> String {
        let mut y = String::from("ec2_instances:\n");
        for (region, id) in &self.ec2 {
            y += &format!("  - instance_id: {id}\n    region: {region}\n");
        }
        y += &format!(
            "ecs_services:\n  - cluster_name: {}\n    service_name: api\n    region: {A}\n",
            self.cluster
        );
        y += &format!(
            "eks_nodegroups:\n  - cluster_name: {}\n    nodegroup_name: workers\n    region: {B}\n",
            self.eks_cluster
        );
        y
    }

    /// (EC2 states, ECS desired, EKS min/desired/max), from AWS.
    async fn observe(&self) -> (Vec<String>, i32, (i32, i32, i32)) {
        let mut states = Vec::new();
        for (region, id) in &self.ec2 {
            states.push(ec2_state(region, id).await.0);
        }
        let ecs = ecs_desired(A, &self.cluster, "api").await.0;
        let eks = eks_scaling(B, &self.eks_cluster, "workers").await.0;
        (states, ecs, eks)
    }

    async fn is_asleep(&self) -> bool {
        let (ec2, ecs, (min, desired, _)) = self.observe().await;
        ec2.iter().all(|s| s == "stopped") && ecs == 0 && min == 0 && desired == 0
    }

    async fn is_awake_exactly(&self) -> bool {
        let (ec2, ecs, eks) = self.observe().await;
        ec2.iter().all(|s| s == "running") && ecs == 2 && eks == (1, 2, 3)
    }

    async fn nothing_changed(&self) {
        assert!(self.is_awake_exactly().await, "{:?}", self.observe().await);
    }
}

/// Polls AWS every 50 ms until `done`; returns the time it took.
async fn until(
    limit: Duration,
    what: &str,
    fleet: &Fleet,
    done: impl AsyncFn(&Fleet) -> bool,
) -> Duration {
    let t0 = Instant::now();
    while !done(fleet).await {
        assert!(
            t0.elapsed() < limit,
            "not {what} within {limit:?}: {:?}",
            fleet.observe().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    t0.elapsed()
}

/// A config dir for `fleet` with a timeout of `timeout_s` and a warning of
/// `warning_s` seconds, every detector on.
fn config(fleet: &Fleet, timeout_s: f64, warning_s: f64) -> ConfigDir {
    ConfigDir::with_settings(
        &daemon_settings(
            &[A, B],
            json!({"activity_monitor": {
                "inactivity_timeout_minutes": timeout_s / 60.0,
                "warning_minutes": warning_s / 60.0
            }}),
        ),
        &fleet.services_yaml(),
    )
}

/// Presses one key and waits (≤ 2 s) until AWS shows every resource back at
/// exactly its earlier capacity.
async fn press_and_expect_wake(fleet: &Fleet) -> Duration {
    xdotool(&["key", "shift"]);
    let took = until(
        Duration::from_secs(2),
        "awake",
        fleet,
        Fleet::is_awake_exactly,
    )
    .await;
    eprintln!("key press to all resources awake (seen through AWS): {took:?}");
    took
}

#[tokio::test]
async fn real_idleness_sleeps_everything_and_one_key_press_wakes_it_exactly() {
    require_display();
    let _x = X.lock().await;
    let fleet = Fleet::create().await;
    let cfg = config(&fleet, 3.0, 1.0);
    let d = Daemon::start(&cfg);
    fleet.nothing_changed().await;

    until(Duration::from_secs(20), "asleep", &fleet, Fleet::is_asleep).await;
    let status = d
        .wait_status(Duration::from_secs(5), "asleep", |s| s["state"] == "asleep")
        .await;
    assert_eq!(status["asleep"].as_array().unwrap().len(), 4);
    // Still asleep a moment later: nothing woke it without input.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(fleet.is_asleep().await);

    press_and_expect_wake(&fleet).await;
    let status = d
        .wait_status(Duration::from_secs(2), "active", |s| s["state"] == "active")
        .await;
    assert_eq!(status["last_activity"]["kind"], "keyboard");
    assert!(status["asleep"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn after_a_sigkill_while_asleep_the_first_key_press_wakes_everything() {
    require_display();
    let _x = X.lock().await;
    let fleet = Fleet::create().await;
    let cfg = config(&fleet, 3.0, 1.0);
    let mut d = Daemon::start(&cfg);
    until(Duration::from_secs(20), "asleep", &fleet, Fleet::is_asleep).await;
    d.wait_status(Duration::from_secs(5), "asleep", |s| s["state"] == "asleep")
        .await;

    d.child.kill().unwrap(); // SIGKILL
    d.child.wait().unwrap();
    let d = Daemon::start(&cfg);
    let status = d.ok("STATUS").await;
    assert_eq!(status["state"], "asleep", "{status}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(fleet.is_asleep().await, "nothing wakes without input");

    press_and_expect_wake(&fleet).await;
}

#[tokio::test]
async fn activity_during_the_warning_cancels_the_sleep() {
    require_display();
    let _x = X.lock().await;
    let fleet = Fleet::create().await;
    // Warned 3 s after the last activity, asleep after 12 s.
    let cfg = config(&fleet, 12.0, 9.0);
    let d = Daemon::start(&cfg);
    let warned = d
        .wait_status(Duration::from_secs(15), "warning", |s| {
            s["state"] == "warning"
        })
        .await;
    let sleep_in = warned["sleep_in_seconds"].as_f64().unwrap();
    xdotool(&["key", "shift"]);
    d.wait_status(Duration::from_secs(1), "active again", |s| {
        s["state"] == "active"
    })
    .await;
    // Past the moment it would have slept: nothing was stopped.
    tokio::time::sleep(Duration::from_secs_f64(sleep_in + 1.0)).await;
    fleet.nothing_changed().await;
    assert_ne!(d.ok("STATUS").await["state"], "asleep");
    d.logged("sleep cancelled").await;
}
