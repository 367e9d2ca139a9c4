//! Transitions are retried, never forgotten: with the real binary against
//! moto behind a forwarder that can cut the network. An EC2 instance and an
//! ECS service sleep by idleness; the network is cut, the user returns
//! (`USER_ACTIVITY`), the wake fails and STATUS says it is retrying; the
//! network comes back 8 s later and, with no further input, both resources
//! run again within 5 s.

mod common;
#[path = "common/forwarder.rs"]
mod forwarder;

use common::*;
use forwarder::Forwarder;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const R: &str = "eu-west-2";
/// The inactivity timeout of this test: longer than the cut and the 5 s
/// after it, so that the user, back, stays so.
const TIMEOUT: Duration = Duration::from_secs(20);

async fn up(id: &str, cluster: &str) -> (String, i32) {
    (
        ec2_state(R, id).await.0,
        ecs_desired(R, cluster, "web").await.0,
    )
}

/// The `asleep` rows of STATUS by phase and retry text.
fn asleep(status: &Value) -> Vec<(String, Option<String>)> {
    status["asleep"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["phase"].as_str().unwrap().to_string(),
                r["retrying"].as_str().map(String::from),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wake_cut_off_by_the_network_is_retried_and_done_when_it_returns() {
    let fwd = Forwarder::start(&moto_url());
    let (id, cluster, yaml) = instance_and_service(R, "retry", 2).await;
    let settings = timeout_settings(
        R,
        TIMEOUT,
        json!({
            "aws": {"endpoint_url": fwd.url}
        }),
    );
    let cfg = ConfigDir::with_settings(&settings, &yaml);
    let d = Daemon::start(&cfg);

    // Asleep by idleness, both recorded as asleep.
    d.wait_status(TIMEOUT + Duration::from_secs(10), "asleep", |s| {
        s["state"] == "asleep" && s["operation"].is_null() && asleep(s).len() == 2
    })
    .await;
    assert_eq!(up(&id, &cluster).await, ("stopped".into(), 0));

    // The network goes at the first key press.
    fwd.cut();
    let cut = Instant::now();
    let status = d.ok("USER_ACTIVITY").await;
    assert_eq!(status["state"], "active", "{status}");
    let status = d
        .wait_status(Duration::from_secs(7), "retrying", |s| {
            !s["retrying"].is_null()
        })
        .await;
    let text = status["retrying"]["text"].as_str().unwrap().to_string();
    assert!(
        text.starts_with("waking: retrying (network unreachable, attempt "),
        "{status}"
    );
    assert_eq!(status["retrying"]["cause"], "network unreachable");
    assert_eq!(status["operation"], "waking", "{status}");
    assert_eq!(status["state"], "active", "{status}");
    assert_eq!(
        asleep(&status),
        vec![("waking".to_string(), Some(text.clone())); 2],
        "both still recorded, as waking: {status}"
    );
    assert_eq!(up(&id, &cluster).await, ("stopped".into(), 0));

    // It keeps trying while the network is down.
    tokio::time::sleep(Duration::from_secs(8).saturating_sub(cut.elapsed())).await;
    let status = d.ok("STATUS").await;
    assert!(
        status["retrying"]["attempts"].as_u64().unwrap() >= 2,
        "{status}"
    );
    assert_eq!(up(&id, &cluster).await, ("stopped".into(), 0));

    // Back 8 s later; no further input.
    fwd.restore();
    let back = Instant::now();
    while up(&id, &cluster).await != ("running".into(), 2) {
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "not running 5 s after the network returned: {}\n{}",
            d.ok("STATUS").await,
            d.log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let running_after = back.elapsed();
    let status = d
        .wait_status(
            Duration::from_secs(5).saturating_sub(running_after),
            "awake",
            |s| s["asleep"] == json!([]) && s["retrying"].is_null() && s["operation"].is_null(),
        )
        .await;
    assert_eq!(status["state"], "active", "{status}");
    eprintln!(
        "running {running_after:?} after the network returned (cut for {:?})",
        back - cut
    );
    assert!(
        ec2_state(R, &id)
            .await
            .1
            .iter()
            .all(|(k, _)| k != "cloudnap:sleeping"),
        "the sleep tag is gone"
    );
}
