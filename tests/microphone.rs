//! Calls and listening: a microphone in use counts as presence. The real
//! binary against PulseAudio (a null source as the microphone, `parecord`
//! as the call: no sound involved) and moto.

mod common;
// PulseAudio's runtime dir goes into this process's environment, and from
// there to the daemon.
common::before_main!(Pulse);
use common::*;
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A `pactl` call; its output.
fn pactl(args: &[&str]) -> String {
    let out = Command::new("pactl").args(args).output().unwrap();
    assert!(out.status.success(), "pactl {args:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Records from `source` (to nowhere) until killed.
fn record(source: &str) -> Child {
    Command::new("parecord")
        .args(["--raw", "--device", source])
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits until the sound server lists `n` recordings.
fn wait_recordings(n: usize) {
    let t0 = std::time::Instant::now();
    while pactl(&["list", "short", "source-outputs"]).lines().count() != n {
        assert!(t0.elapsed() < Duration::from_secs(10), "{n} recordings");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_microphone_in_use_keeps_the_user_present_and_what_plays_does_not() {
    require_pulse();
    let region = "sa-east-1";
    let mic = format!("cloudnap_mic_{}", std::process::id());
    let module = pactl(&[
        "load-module",
        "module-null-source",
        &format!("source_name={mic}"),
    ]);
    let id = ec2_instance(region, false, &[]).await;
    let services = format!("ec2_instances:\n  - instance_id: {id}\n    region: {region}\n");
    // A 3-second timeout and no input detector: only the microphone (and
    // commands) show the user is there.
    let settings = daemon_settings(
        &[region],
        detectors_off(json!({
            "activity_monitor": {"inactivity_timeout_minutes": 0.05, "warning_minutes": 0},
            "microphone": {"enabled": true, "check_interval_sec": 0.5},
            "busy": {"enabled": false}
        })),
    );
    let cfg = ConfigDir::with_settings(&settings, &services);

    // A call (the microphone) and something listening to what plays (the
    // output's monitor, which is not a microphone).
    let mut call = record(&mic);
    let mut monitor = record("vsink.monitor");
    wait_recordings(2);
    let mut command = cfg.command(&["run"]);
    command.env("XDG_RUNTIME_DIR", std::env::var("XDG_RUNTIME_DIR").unwrap());
    let d = Daemon::spawn(command);

    let status = d
        .wait_status(Duration::from_secs(10), "microphone running", |s| {
            s["detectors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["name"] == "microphone" && r["state"] == "running")
        })
        .await;
    assert_eq!(status["inputs"], "disabled in settings", "{status}");
    // Three timeouts long, the call keeps the user present.
    tokio::time::sleep(Duration::from_secs(9)).await;
    let status = d.ok("STATUS").await;
    assert_eq!(status["state"], "active", "{status}");
    assert_eq!(status["last_activity"]["kind"], "microphone", "{status}");
    assert_eq!(status["last_activity"]["presence"], true, "{status}");
    assert!(status["last_activity"]["seconds_ago"].as_f64().unwrap() < 2.0);
    assert_eq!(ec2_state(region, &id).await.0, "running");

    // The call ends; the monitor recording goes on: nothing is present, so
    // the resources sleep after the timeout.
    call.kill().unwrap();
    call.wait().unwrap();
    wait_recordings(1);
    let status = d
        .wait_status(Duration::from_secs(15), "asleep", |s| {
            s["state"] == "asleep"
        })
        .await;
    assert!(status["operation"].is_null() || status["operation"] == "sleeping");
    d.wait_status(Duration::from_secs(15), "done sleeping", |s| {
        s["operation"].is_null()
    })
    .await;
    assert_eq!(ec2_state(region, &id).await.0, "stopped");

    // A new call wakes them.
    let mut call = record(&mic);
    d.wait_status(Duration::from_secs(15), "awake", |s| {
        s["state"] == "active" && s["asleep"].as_array().is_some_and(|a| a.is_empty())
    })
    .await;
    assert_eq!(ec2_state(region, &id).await.0, "running");

    for child in [&mut call, &mut monitor] {
        let _ = child.kill();
        let _ = child.wait();
    }
    pactl(&["unload-module", &module]);
}
