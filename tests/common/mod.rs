//! Shared helpers for the integration tests: a config dir, the real binary,
//! and direct SDK access to the moto server started by `build/test.sh`.
#![allow(dead_code)] // each test binary uses a different subset

use aws_config::{BehaviorVersion, Region, SdkConfig};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The moto server's URL, exported by `build/test.sh`.
pub fn moto_url() -> String {
    std::env::var("CLOUDNAP_MOTO_URL").expect(
        "CLOUDNAP_MOTO_URL is not set: run the tests with ./build/test.sh, which starts moto_server",
    )
}

/// A unique suffix for resource names, so tests sharing one moto server do not collide.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// SDK configuration for moto in `region`.
pub async fn sdk(region: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .endpoint_url(moto_url())
        .credentials_provider(aws_sdk_ec2::config::Credentials::new(
            "testing", "testing", None, None, "tests",
        ))
        .load()
        .await
}

/// A temporary config dir for the real binary.
pub struct ConfigDir {
    pub dir: tempfile::TempDir,
}

impl ConfigDir {
    /// A config dir whose settings point at moto with `regions`, plus `services` YAML.
    pub fn new(regions: &[&str], services: &str) -> ConfigDir {
        Self::with_settings(
            &serde_json::json!({
                "aws": { "regions": regions, "endpoint_url": moto_url() }
            })
            .to_string(),
            services,
        )
    }

