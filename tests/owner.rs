//! Only its owner can command cloudnap: the real binary run by one Unix
//! user, commanded over real UDP by another (refused, nothing changes) and
//! by its owner (accepted, also through `nc`); and signed commands where a
//! plain token is not enough.
// Unix users and setpriv: Linux only.
#![cfg(target_os = "linux")]

mod common;
use common::*;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::process::Command;

const R: &str = "eu-west-3";
const OWNER: &str = "cloudnap-owner";
const OTHER: &str = "cloudnap-other";
const TOKEN: &str = "s3cr3t-t0ken";

/// The uid of `user`, created (a system user with no home) if missing.
fn unix_user(user: &str) -> u32 {
    let id = || Command::new("id").args(["-u", user]).output().unwrap();
    let mut out = id();
    if !out.status.success() {
        let made = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                user,
            ])
            .output()
            .unwrap();
        // Another test binary may have created it meanwhile.
        out = id();
        assert!(
            out.status.success(),
            "useradd {user} (the tests run as root): {}",
            String::from_utf8_lossy(&made.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// `setpriv` arguments that run a program as `uid`.
fn as_user(uid: u32) -> Vec<String> {
    vec![
        format!("--reuid={uid}"),
        format!("--regid={uid}"),
        "--clear-groups".into(),
        "--".into(),
    ]
}

/// Sends each command from a socket of `uid` (Debian's own python3, which
/// any user can run) and returns the replies.
fn send_as(uid: u32, to: SocketAddr, commands: &[&str]) -> Vec<Value> {
    const SEND: &str = "import socket, sys\n\
        for c in sys.argv[3:]:\n\
        \x20   s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(10)\n\
        \x20   s.sendto(c.encode(), (sys.argv[1], int(sys.argv[2])))\n\
        \x20   print(s.recv(65535).decode(), flush=True)\n";
    let out = Command::new("setpriv")
        .args(as_user(uid))
        .args([
            "/usr/bin/python3",
            "-c",
            SEND,
            &to.ip().to_string(),
            &to.port().to_string(),
        ])
        .args(commands)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A copy of the binary that other users can run (the build dir is root's).
fn shared_binary() -> (tempfile::TempDir, String) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.path().join("cloudnap");
    std::fs::copy(env!("CARGO_BIN_EXE_cloudnap"), &bin).unwrap();
    (dir, bin.to_string_lossy().into_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn another_local_user_cannot_command_it_and_its_owner_can() {
    let (owner, other) = (unix_user(OWNER), unix_user(OTHER));
    let registered = ec2_instance(R, false, &[]).await;
    let unregistered = ec2_instance(R, false, &[]).await;
    let cfg = ConfigDir::with_settings(
        &daemon_settings(&[R], detectors_off(json!({}))),
        &format!("ec2_instances:\n  - instance_id: {registered}\n    region: {R}\n"),
    );
    let chown = Command::new("chown")
        .args(["-R", &format!("{owner}:{owner}")])
        .arg(cfg.path())
        .status()
        .unwrap();
    assert!(chown.success());
    let (_bin_dir, bin) = shared_binary();
    let mut pre: Vec<String> = as_user(owner);
    pre.push(bin);
    let pre: Vec<&str> = pre.iter().map(String::as_str).collect();
    let d = Daemon::spawn(cfg.command_via("setpriv", &pre, &["run"]));
    let to = d.addr;
    let services = std::fs::read(cfg.file("services.yaml")).unwrap();

    let register = format!("REGISTER_EC2:{unregistered}:{R}");
    let stop = format!("STOP_EC2:{registered}:{R}");
    let refused = send_as(
        other,
        to,
        &[
            &register,
            &stop,
            "SLEEP_NOW",
            r#"{"type":"SLEEP_NOW","id":"x1"}"#,
        ],
    );
    for reply in &refused[..3] {
        assert_eq!(reply["ok"], false, "{reply}");
        assert_eq!(
            reply["error"], "permission denied: this cloudnap belongs to another user",
            "{reply}"
        );
    }
    assert_eq!(refused[3]["type"], "ERROR", "{}", refused[3]);
    assert_eq!(refused[3]["reply_to"], "x1");
    // Nothing changed: the file, AWS, the daemon's state.
    assert_eq!(std::fs::read(cfg.file("services.yaml")).unwrap(), services);
    assert_eq!(ec2_state(R, &registered).await.0, "running");
    let status = d.ok("STATUS").await;
    assert_eq!(status["state"], "active", "{status}");
    assert!(status["asleep"].as_array().unwrap().is_empty());
    assert!(
        d.log
            .lock()
            .unwrap()
            .contains("refused a command from 127.0.0.1:"),
        "refusals are logged"
    );

    // The owner's own processes (not root: the owner's uid) are obeyed.
    let accepted = send_as(owner, to, &[&register, &stop]);
    for reply in &accepted {
        assert_eq!(reply["ok"], true, "{reply}");
    }
    let yaml = std::fs::read_to_string(cfg.file("services.yaml")).unwrap();
    assert!(yaml.contains(&unregistered), "{yaml}");
    assert_eq!(ec2_state(R, &registered).await.0, "stopped");
    let slept = &send_as(owner, to, &["SLEEP_NOW"])[0];
    assert_eq!(slept["ok"], true, "{slept}");
    assert_eq!(ec2_state(R, &unregistered).await.0, "stopped");

    // `nc -u` from the owner's shell, no token.
    let nc = Command::new("setpriv")
        .args(as_user(owner))
        .args([
            "sh",
            "-c",
            &format!("echo STATUS | nc -u -w1 127.0.0.1 {}", to.port()),
        ])
        .output()
        .unwrap();
    let reply: Value = serde_json::from_slice(&nc.stdout)
        .unwrap_or_else(|_| panic!("nc: {}", String::from_utf8_lossy(&nc.stderr)));
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["result"]["state"], "asleep", "{reply}");
}

/// The signing snippets of docs/protocol.md, exactly as written there.
fn doc_snippet(marker: &str) -> String {
    let doc = include_str!("../docs/protocol.md");
    let after = &doc[doc.find(marker).unwrap()..];
    let start = after.find("```").unwrap();
    let body = &after[start..];
    let body = &body[body.find('\n').unwrap() + 1..];
    body[..body.find("```").unwrap()].to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn off_loopback_only_signed_commands_run_and_none_runs_twice() {
    // Bound to every address: commands must be signed (the default there).
    let (cfg, d) = {
        let cfg = ConfigDir::with_settings(
            &daemon_settings(
                &[R],
                detectors_off(json!({"udp_server": {"ip": "0.0.0.0", "token": TOKEN}})),
            ),
            "",
        );
        let d = Daemon::start(&cfg);
        (cfg, d)
    };
    let to = SocketAddr::from(([127, 0, 0, 1], d.addr.port()));
    let ask = |datagram: String| async move { request(to, &datagram).await };
    let error = |r: &Value| r["error"].as_str().unwrap_or_default().to_string();
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    };
    // Signatures made here with Python's hmac, as a third-party client would.
    let mac = |ts: i64, nonce: &str, command: &str, key: &str| {
        let out = Command::new("/usr/bin/python3")
            .args([
                "-c",
                "import hmac,sys;print(hmac.new(sys.argv[1].encode(),sys.argv[2].encode(),'sha256').hexdigest())",
                key,
                &format!("{ts}:{nonce}:{command}"),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let sign = |ts: i64, nonce: &str, command: &str, key: &str| {
        format!(
            "AUTH:{ts}:{nonce}:{}:{command}",
            mac(ts, nonce, command, key)
        )
    };

    let r = ask("STATUS".into()).await;
    assert!(error(&r).contains("commands here must be signed"), "{r}");
    let r = ask(format!("TOKEN:{TOKEN}:STATUS")).await;
    assert!(error(&r).contains("plain TOKEN is refused here"), "{r}");
    assert!(error(&r).contains("clear text"), "says why: {r}");

    let signed = sign(now(), "n-1", "STATUS", TOKEN);
    let r = ask(signed.clone()).await;
    assert_eq!(r["ok"], true, "{r}");
    let r = ask(signed).await;
    assert!(error(&r).contains("replayed"), "{r}");
    let r = ask(sign(now() - 120, "n-2", "STATUS", TOKEN)).await;
    assert!(error(&r).contains("from this machine's clock"), "{r}");
    let r = ask(sign(now(), "n-3", "STATUS", "guessed-token")).await;
    assert_eq!(error(&r), "wrong signature", "{r}");
    // The MAC covers the command: a changed command is a wrong signature.
    let tampered = sign(now(), "n-4", "STATUS", TOKEN).replace(":STATUS", ":SLEEP_NOW");
    assert_eq!(error(&ask(tampered).await), "wrong signature");

    // A signed JSON envelope keeps its id.
    let (ts, envelope) = (now(), r#"{"type":"STATUS","id":"j1"}"#);
    let wrapped = json!({"auth": {"ts": ts, "nonce": "n-5", "mac": mac(ts, "n-5", envelope, TOKEN)},
        "signed": envelope});
    let r = ask(wrapped.to_string()).await;
    assert_eq!(
        (&r["type"], &r["reply_to"]),
        (&json!("STATUS"), &json!("j1")),
        "{r}"
    );

    // `cloudnap send --to` signs by itself.
    let out = cfg
        .command(&["send", "--to", &to.to_string(), "STATUS"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // The documented Python and shell snippets work as written.
    let out = Command::new("/usr/bin/python3")
        .args([
            "-c",
            &doc_snippet("<!-- sign.py -->"),
            TOKEN,
            "127.0.0.1",
            &to.port().to_string(),
            "STATUS",
        ])
        .output()
        .unwrap();
    let r: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("sign.py: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(r["ok"], true, "{r}");
    let out = Command::new("sh")
        .args(["-c", &doc_snippet("<!-- sign.sh -->")])
        .env("token", TOKEN)
        .env("host", "127.0.0.1")
        .env("port", to.port().to_string())
        .env("cmd", "STATUS")
        .output()
        .unwrap();
    let r: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("sign.sh: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(r["ok"], true, "{r}");

    let log = d.log.lock().unwrap().clone();
    assert!(log.contains("refused a command from 127.0.0.1:"), "{log}");
    assert!(!log.contains(TOKEN), "the token is never logged: {log}");
}
