//! The return is certain: with the real binary against moto, a wake is
//! never abandoned while the user is there, whatever failed. Expired
//! credentials (a `credential_process` the test switches between "works"
//! and "expired"): STATUS says what to do, and the wake is done within
//! seconds of signing in again, with no further input. A full state disk at
//! the return: the resources come up anyway, the records are written once
//! space is back, and a `kill -9` in between leaves nothing wrong. A
//! fire-and-forget `USER_ACTIVITY` (`sendto` then `close`) keeps resources
//! awake; the same sender's `STOP_EC2` is refused.
// tmpfs, setpriv-free signals and Unix sockets: Linux only.
#![cfg(target_os = "linux")]

mod common;
use common::*;
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Whether the EC2 instance runs and the ECS service has its tasks.
async fn up(region: &str, id: &str, cluster: &str) -> (String, i32) {
    (
        ec2_state(region, id).await.0,
        ecs_desired(region, cluster, "web").await.0,
    )
}

/// Whether either still carries the `cloudnap:sleeping` tag.
async fn tagged(region: &str, id: &str, cluster: &str) -> bool {
    let ec2 = ec2_state(region, id).await.1;
    let ecs = ecs_desired(region, cluster, "web").await.1;
    ec2.iter().any(|(k, _)| k == "cloudnap:sleeping")
        || ecs.iter().any(|k| k == "cloudnap:sleeping")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wake_waiting_for_expired_credentials_is_done_once_they_work_again() {
    const R: &str = "us-east-2";
    let (id, cluster, yaml) = instance_and_service(R, "expired", 2).await;
    let settings = timeout_settings(
        R,
        Duration::from_secs(120),
        json!({"aws": {"profile": "work"}}),
    );
    let cfg = ConfigDir::with_settings(&settings, &yaml);
    // A credential process as `aws configure export-credentials` behind an
    // SSO session: short-lived keys, or the SSO error once it has expired.
    let flag = cfg.file("expired");
    let script = cfg.file("credentials.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n\
             if [ -e {flag} ]; then\n\
             \x20 echo 'Error when retrieving token from sso: Token has expired and refresh failed' >&2\n\
             \x20 exit 1\n\
             fi\n\
             printf '{{\"Version\": 1, \"AccessKeyId\": \"testing\", \"SecretAccessKey\": \"testing\", \"Expiration\": \"%s\"}}\\n' \
             \"$(date -u -d '+5 seconds' +%Y-%m-%dT%H:%M:%SZ)\"\n",
            flag = flag.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(
        cfg.file("aws-config"),
        format!(
            "[profile work]\ncredential_process = {}\n",
            script.display()
        ),
    )
    .unwrap();
    let mut run = cfg.command(&["run"]);
    run.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY");
    let d = Daemon::spawn(run);

    d.sleep_now().await;
    assert_eq!(up(R, &id, &cluster).await, ("stopped".into(), 0));

    // Overnight the SSO session ends; the user comes back.
    std::fs::write(&flag, "").unwrap();
    assert_eq!(d.ok("USER_ACTIVITY").await["state"], "active");
    let advice = "credentials expired for profile work: sign in to wake 2 resources";
    let status = d
        .wait_status(Duration::from_secs(10), "waiting for credentials", |s| {
            s["retrying"]["advice"] == advice
        })
        .await;
    assert_eq!(
        status["retrying"]["cause"], "credentials expired",
        "{status}"
    );
    // The tray: red, with the same words.
    assert_eq!(
        status["tray"],
        json!({"icon": "error", "line": "Credentials expired for profile work: sign in to wake 2 resources"}),
        "{status}"
    );
    assert_eq!(status["retrying"]["operation"], "waking");
    let rows = status["asleep"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{status}");
    for row in rows {
        assert_eq!(row["phase"], "waking", "{status}");
        let text = row["retrying"].as_str().unwrap();
        assert!(
            text.starts_with("waking: retrying (credentials expired for profile work, attempt "),
            "{status}"
        );
    }
    let pending = status["retrying"]["resources"].as_array().unwrap();
    assert!(
        pending.len() == 2 && pending.iter().all(|p| p["profile"] == "work"),
        "{status}"
    );

    // Still tried while the user works, not given up.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let status = d.ok("STATUS").await;
    assert!(
        status["retrying"]["attempts"].as_u64().unwrap() >= 4,
        "{status}"
    );
    assert!(status["retrying"]["next_in_seconds"].as_f64().unwrap() <= 5.0);
    assert_eq!(up(R, &id, &cluster).await, ("stopped".into(), 0));
    d.logged(advice).await; // the log names the cause too

    // Signed in again; no further input.
    std::fs::remove_file(&flag).unwrap();
    let took = within(
        Duration::from_secs(10),
        "running at its capacity",
        || async { up(R, &id, &cluster).await == ("running".into(), 2) },
    )
    .await;
    eprintln!("at its exact capacity {took:?} after the credentials worked again");
    let status = d
        .wait_status(Duration::from_secs(10).saturating_sub(took), "awake", |s| {
            s["asleep"] == json!([]) && s["retrying"].is_null() && s["operation"].is_null()
        })
        .await;
    assert_eq!(status["state"], "active", "{status}");
    assert_eq!(status["tray"]["icon"], "active", "{status}");
    assert!(!tagged(R, &id, &cluster).await, "the sleep tags are gone");
}

/// A 256 KiB tmpfs mounted over a directory until dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path) -> Tmpfs {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
            .arg(dir)
            .status()
            .unwrap()
            .success();
        assert!(
            ok,
            "mount tmpfs on {} (the tests run as root)",
            dir.display()
        );
        Tmpfs(dir.to_path_buf())
    }

    /// Fills it with `filler` until no byte more fits.
    fn fill(&self) -> PathBuf {
        let filler = self.0.join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = [0u8; 4096];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.flush();
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The records in `state.json` (its `sleeping` list).
fn on_disk(state: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(state).unwrap();
    let file: Value = serde_json::from_str(&text).unwrap();
    file["sleeping"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_state_disk_at_the_return_does_not_keep_anything_down() {
    const R: &str = "us-west-1";
    let (id, cluster, yaml) = instance_and_service(R, "fulldisk", 2).await;
    let settings = timeout_settings(R, Duration::from_secs(120), json!({}));
    let cfg = ConfigDir::with_settings(&settings, &yaml);
    // The whole config dir, state.json with it, on a small tmpfs.
    let files: Vec<(PathBuf, Vec<u8>)> = [
        "settings.json",
        "services.yaml",
        "aws-config",
        "aws-credentials",
    ]
    .iter()
    .map(|f| (cfg.file(f), std::fs::read(cfg.file(f)).unwrap()))
    .collect();
    let disk = Tmpfs::mount(cfg.path());
    for (path, bytes) in &files {
        std::fs::write(path, bytes).unwrap();
    }
    let state = cfg.file("state.json");
    let mut d = Daemon::start(&cfg);

    // 1. Full at the return; space back later: up at once, written then.
    d.ok("SLEEP_NOW").await;
    assert_eq!(up(R, &id, &cluster).await, ("stopped".into(), 0));
    assert_eq!(on_disk(&state).len(), 2);
    let filler = disk.fill();
    d.ok("USER_ACTIVITY").await;
    within(Duration::from_secs(15), "up on a full disk", || async {
        up(R, &id, &cluster).await == ("running".into(), 2)
    })
    .await;
    let status = d
        .wait_status(Duration::from_secs(5), "waiting for the disk", |s| {
            !s["retrying"].is_null()
        })
        .await;
    assert_eq!(
        status["retrying"]["advice"],
        "cannot write the state dir (disk full): free space to finish waking",
        "{status}"
    );
    assert_eq!(
        status["retrying"]["cause"],
        "cannot write the state dir (disk full)"
    );
    assert_eq!(
        status["tray"],
        json!({"icon": "error", "line": "Cannot write the state dir (disk full): free space to finish waking"}),
        "{status}"
    );
    assert_eq!(status["asleep"], json!([]), "nothing is asleep: {status}");
    assert_eq!(on_disk(&state).len(), 2, "the file could not change");
    assert!(!tagged(R, &id, &cluster).await, "awake: the tags are gone");
    std::fs::remove_file(&filler).unwrap();
    let took = within(Duration::from_secs(5), "written", || async {
        on_disk(&state).is_empty()
    })
    .await;
    eprintln!("records written {took:?} after space returned");
    d.wait_status(Duration::from_secs(5), "done", |s| s["retrying"].is_null())
        .await;
    assert_eq!(up(R, &id, &cluster).await, ("running".into(), 2));

    // 2. The same, killed between the two; space back; a new run.
    d.ok("SLEEP_NOW").await;
    assert_eq!(up(R, &id, &cluster).await, ("stopped".into(), 0));
    let filler = disk.fill();
    d.ok("USER_ACTIVITY").await;
    within(Duration::from_secs(15), "up on a full disk", || async {
        up(R, &id, &cluster).await == ("running".into(), 2)
    })
    .await;
    // A sleep on the full disk stays as it is: no record, no stop.
    let e = d.err("SLEEP_NOW").await;
    assert!(e.contains("No space left on device"), "{e}");
    assert_eq!(up(R, &id, &cluster).await, ("running".into(), 2));
    assert!(!tagged(R, &id, &cluster).await);
    d.child.kill().unwrap(); // SIGKILL
    d.child.wait().unwrap();
    assert_eq!(
        on_disk(&state).len(),
        2,
        "killed before the records were written"
    );
    std::fs::remove_file(&filler).unwrap();
    let d = Daemon::start(&cfg);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        up(R, &id, &cluster).await,
        ("running".into(), 2),
        "the new run stops nothing"
    );
    d.ok("USER_ACTIVITY").await;
    let status = d
        .wait_status(Duration::from_secs(10), "reconciled", |s| {
            s["asleep"] == json!([]) && s["retrying"].is_null() && s["operation"].is_null()
        })
        .await;
    assert_eq!(status["state"], "active", "{status}");
    assert!(on_disk(&state).is_empty(), "{:?}", on_disk(&state));
    assert_eq!(up(R, &id, &cluster).await, ("running".into(), 2));
    assert!(!tagged(R, &id, &cluster).await);
    drop(d);
    drop(disk);
}

/// Sends `command` from a fresh UDP socket and closes it at once (Debian's
/// python3), while the daemon is stopped (SIGSTOP), so that the socket is
/// gone when the daemon reads the datagram.
fn fire_and_forget(d: &Daemon, command: &str) {
    let pid = d.child.id().to_string();
    let signal = |sig: &str| {
        assert!(Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success());
    };
    signal("-STOP");
    let out = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import socket, sys\n\
             s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
             s.sendto(sys.argv[3].encode(), (sys.argv[1], int(sys.argv[2])))\n\
             s.close()\n",
            &d.addr.ip().to_string(),
            &d.addr.port().to_string(),
            command,
        ])
        .output()
        .unwrap();
    signal("-CONT");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The echoed replies to `command` received on `events` so far.
fn echoed(events: &std::net::UdpSocket, command: &str) -> Vec<Value> {
    let mut buf = vec![0u8; 65_536];
    let mut found = Vec::new();
    while let Ok(n) = events.recv(&mut buf) {
        let v: Value = serde_json::from_slice(&buf[..n]).unwrap_or(Value::Null);
        if v["command"] == command {
            found.push(v);
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn fire_and_forget_activity_keeps_resources_awake_and_nothing_else_is_taken() {
    const R: &str = "ap-northeast-1";
    const TIMEOUT: Duration = Duration::from_secs(6);
    let id = ec2_instance(R, false, &[]).await;
    let events = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    events.set_nonblocking(true).unwrap();
    let settings = timeout_settings(
        R,
        TIMEOUT,
        json!({"udp_server": {"events_port": events.local_addr().unwrap().port()}}),
    );
    let cfg = ConfigDir::with_settings(
        &settings,
        &format!("ec2_instances:\n  - instance_id: {id}\n    region: {R}\n"),
    );
    let d = Daemon::start(&cfg);

    // Twice the timeout, one fire-and-forget activity a second.
    let t0 = Instant::now();
    while t0.elapsed() < TIMEOUT * 2 {
        fire_and_forget(&d, "USER_ACTIVITY");
        let status = d.ok("STATUS").await;
        assert_eq!(status["state"], "active", "{status}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(ec2_state(R, &id).await.0, "running");
    let counted = echoed(&events, "USER_ACTIVITY");
    assert!(counted.len() >= 10, "{counted:?}");
    assert!(
        counted
            .iter()
            .all(|r| r["ok"] == true && r["result"] == json!({"activity": "counted"})),
        "counted as presence, and told nothing more: {counted:?}"
    );

    // The same sender's STOP_EC2 is refused and changes nothing.
    fire_and_forget(&d, &format!("STOP_EC2:{id}:{R}"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let refused = echoed(&events, "STOP_EC2");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["ok"], false);
    let error = refused[0]["error"].as_str().unwrap();
    assert!(
        error.starts_with("permission denied: could not tell which user sent this"),
        "{error}"
    );
    assert_eq!(ec2_state(R, &id).await.0, "running");

    // No more activity: the timeout holds, so the activity did the keeping.
    d.wait_status(TIMEOUT + Duration::from_secs(10), "asleep", |s| {
        s["state"] == "asleep" && s["operation"].is_null()
    })
    .await;
    assert_eq!(ec2_state(R, &id).await.0, "stopped");
}
