//! Shared helpers for the integration tests: the test environment (moto,
//! Xvfb, PulseAudio), a config dir, the real binary, and direct SDK access
//! to moto.
//!
//! The environment is the one `build/test.sh` exports when it runs the
//! tests. Under a plain `cargo test` each test binary starts what it uses
//! itself, through `build/test-env.sh` (see [`Part`]), and that script stops
//! it all when the binary exits.
#![allow(dead_code, unused_macros)] // each test binary uses a different subset

use aws_config::{BehaviorVersion, Region, SdkConfig};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// One part of the test environment.
///
/// - `Moto`, `MotoAuth`: reused from `CLOUDNAP_MOTO_URL` and
///   `CLOUDNAP_MOTO_AUTH_URL` when set, else started on first use.
/// - `X` (Xvfb, a private D-Bus session bus, openbox), `Tray` (a
///   StatusNotifier host on them) and `Pulse` (PulseAudio with null sinks):
///   libraries inside the test process (the X11 and audio detectors) read
///   their variables, so a test binary that uses them declares them with
///   [`before_main!`] and they are started before `main`. They are reused
///   when `CLOUDNAP_TEST_DESKTOP=1` says DISPLAY, DBUS_SESSION_BUS_ADDRESS and
///   XDG_RUNTIME_DIR are a test desktop (build/test.sh exports it); a
///   developer's own desktop session is never used, so no test types into
///   it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Part {
    Moto,
    MotoAuth,
    X,
    Tray,
    Pulse,
    /// Headless sway (Wayland) with foot, as an unprivileged user: only
    /// child processes use it, so it is started on first use.
    Sway,
    /// Headless mutter (GNOME) in a D-Bus session bus of its own.
    Mutter,
    /// Headless kwin_wayland (KDE Plasma) in a D-Bus session bus of its
    /// own, with a fake-input client to type into it.
    Kwin,
    /// An X display and session bus of their own with xfce4-panel (its
    /// notification area) and dunst.
    Xfce,
}

impl Part {
    /// Its name in build/test-env.sh.
    fn name(self) -> &'static str {
        match self {
            Part::Moto => "moto",
            Part::MotoAuth => "moto-auth",
            Part::X => "x",
            Part::Tray => "tray",
            Part::Pulse => "pulse",
            Part::Sway => "sway",
            Part::Mutter => "mutter",
            Part::Kwin => "kwin",
            Part::Xfce => "xfce",
        }
    }

    /// The variable naming this part when build/test.sh exported it.
    fn given(self) -> Option<Vars> {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .map(|v| vec![(name.to_string(), v)])
        };
        let vars = |names: &[&str]| {
            names
                .iter()
                .map(|n| var(n).and_then(|v| v.into_iter().next()))
                .collect::<Option<Vars>>()
        };
        match self {
            Part::Sway => vars(&["CLOUDNAP_SWAY_DISPLAY", "CLOUDNAP_SWAY_RUNTIME_DIR"]),
            Part::Mutter => vars(&[
                "CLOUDNAP_MUTTER_BUS",
                "CLOUDNAP_MUTTER_RUNTIME_DIR",
                "CLOUDNAP_MUTTER_DISPLAY",
            ]),
            Part::Kwin => vars(&[
                "CLOUDNAP_KWIN_BUS",
                "CLOUDNAP_KWIN_RUNTIME_DIR",
                "CLOUDNAP_KWIN_DISPLAY",
                "CLOUDNAP_KWIN_KEY",
            ]),
            Part::Xfce => vars(&[
                "CLOUDNAP_XFCE_DISPLAY",
                "CLOUDNAP_XFCE_BUS",
                "CLOUDNAP_XFCE_HOME",
            ]),
            Part::Moto => var("CLOUDNAP_MOTO_URL"),
            Part::MotoAuth => var("CLOUDNAP_MOTO_AUTH_URL"),
            Part::X | Part::Tray | Part::Pulse => desktop_given().then(Vec::new),
        }
    }
}

