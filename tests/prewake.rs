//! The pre-wake with the real binary against moto: a history seeded with
//! three weeks of returns at the same time of day, a resource asleep since
//! last night; cloudnap plans the pre-wake (STATUS says when), starts the
//! instance its time-to-ready ahead of the usual arrival, and puts it back
//! to sleep when nobody came within the grace.

mod common;
use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const R: &str = "ca-central-1";
const WEEK: f64 = 7.0 * 86_400.0;

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Moves the sleep cloudnap just recorded to `since` (state file and
/// history), and writes before it the user's returns at `usual` on the
/// same weekday of each of the last three weeks, after nights away.
fn seed(dir: &Path, since: f64, usual: f64) {
    let state = dir.join("state.json");
    let mut records: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    let mut moved = 0;
    set_since(&mut records, since, &mut moved);
    assert_eq!(moved, 1, "one record: {records}");
    std::fs::write(&state, serde_json::to_vec_pretty(&records).unwrap()).unwrap();
    // The sleep cloudnap logged, as the model of every line.
    let logged = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
    let sleep: Value = serde_json::from_str(logged.lines().next().unwrap()).unwrap();
    assert_eq!(sleep["change"], "sleep", "{logged}");
    let line = |at: f64, change: &str| {
        let mut e = sleep.clone();
        e["at"] = json!(at);
        e["change"] = json!(change);
        e["trigger"] = json!("idle");
        format!("{e}\n")
    };
    let mut history = String::new();
    for w in (1..=3).rev() {
        let back = usual - f64::from(w) * WEEK;
        history.push_str(&line(back - 14.0 * 3600.0, "sleep"));
        history.push_str(&line(back, "wake"));
    }
    history.push_str(&line(since, "sleep"));
    std::fs::write(dir.join("history.jsonl"), history).unwrap();
}

fn set_since(v: &mut Value, since: f64, moved: &mut usize) {
    match v {
        Value::Object(m) => {
            if let Some(s) = m.get_mut("since") {
                *s = json!(since as u64);
                *moved += 1;
            }
            m.values_mut().for_each(|v| set_since(v, since, moved));
        }
        Value::Array(a) => a.iter_mut().for_each(|v| set_since(v, since, moved)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_usual_arrival_wakes_ahead_and_sleeps_again_when_nobody_came() {
    let id = ec2_instance(R, false, &[]).await;
    let yaml = format!("ec2_instances:\n  - instance_id: {id}\n    region: {R}\n");
    let settings = timeout_settings(
        R,
        Duration::from_secs(3600),
        json!({"prewake": {"grace_minutes": 0.5}}),
    );
    let cfg = ConfigDir::with_settings(&settings, &yaml);
    {
        let d = Daemon::start(&cfg);
        d.ok("SLEEP_NOW").await;
        assert_eq!(ec2_state(R, &id).await.0, "stopped");
    }
    // The user usually arrives 90 s from now; asleep since 10 h ago. An
    // instance takes 60 s to be ready (no time measured yet): the
    // pre-wake starts it 30 s from now, and gives up 30 s after the
    // usual time.
    let t0 = unix_now();
    let usual = t0 + 90.0;
    seed(cfg.path(), t0 - 10.0 * 3600.0, usual);
    let d = Daemon::start(&cfg);
    let status = d
        .wait_status(Duration::from_secs(10), "planned", |s| {
            s["prewake"].is_string()
        })
        .await;
    assert_eq!(status["state"], "asleep", "{status}");
    let clock = chrono::DateTime::from_timestamp(usual as i64, 0)
        .unwrap()
        .with_timezone(&chrono::Local)
        .format("%H:%M")
        .to_string();
    let plan = status["prewake"].as_str().unwrap_or_default().to_string();
    assert!(
        plan.starts_with("pre-wake ") && plan.ends_with(&format!("for your usual {clock}")),
        "{status}"
    );
    assert!(status["tray"]["line"].as_str().unwrap().contains(&plan));

    // Not before its time...
    tokio::time::sleep(Duration::from_secs_f64((t0 + 22.0 - unix_now()).max(0.0))).await;
    assert_eq!(ec2_state(R, &id).await.0, "stopped", "too early");
    // ...then started, only it, with nobody there.
    let woken = d
        .wait_status(Duration::from_secs(30), "pre-woken", |s| {
            s["asleep"].as_array().is_some_and(|a| a.is_empty())
        })
        .await;
    let at = unix_now() - t0;
    assert!((25.0..50.0).contains(&at), "woken {at:.0} s in: {woken}");
    assert_eq!(ec2_state(R, &id).await.0, "running");
    assert_eq!(woken["state"], "asleep", "the user is still away");

    // Nobody came by the usual time plus the grace: back to sleep.
    let slept = d
        .wait_status(Duration::from_secs(150), "asleep again", |s| {
            s["asleep"].as_array().is_some_and(|a| a.len() == 1)
        })
        .await;
    let at = unix_now() - t0;
    assert!(
        at >= 118.0,
        "slept again {at:.0} s in, before the grace ran out: {slept}"
    );
    // The record is written before the stop: the stop follows.
    let t1 = std::time::Instant::now();
    while ec2_state(R, &id).await.0 != "stopped" {
        assert!(t1.elapsed() < Duration::from_secs(30), "not stopped again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Logged once the stop returned.
    let by_prewake = || {
        let history = std::fs::read_to_string(cfg.file("history.jsonl")).unwrap();
        (history.lines())
            .filter(|l| l.contains("\"pre_wake\""))
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["change"].clone())
            .collect::<Vec<Value>>()
    };
    let t2 = std::time::Instant::now();
    while by_prewake().len() < 2 && t2.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        by_prewake(),
        ["wake", "sleep"],
        "a wake and a sleep by the pre-wake"
    );
    d.logged("nobody came by").await;
}
