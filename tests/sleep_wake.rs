//! Sleep and wake through the real binary and the real SDK against moto.

mod common;
use common::*;
use std::path::PathBuf;
use std::time::Duration;

const A: &str = "eu-west-1";
const B: &str = "us-west-2";

/// The mixed set of the issue: 2 running EC2 (two regions), 1 stopped EC2,
/// an ECS service at 3 and one at 0, a nodegroup at 1/2/4.
struct Fleet {
    running: Vec<(String, String)>,
    stopped: String,
    cluster: String,
    eks_cluster: String,
}

impl Fleet {
    async fn create() -> Fleet {
        let cluster = unique("ecs");
        let eks_cluster = unique("eks");
        ecs_service(A, &cluster, "web", 3).await;
        ecs_service(A, &cluster, "idle", 0).await;
        eks_nodegroup(B, &eks_cluster, "workers", (1, 2, 4)).await;
        Fleet {
            running: vec![
                (A.to_string(), ec2_instance(A, false, &[]).await),
                (B.to_string(), ec2_instance(B, false, &[]).await),
            ],
            stopped: ec2_instance(A, true, &[]).await,
            cluster,
            eks_cluster,
        }
    }

    fn services_yaml(&self) -> String {
        let mut y = String::from("ec2_instances:\n");
        for (region, id) in &self.running {
            y +=
                &format!("  - instance_id: {id}\n    region: {region}\n    description: dev box\n");
        }
        y += &format!("  - instance_id: {}\n    region: {A}\n", self.stopped);
        y += &format!(
            "ecs_services:\n  - cluster_name: {c}\n    service_name: web\n    region: {A}\n  - cluster_name: {c}\n    service_name: idle\n    region: {A}\n",
            c = self.cluster
        );
        y += &format!(
            "eks_nodegroups:\n  - cluster_name: {}\n    nodegroup_name: workers\n    region: {B}\n",
            self.eks_cluster
        );
        y
    }

    fn config(&self) -> ConfigDir {
        ConfigDir::new(&[A, B], &self.services_yaml())
    }

    async fn assert_awake(&self) {
        for (region, id) in &self.running {
            let (state, tags) = ec2_state(region, id).await;
            assert_eq!(state, "running", "{id}");
            assert!(
                tags.iter().all(|(k, _)| k != "cloudnap:sleeping"),
                "{tags:?}"
            );
        }
        assert_eq!(ec2_state(A, &self.stopped).await.0, "stopped");
        let (web, tags) = ecs_desired(A, &self.cluster, "web").await;
        assert_eq!(web, 3);
        assert!(!tags.contains(&"cloudnap:sleeping".to_string()), "{tags:?}");
        assert_eq!(ecs_desired(A, &self.cluster, "idle").await.0, 0);
        let (scaling, tags) = eks_scaling(B, &self.eks_cluster, "workers").await;
        assert_eq!(scaling, (1, 2, 4));
        assert!(tags.iter().all(|k| !k.starts_with("cloudnap:")), "{tags:?}");
    }