type Vars = Vec<(String, String)>;

/// Whether build/test.sh (or the developer) exported a test desktop.
fn desktop_given() -> bool {
    std::env::var("CLOUDNAP_TEST_DESKTOP").is_ok_and(|v| v == "1")
}

/// build/test-env.sh, running for this test binary, and what it started.
struct TestEnv {
    script: Option<Script>,
    /// Each part asked for, with its variables or why it is not there.
    parts: Vec<(Part, Result<Vars, String>)>,
}

struct Script {
    /// Never waited for: the script stops everything when this process
    /// exits and its stdin closes.
    _child: Child,
    /// Kept open for the life of the process.
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

static TEST_ENV: Mutex<TestEnv> = Mutex::new(TestEnv {
    script: None,
    parts: Vec::new(),
});

/// Whether [`before_main!`] started an X server for this process.
static X_STARTED: AtomicBool = AtomicBool::new(false);

/// The line every test that lacks a part of its environment fails with.
const SET_UP_FIRST: &str =
    "run ./build/test.sh once first (it installs moto and the test packages)";

impl TestEnv {
    fn lock() -> std::sync::MutexGuard<'static, TestEnv> {
        TEST_ENV.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn known(&self, part: Part) -> Option<&Result<Vars, String>> {
        self.parts.iter().find(|(p, _)| *p == part).map(|(_, r)| r)
    }

    /// Starts build/test-env.sh (once) with `parts` to start right away.
    fn script(&mut self, parts: &[Part]) -> Result<&mut Script, String> {
        if self.script.is_none() {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/build/test-env.sh");
            let mut child = Command::new("bash")
                .arg(path)
                .args(parts.iter().map(|p| p.name()))
                // Whatever desktop this process was started in is not the
                // test one.
                .env_remove("DISPLAY")
                .env_remove("WAYLAND_DISPLAY")
                .env_remove("DBUS_SESSION_BUS_ADDRESS")
                .env_remove("XDG_RUNTIME_DIR")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .map_err(|e| format!("{SET_UP_FIRST}; cannot run bash {path}: {e}"))?;
            self.script = Some(Script {
                stdin: child.stdin.take().unwrap(),
                stdout: BufReader::new(child.stdout.take().unwrap()),
                _child: child,
            });
        }
        Ok(self.script.as_mut().unwrap())
    }

    /// Reads the answer for one part: NAME=value lines, then READY or ERROR.
    fn answer(script: &mut Script, part: Part) -> Result<Vars, String> {
        let mut vars = Vec::new();
        loop {
            let mut line = String::new();
            match script.stdout.read_line(&mut line) {
                Ok(0) | Err(_) => {
                    return Err(format!(
                        "build/test-env.sh exited while starting {}",
                        part.name()
                    ))
                }
                Ok(_) => {}
            }
            let line = line.trim_end();
            if line == "READY" {
                return Ok(vars);
            }
            if let Some(why) = line.strip_prefix("ERROR ") {
                return Err(why.to_string());
            }
            if let Some((k, v)) = line.split_once('=') {
                vars.push((k.to_string(), v.to_string()));
            }
        }
    }

