//! Holds with the real binary against moto: `cloudnap hold -- COMMAND` keeps
//! everything awake exactly as long as the command runs, a killed `hold`
//! process lets go within its lease, the exit code is passed through, and
//! STATUS and `cloudnap status` say why what is up while the user is away
//! stays up.

mod common;
#[path = "common/forwarder.rs"]
mod forwarder;
use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const R: &str = "ap-southeast-2";
/// The inactivity timeout of these tests.
const TIMEOUT: Duration = Duration::from_secs(6);
/// The lease `cloudnap hold` is given here (the default is 2 minutes): long
/// enough that a loaded CI machine renews it in time (renewed every 1.7 s).
const LEASE: &str = "5";

/// Settings with a 6 s timeout and no warning, activity from
/// `USER_ACTIVITY` only, on `port` (0: any).
fn settings(port: u16) -> String {
    let mut s: Value = serde_json::from_str(&daemon_settings(
        &[R],
        detectors_off(json!({
            "activity_monitor": {
                "inactivity_timeout_minutes": TIMEOUT.as_secs_f64() / 60.0,
                "warning_minutes": 0
            }
        })),
    ))
    .unwrap();
    s["udp_server"]["port"] = port.into();
    s.to_string()
}

/// One running EC2 instance and one ECS service at 2 tasks, registered.
async fn fleet() -> (String, String, String) {
    let id = ec2_instance(R, false, &[]).await;
    let cluster = unique("hold");
    ecs_service(R, &cluster, "web", 2).await;
    let yaml = format!(
        "ec2_instances:\n  - instance_id: {id}\n    region: {R}\necs_services:\n  - cluster_name: {cluster}\n    service_name: web\n    region: {R}\n"
    );
    (id, cluster, yaml)
}

async fn up(id: &str, cluster: &str) -> (String, i32) {
    (
        ec2_state(R, id).await.0,
        ecs_desired(R, cluster, "web").await.0,
    )
}

/// `cloudnap hold --to ADDR --lease-seconds 5 ARGS...`.
fn hold(cfg: &ConfigDir, d: &Daemon, args: &[&str]) -> std::process::Command {
    let addr = d.addr.to_string();
    let mut all = vec!["hold", "--to", &addr, "--lease-seconds", LEASE];
    all.extend_from_slice(args);
    cfg.command(&all)
}

/// Waits until the daemon has `n` holds; returns STATUS.
async fn holds(d: &Daemon, n: usize, limit: Duration) -> Value {
    d.wait_status(limit, &format!("{n} hold(s)"), |s| {
        s["holds"].as_array().map(Vec::len) == Some(n)
    })
    .await
}

