//! Wake on connect with the real OpenSSH client and server: a private
//! `sshd` on 127.0.0.1 stands in for an EC2 instance in moto (its entry's
//! `ssh_address` points at it), and `ssh -o ProxyCommand='cloudnap
//! ssh-proxy %h %p' devbox` wakes that instance alone, holds it while the
//! session lasts and lets go when it ends; while the user is away it wakes
//! nothing unless `--wake` is given; an unregistered host is relayed
//! untouched.
// Debian's openssh-server stands in for the instance: Linux only.
#![cfg(target_os = "linux")]

mod common;
use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const R: &str = "ap-south-1";
/// The inactivity timeout of this test.
const TIMEOUT: Duration = Duration::from_secs(6);

/// A private sshd on 127.0.0.1, killed on drop.
struct Sshd {
    child: Child,
    port: u16,
    /// The client's private key.
    key: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path) {
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "ssh-keygen {path:?}");
}

/// Starts `sshd -D -e` as this user with its own host key and config,
/// accepting one test key; waits until it answers.
fn sshd() -> Sshd {
    let dir = tempfile::tempdir().unwrap();
    let (host, key) = (dir.path().join("host_key"), dir.path().join("user_key"));
    keygen(&host);
    keygen(&key);
    let authorized = dir.path().join("authorized_keys");
    std::fs::copy(key.with_extension("pub"), &authorized).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nUsePAM no\nAuthorizedKeysFile {}\n\
             StrictModes no\nPidFile none\nPasswordAuthentication no\nPermitRootLogin prohibit-password\n",
            host.display(),
            authorized.display()
        ),
    )
    .unwrap();
    // sshd refuses to start without its privilege separation directory.
    std::fs::create_dir_all("/run/sshd").unwrap();
    let child = Command::new("/usr/sbin/sshd")
        .args(["-D", "-e", "-f"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("/usr/sbin/sshd (openssh-server, installed by build/env.sh)");
    let sshd = Sshd {
        child,
        port,
        key,
        _dir: dir,
    };
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(20), "sshd did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    sshd
}

/// `ssh -F /dev/null ... HOST COMMAND` through `cloudnap ssh-proxy EXTRA %h
/// %p` in `cfg`, with the environment the real binary gets in tests.
fn ssh(cfg: &ConfigDir, d: &Daemon, sshd: &Sshd, extra: &str, host: &[&str], cmd: &str) -> Command {
    let env = cfg.command(&[]);
    let proxy = format!(
        "{} --config-dir {} ssh-proxy --to {} --lease-seconds 5 --wait-seconds 60 {extra} %h %p",
        env!("CARGO_BIN_EXE_cloudnap"),
        cfg.path().display(),
        d.addr
    );
    let mut c = Command::new("ssh");
    for (k, v) in env.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c.args(["-F", "/dev/null", "-i"])
        .arg(&sshd.key)
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "LogLevel=ERROR",
            "-o",
            &format!("ProxyCommand={proxy}"),
        ])
        .args(host)
        .arg(cmd)
        .stdin(Stdio::null());
    c
}