    /// A config dir with the given raw settings.json and services.yaml.
    pub fn with_settings(settings: &str, services: &str) -> ConfigDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("settings.json"), settings).unwrap();
        std::fs::write(dir.path().join("services.yaml"), services).unwrap();
        // Empty AWS config files: the user's own profiles never leak into tests.
        std::fs::write(dir.path().join("aws-config"), "").unwrap();
        std::fs::write(dir.path().join("aws-credentials"), "").unwrap();
        ConfigDir { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The real `cloudnap` binary with this config dir and moto credentials.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cloudnap"));
        c.arg("--config-dir")
            .arg(self.path())
            .args(args)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_CONFIG_FILE", self.file("aws-config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", self.file("aws-credentials"))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("CLOUDNAP_CONFIG_DIR");
        c
    }

    /// Runs the binary to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        let out = self.command(args).output().unwrap();
        eprintln!(
            "$ cloudnap {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

/// Launches one EC2 instance; stops it when `stopped`.
pub async fn ec2_instance(region: &str, stopped: bool, tags: &[(&str, &str)]) -> String {
    let ec2 = aws_sdk_ec2::Client::new(&sdk(region).await);
    let mut req = ec2
        .run_instances()
        .image_id("ami-12345678")
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
        .min_count(1)
        .max_count(1);
    if !tags.is_empty() {
        let mut spec = aws_sdk_ec2::types::TagSpecification::builder()
            .resource_type(aws_sdk_ec2::types::ResourceType::Instance);
        for (k, v) in tags {
            spec = spec.tags(aws_sdk_ec2::types::Tag::builder().key(*k).value(*v).build());
        }
        req = req.tag_specifications(spec.build());
    }
    let out = req.send().await.unwrap();
    let id = out.instances()[0].instance_id().unwrap().to_string();
    if stopped {
        ec2.stop_instances().instance_ids(&id).send().await.unwrap();
    }
    id
}

/// EC2 instance state name and its tags.
pub async fn ec2_state(region: &str, id: &str) -> (String, Vec<(String, String)>) {
    let ec2 = aws_sdk_ec2::Client::new(&sdk(region).await);
    let out = ec2
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .unwrap();
    let i = &out.reservations()[0].instances()[0];
    (
        i.state().unwrap().name().unwrap().as_str().to_string(),
        i.tags()
            .iter()
            .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
            .collect(),
    )
}

/// Creates an ECS cluster (if needed) and a service at `desired` tasks.
pub async fn ecs_service(region: &str, cluster: &str, service: &str, desired: i32) {
    let ecs = aws_sdk_ecs::Client::new(&sdk(region).await);
    ecs.create_cluster()
        .cluster_name(cluster)
        .send()
        .await
        .unwrap();
    ecs.register_task_definition()
        .family("app")
        .container_definitions(
            aws_sdk_ecs::types::ContainerDefinition::builder()
                .name("app")
                .image("nginx")
                .memory(128)
                .build(),
        )
        .send()
        .await
        .unwrap();
    ecs.create_service()
        .cluster(cluster)
        .service_name(service)
        .task_definition("app")
        .desired_count(desired)
        .send()
        .await
        .unwrap();
}

/// An ECS service's desired count and tags.
pub async fn ecs_desired(region: &str, cluster: &str, service: &str) -> (i32, Vec<String>) {
    let ecs = aws_sdk_ecs::Client::new(&sdk(region).await);
    let out = ecs
        .describe_services()
        .cluster(cluster)
        .services(service)
        .include(aws_sdk_ecs::types::ServiceField::Tags)
        .send()
        .await
        .unwrap();
    let s = &out.services()[0];
    (
        s.desired_count(),
        s.tags()
            .iter()
            .map(|t| t.key().unwrap().to_string())
            .collect(),
    )
}

/// Creates an EKS cluster and a nodegroup at min/desired/max.
pub async fn eks_nodegroup(region: &str, cluster: &str, nodegroup: &str, scaling: (i32, i32, i32)) {
    let eks = aws_sdk_eks::Client::new(&sdk(region).await);
    eks.create_cluster()
        .name(cluster)
        .role_arn("arn:aws:iam::123456789012:role/eks")
        .resources_vpc_config(
            aws_sdk_eks::types::VpcConfigRequest::builder()
                .subnet_ids("subnet-1")
                .build(),
        )
        .send()
        .await
        .unwrap();
    eks.create_nodegroup()
        .cluster_name(cluster)
        .nodegroup_name(nodegroup)
        .node_role("arn:aws:iam::123456789012:role/node")
        .subnets("subnet-1")
        .scaling_config(
            aws_sdk_eks::types::NodegroupScalingConfig::builder()
                .min_size(scaling.0)
                .desired_size(scaling.1)
                .max_size(scaling.2)
                .build(),
        )
        .send()
        .await
        .unwrap();
}

/// A nodegroup's (min, desired, max) and its cluster's tag keys.
pub async fn eks_scaling(
    region: &str,
    cluster: &str,
    nodegroup: &str,
) -> ((i32, i32, i32), Vec<String>) {
    let eks = aws_sdk_eks::Client::new(&sdk(region).await);
    let ng = eks
        .describe_nodegroup()
        .cluster_name(cluster)
        .nodegroup_name(nodegroup)
        .send()
        .await
        .unwrap();
    let s = ng.nodegroup().unwrap().scaling_config().unwrap();
    let c = eks.describe_cluster().name(cluster).send().await.unwrap();
    (
        (
            s.min_size().unwrap(),
            s.desired_size().unwrap(),
            s.max_size().unwrap(),
        ),
        c.cluster()
            .unwrap()
            .tags()
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default(),
    )
}

/// A running `cloudnap run`, killed on drop.
pub struct Daemon {
    pub child: std::process::Child,
    pub addr: std::net::SocketAddr,
    /// Everything it wrote to stderr so far.
    pub log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Daemon {
    /// Starts `cloudnap run` in `cfg` and waits for "listening on ADDR".
    pub fn start(cfg: &ConfigDir) -> Daemon {
        Self::spawn(cfg.command(&["run"]))
    }

    /// Starts `command` (a `cloudnap run`) and waits for "listening on ADDR".
    pub fn spawn(mut command: Command) -> Daemon {
        use std::io::BufRead;
        let mut child = command
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(addr) = line.split("listening on ").nth(1) {
                    let _ = tx.send(addr.trim().parse::<std::net::SocketAddr>().unwrap());
                }
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let addr = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("cloudnap run did not start: {}", log.lock().unwrap()));
        Daemon { child, addr, log }
    }

    /// Sends one command over a real UDP socket and returns the whole reply.
    pub async fn send(&self, command: &str) -> serde_json::Value {
        cloudnap::server::client::request(
            self.addr,
            command.as_bytes(),
            std::time::Duration::from_secs(30),
        )
        .await
        .unwrap_or_else(|e| panic!("{command}: {e}"))
    }

    /// Sends a text command and returns its `result`, failing on an error reply.
    pub async fn ok(&self, command: &str) -> serde_json::Value {
        let reply = self.send(command).await;
        assert_eq!(reply["ok"], true, "{command}: {reply}");
        reply["result"].clone()
    }

    /// Polls STATUS every 50 ms until `done(status)` holds; panics after `limit`.
    pub async fn wait_status(
        &self,
        limit: std::time::Duration,
        what: &str,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let t0 = std::time::Instant::now();
        loop {
            let status = self.ok("STATUS").await;
            if done(&status) {
                return status;
            }
            assert!(t0.elapsed() < limit, "not {what} after {limit:?}: {status}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Sends a text command that must fail; returns the error message.
    pub async fn err(&self, command: &str) -> String {
        let reply = self.send(command).await;
        assert_eq!(reply["ok"], false, "{command}: {reply}");
        reply["error"].as_str().unwrap().to_string()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Settings for a daemon on 127.0.0.1:0 against moto, merged with `extra`.
/// No tray and no credentials dialog unless `extra` asks for them.
pub fn daemon_settings(regions: &[&str], extra: serde_json::Value) -> String {
    let mut s = serde_json::json!({
        "aws": { "regions": regions, "endpoint_url": moto_url() },
        "udp_server": { "port": 0, "rate_limit_per_second": 10000 },
        "desktop": { "tray": false, "credentials_dialog": false }
    });
    merge(&mut s, extra);
    s.to_string()
}

/// Fails clearly when there is no X server (build/test.sh starts Xvfb).
pub fn require_display() {
    assert!(
        std::env::var("DISPLAY").is_ok_and(|d| !d.is_empty()),
        "DISPLAY is not set: run the tests with ./build/test.sh, which starts Xvfb"
    );
}

/// Runs xdotool with `args`; panics if it fails.
pub fn xdotool(args: &[&str]) {
    let ok = Command::new("xdotool")
        .args(args)
        .status()
        .unwrap()
        .success();
    assert!(ok, "xdotool {args:?}");
}

/// xdotool's output, trimmed.
pub fn xdotool_out(args: &[&str]) -> String {
    let out = Command::new("xdotool").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
    match (a, b) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}