/// Waits until both resources are asleep; returns how long it took.
async fn asleep_within(id: &str, cluster: &str, limit: Duration) -> Duration {
    let t0 = Instant::now();
    loop {
        if up(id, cluster).await == ("stopped".into(), 0) {
            return t0.elapsed();
        }
        assert!(t0.elapsed() < limit, "not asleep after {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hold_keeps_awake_while_the_command_runs_and_a_killed_hold_lets_go() {
    let (id, cluster, yaml) = fleet().await;
    let cfg = ConfigDir::with_settings(&settings(0), &yaml);
    let d = Daemon::start(&cfg);

    // Held for exactly as long as `sleep 20` runs: three timeouts and more.
    let mut held = hold(&cfg, &d, &["--", "sleep", "20"]).spawn().unwrap();
    let status = holds(&d, 1, Duration::from_secs(5)).await;
    let h = &status["holds"][0];
    assert_eq!(h["reason"], "sleep 20", "{status}");
    assert_eq!(h["lease_seconds"], 5.0, "{status}");
    assert!(h["ends_in_seconds"].is_null(), "while it runs: {status}");
    assert_eq!(status["state"], "paused", "{status}");
    let started = Instant::now();
    while held.try_wait().unwrap().is_none() {
        assert_eq!(
            up(&id, &cluster).await,
            ("running".into(), 2),
            "slept while held"
        );
        let status = d.ok("STATUS").await;
        if status["holds"] == json!([]) {
            // `sleep 20` ended between the check above and STATUS (seen in
            // CI): the hold process lets go, then exits.
            let gone = Instant::now();
            while held.try_wait().unwrap().is_none() {
                assert!(gone.elapsed() < Duration::from_secs(2), "{status}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            break;
        }
        assert_eq!(status["holds"].as_array().unwrap().len(), 1, "{status}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "sleep 20 still runs"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let ended = Instant::now();
    assert!(
        started.elapsed() >= Duration::from_secs(18),
        "the hold process ended with its command: {:?}",
        started.elapsed()
    );
    assert_eq!(held.wait().unwrap().code(), Some(0));
    // Released at once; the resources sleep one timeout later.
    let status = d.ok("STATUS").await;
    assert_eq!(status["holds"], json!([]), "{status}");
    asleep_within(&id, &cluster, TIMEOUT + Duration::from_secs(6)).await;
    let slept_after = ended.elapsed();
    assert!(
        slept_after >= TIMEOUT - Duration::from_millis(500),
        "slept {slept_after:?} after the command ended, before the timeout"
    );

    // A hold made while asleep wakes them; a `hold` killed with SIGKILL lets
    // go when its 5 s lease runs out, and they sleep a timeout after that.
    let mut killed = hold(&cfg, &d, &["--", "sleep", "60"]).spawn().unwrap();
    holds(&d, 1, Duration::from_secs(5)).await;
    let t0 = Instant::now();
    while up(&id, &cluster).await != ("running".into(), 2) {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the hold did not wake them"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        d.ok("STATUS").await["holds"].as_array().unwrap().len(),
        1,
        "renewed past its first lease"
    );
    killed.kill().unwrap(); // SIGKILL: no release is sent
    killed.wait().unwrap();
    let t0 = Instant::now();
    holds(&d, 0, Duration::from_secs(8)).await;
    let let_go = t0.elapsed();
    assert!(
        let_go <= Duration::from_millis(5500),
        "let go after {let_go:?}"
    );
    assert_eq!(up(&id, &cluster).await, ("running".into(), 2));
    asleep_within(&id, &cluster, TIMEOUT + Duration::from_secs(6)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hold_passes_the_exit_code_through_and_a_timed_hold_returns_at_once() {
    let cfg = ConfigDir::with_settings(&settings(0), "");
    let d = Daemon::start(&cfg);
    let out = hold(&cfg, &d, &["--", "sh", "-c", "exit 7"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    assert_eq!(d.ok("STATUS").await["holds"], json!([]), "released");

    let out = hold(&cfg, &d, &["90m", "--reason", "demo at 3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("HOLD_RELEASE:"), "{text}");
    let listed = d.ok("LIST_HOLDS").await;
    let h = &listed["holds"][0];
    assert_eq!(h["reason"], "demo at 3", "{listed}");
    let ends = h["ends_in_seconds"].as_f64().unwrap();
    assert!((5390.0..=5400.0).contains(&ends), "{listed}");
    let released = d.ok(&format!("HOLD_RELEASE:{}", h["id"])).await;
    assert_eq!(released["released"]["reason"], "demo at 3");
    assert!(d
        .err(&format!("HOLD_RELEASE:{}", h["id"]))
        .await
        .contains("no hold"));
    assert_eq!(d.ok("STATUS").await["state"], "active");

    // Bad usage: exit code 2 with the reason.
    let out = hold(&cfg, &d, &["soon"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("duration `soon`"));
}

#[tokio::test(flavor = "multi_thread")]
async fn status_says_why_what_is_up_while_away_stays_up() {
    let (id, cluster, mut yaml) = fleet().await;
    let protected = ec2_instance(R, false, &[("cloudnap:protect", "true")]).await;
    yaml = yaml.replace(
        "ecs_services:",
        &format!("  - instance_id: {protected}\n    region: {R}\necs_services:"),
    );
    let cfg = ConfigDir::with_settings(&settings(free_udp_port()), &yaml);
    let d = Daemon::start(&cfg);
    let web = format!("{cluster}/web");
    let held = d
        .send(
            &json!({"type": "HOLD", "content": {"minutes": 60, "reason": "deploy", "only": web}})
                .to_string(),
        )
        .await;
    assert_eq!(held["type"], "HOLD", "{held}");
    assert_eq!(held["content"]["hold"]["only"]["service_name"], "web");
    assert_eq!(
        d.ok("STATUS").await["state"],
        "active",
        "one resource held: the countdown runs"
    );
    let status = d
        .wait_status(TIMEOUT + Duration::from_secs(8), "asleep", |s| {
            // The report of the sleep is in once it is done.
            s["state"] == "asleep" && s["awake"] != json!([])
        })
        .await;
    assert_eq!(ec2_state(R, &id).await.0, "stopped");
    assert_eq!(ec2_state(R, &protected).await.0, "running");
    assert_eq!(ecs_desired(R, &cluster, "web").await.0, 2, "held");
    let why: Vec<(String, Vec<String>)> = status["awake"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let name = r["resource"]["instance_id"]
                .as_str()
                .or(r["resource"]["service_name"].as_str())
                .unwrap()
                .to_string();
            let why = r["why"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w.as_str().unwrap().to_string())
                .collect();
            (name, why)
        })
        .collect();
    assert_eq!(why.len(), 2, "{status}");
    assert!(
        why.contains(&(protected.clone(), vec!["protected".into()])),
        "{why:?}"
    );
    let (_, web_why) = why.iter().find(|(n, _)| n == "web").unwrap();
    assert!(
        web_why.len() == 1 && web_why[0].starts_with("held by deploy until "),
        "{web_why:?}"
    );

    let out = cfg.run(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("not asleep while you are away:"), "{text}");
    assert!(
        text.contains(&format!("{protected} ({R}): protected")),
        "{text}"
    );
    assert!(
        text.contains("web (ap-southeast-2): held by deploy until "),
        "{text}"
    );
    assert!(text.contains("deploy (ECS "), "the hold is listed: {text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn hold_only_ready_wakes_that_resource_alone_and_runs_the_command_once_it_is_ready() {
    let fwd = forwarder::Forwarder::start(&moto_url());
    let (id, cluster, yaml) = fleet().await;
    let mut s: Value = serde_json::from_str(&settings(0)).unwrap();
    s["aws"]["endpoint_url"] = fwd.url.clone().into();
    let cfg = ConfigDir::with_settings(&s.to_string(), &yaml);
    let d = Daemon::start(&cfg);
    asleep_within(&id, &cluster, TIMEOUT + Duration::from_secs(10)).await;
    d.wait_status(Duration::from_secs(5), "asleep", |s| s["state"] == "asleep")
        .await;

    // The instance looks not ready (status checks initializing) for 8 s.
    let t0 = Instant::now();
    fwd.slow(&id, t0 + Duration::from_secs(8));
    let started = cfg.file("started");
    let script = format!("date +%s > {}; exit 3", started.display());
    let held = hold(
        &cfg,
        &d,
        &["--only", &id, "--ready", "--", "sh", "-c", &script],
    )
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let mut woken = None;
    while !started.exists() {
        let (ec2, ecs) = up(&id, &cluster).await;
        assert_eq!(ecs, 0, "the service woke too");
        if ec2 == "running" {
            woken.get_or_insert(t0.elapsed());
            let status = d.ok("STATUS").await;
            assert_eq!(status["state"], "asleep", "{status}");
        }
        assert!(
            t0.elapsed() < Duration::from_secs(40),
            "the command never started"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ran_after = t0.elapsed();
    let woken = woken.expect("running before the command");
    assert!(woken < Duration::from_secs(6), "woken after {woken:?}");
    assert!(
        ran_after >= Duration::from_millis(7900),
        "the command started {ran_after:?} after, before the instance was ready"
    );
    let out = held.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("waiting for {id} to be ready...")) && err.contains("ready after"),
        "{err}"
    );
    assert_eq!(ecs_desired(R, &cluster, "web").await.0, 0, "still asleep");
    // The service stayed asleep all along; the instance may already be on
    // its way back to sleep, its hold over while nobody is there.
    let status = d.ok("STATUS").await;
    let rows = status["asleep"].as_array().unwrap();
    let web = |r: &&Value| r["resource"]["service_name"] == "web";
    assert_eq!(rows.iter().filter(web).count(), 1, "{status}");
    assert!(
        (rows.iter())
            .filter(|r| !web(r))
            .all(|r| r["resource"]["instance_id"] == id.as_str()),
        "{status}"
    );
}