fn run(mut c: Command) -> Output {
    let out = c.output().unwrap();
    eprintln!(
        "$ {c:?}\nexit {:?}\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The instance ids STATUS shows asleep.
fn asleep(status: &Value) -> Vec<String> {
    let mut ids: Vec<String> = (status["asleep"].as_array().unwrap().iter())
        .map(|r| r["resource"]["instance_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

async fn wait_state(id: &str, want: &str, limit: Duration) -> Duration {
    let t0 = Instant::now();
    loop {
        if ec2_state(R, id).await.0 == want {
            return t0.elapsed();
        }
        assert!(t0.elapsed() < limit, "{id} not {want} after {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ssh_wakes_only_its_instance_holds_it_while_connected_and_not_while_away() {
    let sshd = sshd();
    let devbox = ec2_instance(R, false, &[("Name", "devbox")]).await;
    let other = ec2_instance(R, false, &[("Name", "other")]).await;
    let yaml = format!(
        "ec2_instances:\n  - instance_id: {devbox}\n    region: {R}\n    ssh_address: 127.0.0.1:{}\n  - instance_id: {other}\n    region: {R}\n",
        sshd.port
    );
    let settings = timeout_settings(
        R,
        TIMEOUT,
        json!({"aws": {"service_state_check_interval_minutes": 0.05}}),
    );
    let cfg = ConfigDir::with_settings(&settings, &yaml);
    let d = Daemon::start(&cfg);
    let mut both = vec![devbox.clone(), other.clone()];
    both.sort();
    d.wait_status(TIMEOUT + Duration::from_secs(15), "asleep", |s| {
        s["state"] == "asleep" && asleep(s) == both
    })
    .await;

    // Away: the connect wakes nothing and says why.
    let out = run(ssh(&cfg, &d, &sshd, "", &["devbox"], "true"));
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("devbox is asleep and you are away (cloudnap is asleep): not waking it")
            && err.contains("--wake"),
        "{err}"
    );
    assert_eq!(ec2_state(R, &devbox).await.0, "stopped");
    assert_eq!(d.ok("STATUS").await["holds"], json!([]));

    // --wake: devbox alone wakes, the session runs, the other stays asleep.
    let session = ssh(
        &cfg,
        &d,
        &sshd,
        "--wake",
        &["devbox"],
        "echo connected; sleep 6",
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let status = d
        .wait_status(Duration::from_secs(20), "devbox woken", |s| {
            s["holds"].as_array().map(Vec::len) == Some(1)
                && asleep(s) == std::slice::from_ref(&other)
        })
        .await;
    assert_eq!(status["state"], "asleep", "{status}");
    assert_eq!(status["holds"][0]["only"]["instance_id"], devbox.as_str());
    assert_eq!(ec2_state(R, &devbox).await.0, "running");
    assert_eq!(ec2_state(R, &other).await.0, "stopped");
    let records = std::fs::read_to_string(cfg.file("state.json")).unwrap();
    assert!(
        records.contains(&other) && !records.contains(&devbox),
        "{records}"
    );
    let out = session.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "connected\n");
    assert!(
        err.contains("waking devbox... running after ") && err.contains(" s, ssh up after "),
        "{err}"
    );
    assert_eq!(ec2_state(R, &other).await.0, "stopped");
    // Its hold ended with the session: the user is still away, it sleeps.
    wait_state(&devbox, "stopped", Duration::from_secs(20)).await;
    assert_eq!(d.ok("STATUS").await["holds"], json!([]));

    // Present: everything wakes; a connected session keeps devbox up past
    // the timeout while the rest sleeps, and it sleeps once that ends.
    d.ok("USER_ACTIVITY").await;
    wait_state(&devbox, "running", Duration::from_secs(20)).await;
    wait_state(&other, "running", Duration::from_secs(20)).await;
    let mut session = ssh(&cfg, &d, &sshd, "", &["devbox"], "sleep 20")
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = d
        .wait_status(Duration::from_secs(15), "held", |s| {
            s["holds"].as_array().map(Vec::len) == Some(1)
        })
        .await;
    assert_eq!(status["holds"][0]["only"]["instance_id"], devbox.as_str());
    assert_eq!(status["holds"][0]["reason"], "ssh-proxy devbox");
    let out = run(ssh(&cfg, &d, &sshd, "", &["devbox"], "true"));
    assert_eq!(out.status.code(), Some(0), "a second session");
    wait_state(&other, "stopped", TIMEOUT + Duration::from_secs(20)).await;
    while session.try_wait().unwrap().is_none() {
        assert_eq!(
            ec2_state(R, &devbox).await.0,
            "running",
            "slept while connected"
        );
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "sleep 20 still runs"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(started.elapsed() >= Duration::from_secs(19));
    assert_eq!(session.wait().unwrap().code(), Some(0));
    assert_eq!(d.ok("STATUS").await["holds"], json!([]), "ended with it");
    wait_state(&devbox, "stopped", Duration::from_secs(20)).await;

    // A host that is no registered instance is relayed untouched.
    let direct = format!("-p{}", sshd.port);
    let out = run(ssh(
        &cfg,
        &d,
        &sshd,
        "",
        &[&direct, "127.0.0.1"],
        "echo direct",
    ));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "direct\n");
    assert_eq!(d.ok("STATUS").await["holds"], json!([]));
    assert_eq!(ec2_state(R, &devbox).await.0, "stopped");
}