    /// The variables of `part`, starting it if needed.
    fn part(&mut self, part: Part) -> Result<Vars, String> {
        if let Some(known) = self.known(part) {
            return known.clone();
        }
        let result = match part.given() {
            Some(vars) => Ok(vars),
            None if matches!(part, Part::X | Part::Tray | Part::Pulse) => Err(format!(
                "this test binary uses {part:?}: declare it with `common::before_main!({part:?})`"
            )),
            None => self.script(&[]).and_then(|script| {
                writeln!(script.stdin, "{}", part.name())
                    .map_err(|e| format!("build/test-env.sh: {e}"))?;
                Self::answer(script, part)
            }),
        };
        self.parts.push((part, result.clone()));
        result
    }
}

/// Declares the parts of the test environment that this test binary uses
/// inside its own process (`X`, `Tray`, `Pulse`): unless build/test.sh gave
/// them, they are started before `main` and their variables (DISPLAY,
/// DBUS_SESSION_BUS_ADDRESS, XDG_RUNTIME_DIR, ...) put into the process
/// environment, where the X11 and audio libraries and every child process
/// find them.
///
/// Why before `main`: setting an environment variable while another thread
/// may read the environment is undefined behaviour (C libraries such as
/// libX11 call `getenv` without Rust's lock). The test harness starts its
/// threads in `main`; a function in `.init_array` runs before it, when the
/// process has one thread, so [`std::env::set_var`] is safe there. (Only
/// on Linux, the one platform the integration tests run on.)
macro_rules! before_main {
    ($($part:ident),+) => {
        #[used]
        #[cfg_attr(target_os = "linux", link_section = ".init_array")]
        static BEFORE_MAIN: extern "C" fn() = {
            extern "C" fn before_main() {
                $crate::common::start_before_main(&[$($crate::common::Part::$part),+]);
            }
            before_main
        };
    };
}
#[allow(unused_imports)]
pub(crate) use before_main;

/// What [`before_main!`] runs; must not be called once other threads run.
pub fn start_before_main(parts: &[Part]) {
    let mut env = TestEnv::lock();
    // `--list` (test discovery) runs no test.
    let cmdline = std::fs::read("/proc/self/cmdline").unwrap_or_default();
    if cmdline.split(|b| *b == 0).any(|a| a == b"--list") {
        return;
    }
    let missing: Vec<Part> = parts
        .iter()
        .copied()
        .filter(|p| p.given().is_none())
        .collect();
    if missing.is_empty() {
        for p in parts {
            env.parts.push((*p, Ok(Vec::new())));
        }
        return;
    }
    let answers: Vec<Result<Vars, String>> = match env.script(&missing) {
        Ok(script) => missing
            .iter()
            .map(|p| TestEnv::answer(script, *p))
            .collect(),
        Err(e) => missing.iter().map(|_| Err(e.clone())).collect(),
    };
    for (p, answer) in missing.into_iter().zip(answers) {
        if let Ok(vars) = &answer {
            if matches!(p, Part::X | Part::Tray) {
                X_STARTED.store(true, Ordering::Relaxed);
            }
            for (k, v) in vars {
                // Safe: before main, this process has a single thread.
                std::env::set_var(k, v);
            }
        }
        env.parts.push((p, answer));
    }
}

/// The variables of `part`; panics with the reason it is not there.
fn require(part: Part) -> Vars {
    TestEnv::lock()
        .part(part)
        .unwrap_or_else(|why| panic!("{why}"))
}

/// The moto server's URL (build/test.sh's, or one started for this binary).
pub fn moto_url() -> String {
    var_of(Part::Moto, "CLOUDNAP_MOTO_URL")
}

/// A second moto server that checks credentials (for "wrong key" tests).
pub fn moto_auth_url() -> String {
    var_of(Part::MotoAuth, "CLOUDNAP_MOTO_AUTH_URL")
}

/// The variable `name` of `part` (started on first use, if it can be).
pub fn var_of(part: Part, name: &str) -> String {
    require(part)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("build/test-env.sh did not set {name}"))
}

/// Fails clearly when there is no X server with its session bus (declared
/// with [`before_main!`], or given by build/test.sh).
pub fn require_display() {
    require(Part::X);
}

/// Fails clearly when there is no StatusNotifier tray host.
pub fn require_tray_host() {
    require(Part::Tray);
}

/// Fails clearly when there is no PulseAudio with the null sinks.
pub fn require_pulse() {
    require(Part::Pulse);
}