    async fn assert_asleep(&self) {
        for (region, id) in &self.running {
            let (state, tags) = ec2_state(region, id).await;
            assert_eq!(state, "stopped", "{id}");
            assert!(
                tags.contains(&("cloudnap:sleeping".into(), "running".into())),
                "{tags:?}"
            );
        }
        let (_, tags) = ec2_state(A, &self.stopped).await;
        assert!(
            tags.is_empty(),
            "the pre-stopped instance is not touched: {tags:?}"
        );
        let (web, tags) = ecs_desired(A, &self.cluster, "web").await;
        assert_eq!(web, 0);
        assert!(tags.contains(&"cloudnap:sleeping".to_string()));
        let (idle, tags) = ecs_desired(A, &self.cluster, "idle").await;
        assert_eq!(idle, 0);
        assert!(tags.is_empty(), "the service at 0 is not touched: {tags:?}");
        let (scaling, tags) = eks_scaling(B, &self.eks_cluster, "workers").await;
        assert_eq!(scaling, (0, 0, 4), "min and desired to 0, max unchanged");
        assert_eq!(tags, vec!["cloudnap:sleeping:workers".to_string()]);
    }
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs a sleep or wake with `--json`; returns its exit code and how many
/// resources ended with `action`.
fn run_counting(cfg: &ConfigDir, cmd: &str, action: &str) -> (Option<i32>, usize) {
    let out = cfg.run(&[cmd, "--json"]);
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    (
        out.status.code(),
        rows.iter().filter(|r| r["action"] == action).count(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn sleep_then_wake_restores_exact_capacities() {
    let fleet = Fleet::create().await;
    let cfg = fleet.config();

    assert_eq!(run_counting(&cfg, "sleep", "stopped"), (Some(0), 4));
    fleet.assert_asleep().await;

    // A second sleep changes nothing and keeps the saved capacities.
    assert_eq!(run_counting(&cfg, "sleep", "already_asleep"), (Some(0), 4));
    fleet.assert_asleep().await;

    let out = cfg.run(&["status", "--json"]);
    assert!(out.status.success());
    let web = status_row(&out, "web");
    assert_eq!(web["asleep"]["desired"], 3);

    assert_eq!(run_counting(&cfg, "wake", "restored"), (Some(0), 4));
    fleet.assert_awake().await;
    let state = std::fs::read_to_string(cfg.file("state.json")).unwrap();
    assert!(!state.contains("resource"), "records cleared: {state}");

    // Nothing left to wake.
    assert_eq!(run_counting(&cfg, "wake", "restored"), (Some(0), 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_during_sleep_then_wake_in_a_new_process_restores_exactly() {
    let fleet = Fleet::create().await;
    let cfg = fleet.config();
    let state = cfg.file("state.json");
    let mut child = cfg.command(&["sleep"]).spawn().unwrap();
    // The state file is written before the first mutating call: kill as soon as it exists.
    let t0 = std::time::Instant::now();
    while !state.exists() && t0.elapsed() < std::time::Duration::from_secs(30) {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(state.exists());

    let out = cfg.run(&["wake"]);
    assert!(out.status.success());
    fleet.assert_awake().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tags_alone_wake_everything_when_the_state_file_is_lost() {
    let fleet = Fleet::create().await;
    let cfg = fleet.config();
    assert!(cfg.run(&["sleep"]).status.success());
    fleet.assert_asleep().await;
    std::fs::remove_file(cfg.file("state.json")).unwrap();

    assert_eq!(run_counting(&cfg, "wake", "restored"), (Some(0), 4));
    fleet.assert_awake().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_resource_fails_by_name_and_the_rest_still_sleep_and_wake() {
    let cluster = unique("ecs");
    ecs_service(A, &cluster, "api", 2).await;
    let id = ec2_instance(A, false, &[]).await;
    // `hibernate: true` sends StopInstances with Hibernate (moto stops it
    // plainly; the fallback is tested against aws-smithy-mocks).
    let services = format!(
        "ec2_instances:\n  - instance_id: {id}\n    region: {A}\n    hibernate: true\n  - instance_id: i-0000000000deadbee\n    region: {A}\necs_services:\n  - cluster_name: {cluster}\n    service_name: api\n    region: {A}\n  - cluster_name: {cluster}\n    service_name: ghost\n    region: {A}\n"
    );
    let cfg = ConfigDir::new(&[A], &services);

    let out = cfg.run(&["sleep"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let line = |needle: &str| {
        text.lines()
            .find(|l| l.contains(needle))
            .unwrap_or("")
            .to_string()
    };
    assert!(line("i-0000000000deadbee").contains("failed"), "{text}");
    assert!(line("i-0000000000deadbee").contains("NotFound"), "{text}");
    assert!(
        line("/ghost").contains("failed") && line("/ghost").contains("not found"),
        "{text}"
    );
    assert_eq!(ec2_state(A, &id).await.0, "stopped");
    assert_eq!(ecs_desired(A, &cluster, "api").await.0, 0);

    let out = cfg.run(&["wake"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out)
        .lines()
        .any(|l| l.contains("ghost") && l.contains("failed")));
    assert_eq!(ec2_state(A, &id).await.0, "running");
    assert_eq!(ecs_desired(A, &cluster, "api").await.0, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn protected_resources_and_dry_run_change_nothing() {
    let protected = ec2_instance(A, false, &[("cloudnap:protect", "true")]).await;
    let plain = ec2_instance(A, false, &[]).await;
    let services = format!(
        "ec2_instances:\n  - instance_id: {protected}\n    region: {A}\n  - instance_id: {plain}\n    region: {A}\n"
    );
    let settings = serde_json::json!({
        "aws": { "regions": [A], "endpoint_url": moto_url(), "dry_run": true }
    });
    let cfg = ConfigDir::with_settings(&settings.to_string(), &services);
    let out = cfg.run(&["sleep"]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(
        text.lines()
            .any(|l| l.contains(&plain) && l.contains("would_stop")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains(&protected) && l.contains("protected")),
        "{text}"
    );
    assert_eq!(ec2_state(A, &plain).await.0, "running");
    assert!(!cfg.file("state.json").exists(), "dry run records nothing");

    // Without dry run, only the unprotected one stops.
    let settings = serde_json::json!({ "aws": { "regions": [A], "endpoint_url": moto_url() } });
    std::fs::write(cfg.file("settings.json"), settings.to_string()).unwrap();
    assert!(cfg.run(&["sleep"]).status.success());
    assert_eq!(ec2_state(A, &plain).await.0, "stopped");
    assert_eq!(ec2_state(A, &protected).await.0, "running");
}

#[test]
fn check_reports_config_and_the_account() {
    let cfg = ConfigDir::new(
        &[A],
        "ec2_instances:\n  - instance_id: i-1234abcd\n    region: eu-west-1\n",
    );
    let out = cfg.run(&["check"]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(
        text.contains("1 EC2 instance(s), 0 ECS service(s), 0 EKS nodegroup(s)"),
        "{text}"
    );
    assert!(text.contains("account 123456789012"), "{text}");
}

/// A moto behind HTTPS, with a certificate for 127.0.0.1 from a private CA;
/// killed on drop.
struct TlsMoto {
    url: String,
    ca: PathBuf,
    server: std::process::Child,
    _dir: tempfile::TempDir,
}

impl TlsMoto {
    fn start() -> TlsMoto {
        let dir = tempfile::tempdir().unwrap();
        let openssl = |args: &str| {
            let out = std::process::Command::new("openssl")
                .current_dir(dir.path())
                .args(args.split(' '))
                .output()
                .unwrap();
            assert!(out.status.success(), "openssl {args}: {out:?}");
        };
        let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
        openssl(&format!(
            "req -x509 {ec} -days 2 -subj /CN=cloudnap-test-ca -keyout ca.key -out ca.pem"
        ));
        openssl(&format!(
            "req {ec} -subj /CN=127.0.0.1 -keyout key.pem -out leaf.csr"
        ));
        std::fs::write(dir.path().join("san.cnf"), "subjectAltName=IP:127.0.0.1\n").unwrap();
        openssl("x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile san.cnf -out cert.pem");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = std::process::Command::new(cache_dir().join("venv/bin/moto_server"))
            .current_dir(dir.path())
            .args([
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-c",
                "cert.pem",
                "-k",
                "key.pem",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("moto_server from the venv of build/test.sh");
        let up = (0..150).any(|_| {
            std::thread::sleep(Duration::from_millis(200));
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "moto_server with TLS did not listen on {port}");
        TlsMoto {
            url: format!("https://127.0.0.1:{port}"),
            ca: dir.path().join("ca.pem"),
            server,
            _dir: dir,
        }
    }
}

impl Drop for TlsMoto {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

/// Real AWS is HTTPS: the SDK's client (rustls with ring, the system's root
/// certificates, which `SSL_CERT_FILE` replaces) verifies the server: trusted,
/// `check` reaches the account through it; untrusted, the same server is
/// refused.
#[test]
fn aws_calls_go_over_https_and_an_untrusted_certificate_is_refused() {
    let moto = TlsMoto::start();
    let settings = serde_json::json!({ "aws": { "regions": [A], "endpoint_url": moto.url } });
    let cfg = ConfigDir::with_settings(
        &settings.to_string(),
        "ec2_instances:\n  - instance_id: i-1234abcd\n    region: eu-west-1\n",
    );

    let refused = cfg
        .command(&["check"])
        .env_remove("SSL_CERT_FILE")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        stdout(&refused),
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(!refused.status.success(), "{text}");
    assert!(!text.contains("account 123456789012"), "{text}");
    assert!(text.to_lowercase().contains("certificate"), "{text}");

    let trusted = cfg
        .command(&["check"])
        .env("SSL_CERT_FILE", &moto.ca)
        .output()
        .unwrap();
    let text = stdout(&trusted);
    assert!(trusted.status.success(), "{text}");
    assert!(text.contains("account 123456789012"), "{text}");
}

#[test]
fn invalid_config_names_the_key_or_line_exits_2_and_changes_no_file() {
    let good_services = "ec2_instances: []\n";
    let cases = [
        (
            r#"{"activity_monitor":{"inactivity_timeout_minutes":"soon"}}"#,
            good_services,
            "activity_monitor.inactivity_timeout_minutes",
        ),
        (
            r#"{"aws": {"regions": ["us-east-1"],}}"#,
            good_services,
            "line 1",
        ),
        (
            "{}",
            "ec2_instances:\n  - instance_id: i-1\n    region: nowhere\n",
            "line 2",
        ),
        (
            "{}",
            "ec2_instances:\n  - instance_id: i-1\n    regoin: us-east-1\n",
            "line 3",
        ),
    ];
    for (settings, services, needle) in cases {
        let cfg = ConfigDir::with_settings(settings, services);
        for cmd in ["check", "sleep", "wake", "status"] {
            let out = cfg.run(&[cmd]);
            assert_eq!(out.status.code(), Some(2), "{cmd} {settings} {services}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains(needle), "{cmd}: {err} lacks {needle}");
        }
        assert_eq!(
            std::fs::read_to_string(cfg.file("settings.json")).unwrap(),
            settings
        );
        assert_eq!(
            std::fs::read_to_string(cfg.file("services.yaml")).unwrap(),
            services
        );
        assert!(!cfg.file("state.json").exists());
    }
}

#[test]
fn first_run_without_config_dir_writes_commented_defaults_in_xdg_locations() {
    let home = tempfile::tempdir().unwrap();
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_cloudnap"));
    c.arg("status")
        .env("HOME", home.path())
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_STATE_HOME")
        .env_remove("CLOUDNAP_CONFIG_DIR");
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = home.path().join(".config/cloudnap");
    let settings = std::fs::read_to_string(dir.join("settings.json")).unwrap();
    assert!(settings.contains("\"_comment\""));
    let services = std::fs::read_to_string(dir.join("services.yaml")).unwrap();
    assert!(services.starts_with("# cloudnap services registry"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("created"));
}
