//! A policy per resource (services.yaml's `wake:` and `after:`) through the
//! real binary, real UDP commands and real SDK calls to moto: a `wake:
//! manual` instance stays asleep at the user's return while another wakes,
//! and wakes on `START_EC2`; an ECS service `after:` an instance is started
//! only once the instance is ready (made slow on purpose by a forwarder in
//! front of moto), and a sleep stops the service before the instance.

mod common;
#[path = "common/forwarder.rs"]
mod forwarder;

use common::*;
use forwarder::Forwarder;
use serde_json::json;
use std::time::{Duration, Instant};

const R: &str = "ca-central-1";

#[tokio::test(flavor = "multi_thread")]
async fn a_manual_instance_stays_asleep_at_the_return_and_wakes_by_hand() {
    let auto = ec2_instance(R, false, &[]).await;
    let manual = ec2_instance(R, false, &[]).await;
    let services = format!(
        "ec2_instances:\n  - instance_id: {auto}\n    region: {R}\n\
         \x20 - instance_id: {manual}\n    region: {R}\n    wake: manual\n"
    );
    let cfg = ConfigDir::with_settings(&daemon_settings(&[R], detectors_off(json!({}))), &services);
    let check = cfg.run(&["check"]);
    let out = String::from_utf8_lossy(&check.stdout);
    assert!(
        out.contains(&format!("EC2 {manual} ({R}): wake manual")),
        "{out}"
    );
    let d = Daemon::start(&cfg);
    let listed = d.ok("LIST_REGISTERED_SERVICES").await;
    let wakes: Vec<&str> = (listed["services"].as_array().unwrap().iter())
        .map(|s| s["wake"].as_str().unwrap())
        .collect();
    assert_eq!(wakes, ["auto", "manual"], "{listed}");

    d.ok("SLEEP_NOW").await;
    assert_eq!(ec2_state(R, &auto).await.0, "stopped");
    assert_eq!(ec2_state(R, &manual).await.0, "stopped");

    // The user is back.
    d.ok("USER_ACTIVITY").await;
    let status = d
        .wait_status(Duration::from_secs(30), "awake", |s| {
            s["state"] == "active"
                && s["operation"].is_null()
                && s["asleep"].as_array().unwrap().len() == 1
        })
        .await;
    assert_eq!(ec2_state(R, &auto).await.0, "running");
    let (state, tags) = ec2_state(R, &manual).await;
    assert_eq!(state, "stopped", "left asleep by its policy");
    assert!(
        tags.iter().any(|(k, _)| k == "cloudnap:sleeping"),
        "{tags:?}"
    );
    let row = &status["asleep"][0];
    assert_eq!(row["resource"]["instance_id"], manual.as_str(), "{status}");
    assert_eq!(row["wake"], "manual", "{status}");
    assert_eq!(row["phase"], "asleep", "{status}");
    let line = status["tray"]["line"].as_str().unwrap();
    assert!(
        line.contains(&format!("asleep until woken by hand: {manual}")),
        "{line}"
    );

    // Still asleep after another return, then woken by hand.
    d.ok("USER_ACTIVITY").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(ec2_state(R, &manual).await.0, "stopped");
    d.ok(&format!("START_EC2:{manual}:{R}")).await;
    let (state, tags) = ec2_state(R, &manual).await;
    assert_eq!(state, "running");
    assert!(
        tags.iter().all(|(k, _)| k != "cloudnap:sleeping"),
        "{tags:?}"
    );
    let status = d.ok("STATUS").await;
    assert_eq!(status["asleep"], json!([]), "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_after_an_instance_starts_once_the_instance_is_ready_and_stops_before_it() {
    let fwd = Forwarder::start(&moto_url());
    let db = ec2_instance(R, false, &[]).await;
    let cluster = unique("after");
    ecs_service(R, &cluster, "web", 2).await;
    let services = format!(
        "ecs_services:\n  - cluster_name: {cluster}\n    service_name: web\n    region: {R}\n    after: {db}\n\
         ec2_instances:\n  - instance_id: {db}\n    region: {R}\n"
    );
    let settings = daemon_settings(
        &[R],
        detectors_off(json!({"aws": {"endpoint_url": fwd.url}})),
    );
    let cfg = ConfigDir::with_settings(&settings, &services);
    let d = Daemon::start(&cfg);
    let listed = d.ok("LIST_REGISTERED_SERVICES").await;
    assert_eq!(listed["services"][1]["after"], db.as_str(), "{listed}");
    d.ok("SLEEP_NOW").await;
    assert_eq!(ec2_state(R, &db).await.0, "stopped");
    assert_eq!(ecs_desired(R, &cluster, "web").await.0, 0);

    // The instance looks not ready (status checks initializing) for 8 s.
    let t0 = Instant::now();
    let ready_at = Duration::from_secs(8);
    fwd.slow(&db, t0 + ready_at);
    let waking = {
        let addr = d.addr;
        tokio::spawn(async move { request(addr, "WAKE_NOW").await })
    };
    let (mut db_up, mut web_up) = (None, None);
    while web_up.is_none() {
        assert!(t0.elapsed() < Duration::from_secs(60), "web never started");
        if db_up.is_none() && ec2_state(R, &db).await.0 == "running" {
            db_up = Some(t0.elapsed());
        }
        if ecs_desired(R, &cluster, "web").await.0 == 2 {
            web_up = Some(t0.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (db_up, web_up) = (db_up.expect("db started first"), web_up.unwrap());
    eprintln!("db started at {db_up:?}, web at {web_up:?} (db ready from {ready_at:?})");
    assert!(db_up < ready_at, "db started at {db_up:?}");
    // Not before the instance is ready; within the follower's longest
    // wait between looks (15 s) and slack after it.
    assert!(
        web_up >= ready_at,
        "web started at {web_up:?}, before db was ready"
    );
    assert!(
        web_up <= ready_at + Duration::from_secs(20),
        "web started only at {web_up:?}"
    );
    let reply = waking.await.unwrap();
    assert_eq!(reply["ok"], true, "{reply}");
    let restored: Vec<&str> = (reply["result"].as_array().unwrap().iter())
        .map(|o| o["action"].as_str().unwrap())
        .collect();
    assert_eq!(restored, ["restored", "restored"], "{reply}");

    // A sleep stops the service first: with its UpdateService held on the
    // wire, the instance is not stopped.
    let stops = fwd.count("StopInstances");
    fwd.hold("UpdateService");
    let addr = d.addr;
    tokio::spawn(async move { request(addr, "SLEEP_NOW").await });
    let t1 = Instant::now();
    while fwd.count("UpdateService") == 0 {
        assert!(t1.elapsed() < Duration::from_secs(20), "{:?}", fwd.counts());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        fwd.count("StopInstances"),
        stops,
        "stopped before the service"
    );
    assert_eq!(ec2_state(R, &db).await.0, "running");
}

#[test]
fn check_refuses_a_cycle_and_an_unknown_after_naming_them() {
    let services = format!(
        "ecs_services:\n  - cluster_name: c\n    service_name: a\n    region: {R}\n    after: c/b\n\
         \x20 - cluster_name: c\n    service_name: b\n    region: {R}\n    after: c/a\n\
         \x20 - cluster_name: c\n    service_name: x\n    region: {R}\n    after: c/gone\n"
    );
    let cfg = ConfigDir::with_settings(&daemon_settings(&[R], detectors_off(json!({}))), &services);
    let out = cfg.run(&["check"]);
    assert!(!out.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!(
            "ECS c/x ({R}): after `c/gone`: no registered resource"
        )),
        "{text}"
    );
    // With the unknown name fixed, the cycle is named.
    std::fs::write(cfg.file("services.yaml"), services.replace("c/gone", "c/a")).unwrap();
    let out = cfg.run(&["check"]);
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        text.contains(&format!(
            "after: a cycle: ECS c/a ({R}) -> ECS c/b ({R}) -> ECS c/a ({R})"
        )),
        "{text}"
    );
}