/// Where tests save screenshots: `$CLOUDNAP_ARTIFACTS` (build/test.sh), else
/// a directory under the target dir.
pub fn artifacts_dir() -> PathBuf {
    std::env::var_os("CLOUDNAP_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")))
}

/// Whether this process has a test desktop (given, or started before main).
fn has_test_desktop() -> bool {
    desktop_given() || X_STARTED.load(Ordering::Relaxed)
}

/// build/env.sh's cache: `$CLOUDNAP_CACHE`, else `~/.cache/cloudnap` (the
/// moto venv, the Windows build).
pub fn cache_dir() -> PathBuf {
    std::env::var_os("CLOUDNAP_CACHE").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/cloudnap"),
        PathBuf::from,
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
        .http_client(cloudnap::cloud::aws::http_client())
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
        self.command_via(env!("CARGO_BIN_EXE_cloudnap"), &[], args)
    }

    /// `program pre... --config-dir DIR args...` with the environment of
    /// [`ConfigDir::command`]: e.g. `setpriv` running a copy of the binary
    /// as another user.
    pub fn command_via(&self, program: &str, pre: &[&str], args: &[&str]) -> Command {
        let mut c = Command::new(program);
        c.args(pre)
            .arg("--config-dir")
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
        if !has_test_desktop() {
            // A binary without a test desktop never reaches the developer's
            // own: no input from it, no notifications on it.
            for var in [
                "DISPLAY",
                "WAYLAND_DISPLAY",
                "DBUS_SESSION_BUS_ADDRESS",
                "XDG_RUNTIME_DIR",
            ] {
                c.env_remove(var);
            }
        }
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

/// A UDP port free on loopback now: for a daemon that `cloudnap status`
/// (which reads the port from settings.json) must find.
pub fn free_udp_port() -> u16 {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap().port()
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
    ecs_service_on(region, cluster, service, desired, Launch::Ec2).await
}

/// Where an ECS service's tasks run.
#[derive(Clone, Copy, PartialEq)]
pub enum Launch {
    /// On the cluster's instances (a 128 MiB container).
    Ec2,
    /// On Fargate, 256 CPU units and 512 MiB a task.
    Fargate,
}

/// An ECS service at `desired` tasks, launched `on` EC2 or Fargate.
pub async fn ecs_service_on(region: &str, cluster: &str, service: &str, desired: i32, on: Launch) {
    use aws_sdk_ecs::types::{Compatibility, ContainerDefinition, LaunchType, NetworkMode};
    let ecs = aws_sdk_ecs::Client::new(&sdk(region).await);
    ecs.create_cluster()
        .cluster_name(cluster)
        .send()
        .await
        .unwrap();
    let (family, container) = match on {
        Launch::Ec2 => ("app", ContainerDefinition::builder().memory(128)),
        Launch::Fargate => ("fargate-app", ContainerDefinition::builder()),
    };
    let mut task = ecs
        .register_task_definition()
        .family(family)
        .container_definitions(container.name("app").image("nginx").build());
    if on == Launch::Fargate {
        task = task
            .requires_compatibilities(Compatibility::Fargate)
            .network_mode(NetworkMode::Awsvpc)
            .cpu("256")
            .memory("512");
    }
    task.send().await.unwrap();
    let mut create = ecs
        .create_service()
        .cluster(cluster)
        .service_name(service)
        .task_definition(family)
        .desired_count(desired);
    if on == Launch::Fargate {
        create = create.launch_type(LaunchType::Fargate);
    }
    create.send().await.unwrap();
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

/// A PostgreSQL DB instance `name` in `region`, alone, with `tags`.
pub async fn rds_instance(region: &str, name: &str, tags: &[(&str, &str)]) {
    let tags = tags
        .iter()
        .map(|(k, v)| aws_sdk_rds::types::Tag::builder().key(*k).value(*v).build());
    aws_sdk_rds::Client::new(&sdk(region).await)
        .create_db_instance()
        .set_tags(Some(tags.collect()))
        .db_instance_identifier(name)
        .engine("postgres")
        .db_instance_class("db.t3.micro")
        .allocated_storage(20)
        .master_username("admin")
        .master_user_password("password123")
        .send()
        .await
        .unwrap();
}

/// A running `cloudnap run`, killed on drop.
/// Sends one datagram to `to` over a real UDP socket and returns the whole
/// reply.
pub async fn request(to: std::net::SocketAddr, datagram: &str) -> serde_json::Value {
    cloudnap::server::client::request(to, datagram.as_bytes(), std::time::Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{datagram}: {e}"))
}

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
        request(self.addr, command).await
    }

    /// Sends a text command and returns its `result`, failing on an error reply.
    pub async fn ok(&self, command: &str) -> serde_json::Value {
        let reply = self.send(command).await;
        assert_eq!(reply["ok"], true, "{command}: {reply}");
        reply["result"].clone()
    }

    /// `SLEEP_NOW`, which must stop every registered resource; its report.
    pub async fn sleep_now(&self) -> serde_json::Value {
        let slept = self.ok("SLEEP_NOW").await;
        let rows = slept.as_array().expect("a report");
        assert!(rows.iter().all(|r| r["action"] == "stopped"), "{slept}");
        slept
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

    /// Waits up to 5 s for `needle` in the log (the log is read by a thread
    /// and may trail what it describes); panics with the log if it never comes.
    pub async fn logged(&self, needle: &str) {
        let t0 = std::time::Instant::now();
        while !self.log.lock().unwrap().contains(needle) {
            if t0.elapsed() > std::time::Duration::from_secs(5) {
                let log = self.log.lock().unwrap().clone();
                panic!("{needle:?} not logged: {log}");
            }
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

/// The row of the ECS service `service` in `cloudnap status --json` output.
pub fn status_row(out: &Output, service: &str) -> serde_json::Value {
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"]["service_name"] == service)
        .unwrap_or_else(|| panic!("no row for {service}: {rows}"))
        .clone()
}

/// Runs xdotool with `args`; panics if it fails.
pub fn xdotool(args: &[&str]) {
    require_display();
    let ok = Command::new("xdotool")
        .args(args)
        .status()
        .unwrap()
        .success();
    assert!(ok, "xdotool {args:?}");
}

/// xdotool's output, trimmed.
pub fn xdotool_out(args: &[&str]) -> String {
    require_display();
    let out = Command::new("xdotool").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// An EC2 instance (running) and ECS service `web` at `desired` in a new
/// cluster named after `prefix`, both in `region`: their ids and the
/// services.yaml that registers them.
pub async fn instance_and_service(
    region: &str,
    prefix: &str,
    desired: i32,
) -> (String, String, String) {
    let id = ec2_instance(region, false, &[]).await;
    let cluster = unique(prefix);
    ecs_service(region, &cluster, "web", desired).await;
    let yaml = format!(
        "ec2_instances:\n  - instance_id: {id}\n    region: {region}\necs_services:\n  - cluster_name: {cluster}\n    service_name: web\n    region: {region}\n"
    );
    (id, cluster, yaml)
}

/// Daemon settings for `region` with every activity detector off, the
/// idle timeout `timeout` (no warning), and `extra` merged in.
pub fn timeout_settings(
    region: &str,
    timeout: std::time::Duration,
    extra: serde_json::Value,
) -> String {
    let mut settings = serde_json::json!({
        "activity_monitor": {
            "inactivity_timeout_minutes": timeout.as_secs_f64() / 60.0,
            "warning_minutes": 0
        }
    });
    merge(&mut settings, extra);
    daemon_settings(&[region], detectors_off(settings))
}

/// Settings with every activity detector off: the daemon sees activity
/// only from `USER_ACTIVITY`, whatever desktop the test runs in (its
/// `inputs` are "disabled in settings", never blind).
pub fn detectors_off(mut extra: serde_json::Value) -> serde_json::Value {
    let mut off = serde_json::json!({
        "keyboard": {"enabled": false}, "mouse": {"enabled": false},
        "screen": {"enabled": false}, "audio": {"enabled": false},
        "microphone": {"enabled": false},
        "window": {"enabled": false}, "system_idle": {"enabled": false},
        "screen_lock": {"enabled": false}
    });
    merge(&mut off, std::mem::take(&mut extra));
    off
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

/// Polls `check` every 100 ms until it holds; panics after `limit`.
pub async fn within<F: std::future::Future<Output = bool>>(
    limit: std::time::Duration,
    what: &str,
    mut check: impl FnMut() -> F,
) -> std::time::Duration {
    let t0 = std::time::Instant::now();
    while !check().await {
        assert!(t0.elapsed() < limit, "not {what} after {limit:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    t0.elapsed()
}

/// Registers `by_text` with `REGISTER_<label>:<by_text>:<region>:<description>`
/// and `by_json` with a JSON `REGISTER_SERVICE` (`field` naming it); checks
/// services.yaml holds `by_text` under `section` as written.
pub async fn register_both(
    d: &Daemon,
    cfg: &ConfigDir,
    label: &str,
    field: &str,
    names: (&str, &str),
    region: &str,
    section: &str,
) {
    let (by_text, by_json) = names;
    d.ok(&format!("REGISTER_{label}:{by_text}:{region}:described"))
        .await;
    let reply = d
        .send(
            &serde_json::json!({"type": "REGISTER_SERVICE", "content": {
                "service_type": label, field: by_json, "region": region
            }})
            .to_string(),
        )
        .await;
    assert_eq!(reply["type"], "REGISTER_SERVICE", "{reply}");
    let text = std::fs::read_to_string(cfg.file("services.yaml")).unwrap();
    let entry = format!(
        "{section}:\n  - {field}: {by_text}\n    region: {region}\n    description: described\n"
    );
    assert!(text.contains(&entry), "{text}");
}

/// Waits (20 s at most) until the resource whose `field` is `name` is
/// registered by its `cloudnap:managed` tag.
pub async fn found_by_tag(d: &Daemon, field: &str, name: &str) {
    within(
        std::time::Duration::from_secs(20),
        "found by its tag",
        || async {
            let reply = d.ok("LIST_REGISTERED_SERVICES").await;
            reply["services"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["resource"][field] == name && s["source"] == "tag")
        },
    )
    .await;
}

/// The row of `LIST_<label>:<region>` (under `group`) whose `field` is `name`.
pub async fn listed_row(
    d: &Daemon,
    label: &str,
    region: &str,
    group: &str,
    field: &str,
    name: &str,
) -> serde_json::Value {
    let listed = d.ok(&format!("LIST_{label}:{region}")).await;
    listed[group]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r[field] == name)
        .unwrap_or_else(|| panic!("{listed}"))
        .clone()
}

/// The row of a report (`SLEEP_NOW`, `WAKE_NOW`) whose resource's `field`
/// is `name`.
pub fn report_row<'a>(
    rows: &'a serde_json::Value,
    field: &str,
    name: &str,
) -> &'a serde_json::Value {
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"][field] == name)
        .unwrap_or_else(|| panic!("no row for {name}: {rows}"))
}

/// Kills the daemon while asleep (SIGKILL) and starts it again in `cfg`:
/// it must know it is asleep, and the user's return must wake everything
/// within 30 s.
pub async fn killed_then_back(d: &mut Daemon, cfg: &ConfigDir) {
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    *d = Daemon::start(cfg);
    assert_eq!(d.ok("STATUS").await["state"], "asleep");
    d.ok("USER_ACTIVITY").await;
    d.wait_status(std::time::Duration::from_secs(30), "awake", |s| {
        s["asleep"].as_array().is_some_and(|a| a.is_empty()) && s["state"] == "active"
    })
    .await;
}
