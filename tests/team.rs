//! Team mode with three real cloudnap processes (separate config dirs,
//! detectors off, activity from `USER_ACTIVITY` and `SLEEP_NOW` over real
//! UDP, a 1 s heartbeat and a 3 s lease) against one moto server
//! (DynamoDB, EC2, ECS): a shared ECS service sleeps only when every
//! member is away, exactly once, and is back within 2 s of the first
//! return; a member killed with `kill -9` counts as away once its lease
//! has run out; of two members leaving at the same instant one sleeps it
//! and the other reports `done by` the first.

mod common;
#[path = "common/forwarder.rs"]
mod forwarder;
use common::*;
use std::time::{Duration, Instant};

const R: &str = "eu-west-3";
const MEMBERS: [&str; 3] = ["dev-a@laptop-1", "dev-b@laptop-2", "dev-c@laptop-3"];

/// Three members of one team (a new table) sharing one new ECS service
/// `web` at 3 tasks; member `i` also has `personal[i]` in its services.yaml.
struct Team {
    cfgs: Vec<ConfigDir>,
    daemons: Vec<Option<Daemon>>,
    cluster: String,
}

impl Team {
    async fn start(personal: [&str; 3]) -> Team {
        Self::start_via(personal, &moto_url()).await
    }

    /// As [`Team::start`], the daemons' AWS calls going to `endpoint`.
    async fn start_via(personal: [&str; 3], endpoint: &str) -> Team {
        let table = unique("team");
        let cluster = unique("shared");
        ecs_service(R, &cluster, "web", 3).await;
        let cfgs: Vec<ConfigDir> = (0..3)
            .map(|i| {
                let settings = timeout_settings(
                    R,
                    Duration::from_secs(600),
                    serde_json::json!({
                        "aws": {"deadline": false, "endpoint_url": endpoint},
                        "team": {"table": table, "region": R, "member": MEMBERS[i],
                                 "heartbeat_seconds": 1, "lease_seconds": 3}
                    }),
                );
                let services = format!(
                    "ecs_services:\n  - cluster_name: {cluster}\n    service_name: web\n    region: {R}\n    shared: true\n{}",
                    personal[i]
                );
                ConfigDir::with_settings(&settings, &services)
            })
            .collect();
        let init = cfgs[0].run(&["team", "init"]);
        assert!(init.status.success(), "team init");
        let again = cfgs[1].run(&["team", "init"]);
        assert!(again.status.success(), "team init of an existing table");
        let daemons = cfgs.iter().map(|c| Some(Daemon::start(c))).collect();
        Team {
            cfgs,
            daemons,
            cluster,
        }
    }

    fn d(&self, i: usize) -> &Daemon {
        self.daemons[i].as_ref().unwrap()
    }

    async fn desired(&self) -> i32 {
        ecs_desired(R, &self.cluster, "web").await.0
    }

    /// Polls the shared service until it is at `want`; the time it took.
    async fn wait_desired(&self, want: i32, limit: Duration) -> Duration {
        let t0 = Instant::now();
        loop {
            if self.desired().await == want {
                return t0.elapsed();
            }
            assert!(t0.elapsed() < limit, "not at {want} after {limit:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sleeps of the shared service in member `i`'s history.
    fn sleeps(&self, i: usize) -> usize {
        let text = std::fs::read_to_string(self.cfgs[i].file("history.jsonl")).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| e["change"] == "sleep" && e["resource"]["cluster_name"] == self.cluster)
            .count()
    }

    /// The team's view of the shared service in member `i`'s STATUS.
    async fn row(&self, i: usize) -> serde_json::Value {
        let status = self.d(i).ok("STATUS").await;
        status["team"]["resources"][0].clone()
    }

    /// The lock item, from `cloudnap team status --json`.
    fn lock(&self) -> serde_json::Value {
        let out = self.cfgs[0].run(&["--json", "team", "status"]);
        assert!(out.status.success());
        let view: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        view["locks"][0].clone()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_shared_service_sleeps_once_all_are_away_and_is_back_within_2s() {
    let t0 = Instant::now();
    let b_box = ec2_instance(R, false, &[]).await;
    let b_yaml = format!("ec2_instances:\n  - instance_id: {b_box}\n    region: {R}\n");
    let team = Team::start(["", &b_yaml, ""]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let status = team.d(0).ok("STATUS").await;
    assert_eq!(status["team"]["member"], "dev-a@laptop-1", "{status}");
    assert_eq!(
        status["team"]["presence_line"],
        "3 of 3 present: dev-a@laptop-1, dev-b@laptop-2, dev-c@laptop-3"
    );

    // A active, B and C away: the shared service stays at 3, B's own
    // instance sleeps.
    team.d(1).ok("SLEEP_NOW").await;
    team.d(2).ok("SLEEP_NOW").await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(team.desired().await, 3, "A is present");
    let (b_state, _) = ec2_state(R, &b_box).await;
    assert!(
        ["stopped", "stopping"].contains(&b_state.as_str()),
        "{b_state}"
    );
    let row = team.row(1).await;
    assert_eq!(row["phase"], "idle", "{row}");
    assert_eq!(row["presence_line"], "1 of 3 present: dev-a@laptop-1");

    // All away: it goes to 0, once.
    team.d(0).ok("SLEEP_NOW").await;
    let took = team.wait_desired(0, Duration::from_secs(8)).await;
    eprintln!("all away -> 0 in {took:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sleeps: Vec<usize> = (0..3).map(|i| team.sleeps(i)).collect();
    assert_eq!(
        sleeps.iter().sum::<usize>(),
        1,
        "one UpdateService to 0: {sleeps:?}"
    );
    let lock = team.lock();
    assert_eq!(lock["phase"], "asleep", "{lock}");
    assert_eq!(lock["saved"]["desired"], 3, "{lock}");
    let sleeper = sleeps.iter().position(|n| *n == 1).unwrap();
    assert_eq!(lock["owner"], MEMBERS[sleeper]);
    for i in (0..3).filter(|i| *i != sleeper) {
        let row = team.row(i).await;
        assert_eq!(
            row["note"],
            format!("done by {}", MEMBERS[sleeper]),
            "member {i}: {row}"
        );
    }
    let line = team.d(2).ok("STATUS").await["team"]["presence_line"].clone();
    assert!(
        line.as_str().unwrap().starts_with("all away since "),
        "{line}"
    );
    // `cloudnap status` shows the same team view under the resources.
    let out = team.cfgs[2].run(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\nteam:      all away since "), "{text}");
    let shared = format!("(shared): asleep, last by {}", MEMBERS[sleeper]);
    assert!(
        text.lines()
            .any(|l| l.starts_with("  ") && l.contains(&team.cluster) && l.ends_with(&shared)),
        "{shared} in {text}"
    );

    // C comes back: the service is at 3 again within 2 s.
    team.d(2).ok("USER_ACTIVITY").await;
    let took = team.wait_desired(3, Duration::from_secs(2)).await;
    eprintln!("C back -> 3 in {took:?}");
    let lock = team.lock();
    assert_eq!(
        (lock["phase"].as_str(), lock["owner"].as_str()),
        (Some("idle"), Some(MEMBERS[2]))
    );
    // B's own instance is still asleep: C's return is not B's.
    assert_eq!(ec2_state(R, &b_box).await.0, "stopped");
    eprintln!("test took {:?}", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_killed_while_alone_present_counts_as_away_after_its_lease() {
    let t0 = Instant::now();
    let mut team = Team::start(["", "", ""]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    team.d(1).ok("SLEEP_NOW").await;
    team.d(2).ok("SLEEP_NOW").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(team.desired().await, 3, "A is present");
    // kill -9 of A: no more renewals; after its 3 s lease it is away.
    let mut a = team.daemons[0].take().unwrap();
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let killed = Instant::now();
    team.wait_desired(0, Duration::from_secs(10)).await;
    let after = killed.elapsed();
    eprintln!("killed -> 0 in {after:?}");
    assert!(
        after >= Duration::from_secs(2),
        "not before the lease: {after:?}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sleeps: usize = (1..3).map(|i| team.sleeps(i)).sum();
    assert_eq!(sleeps, 1);
    eprintln!("test took {:?}", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread")]
async fn two_members_leaving_at_once_make_one_sleeper_the_other_says_done_by() {
    let t0 = Instant::now();
    let team = Team::start(["", "", ""]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    team.d(0).ok("SLEEP_NOW").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(team.desired().await, 3);
    // B and C go away at the same instant: both race for the lock.
    tokio::join!(team.d(1).ok("SLEEP_NOW"), team.d(2).ok("SLEEP_NOW"));
    team.wait_desired(0, Duration::from_secs(8)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sleeps: Vec<usize> = (0..3).map(|i| team.sleeps(i)).collect();
    assert_eq!(sleeps.iter().sum::<usize>(), 1, "one sleeper: {sleeps:?}");
    let sleeper = sleeps.iter().position(|n| *n == 1).unwrap();
    // Any member may win (A's heartbeat steps too): the others say so.
    for i in (0..3).filter(|i| *i != sleeper) {
        let row = team.row(i).await;
        assert_eq!(
            row["note"],
            format!("done by {}", MEMBERS[sleeper]),
            "{row}"
        );
        assert_eq!(row["by"], MEMBERS[sleeper]);
    }
    eprintln!("test took {:?}", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread")]
async fn dynamodb_down_keeps_shared_resources_up_while_personal_ones_go_on() {
    let t0 = Instant::now();
    let fwd = forwarder::Forwarder::start(&moto_url());
    let b_box = ec2_instance(R, false, &[]).await;
    let b_yaml = format!("ec2_instances:\n  - instance_id: {b_box}\n    region: {R}\n");
    let team = Team::start_via(["", &b_yaml, ""], &fwd.url).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // DynamoDB stops answering; then everybody leaves.
    fwd.refuse("DynamoDB_20120810.");
    for i in 0..3 {
        team.d(i).ok("SLEEP_NOW").await;
    }
    let status = team
        .d(1)
        .wait_status(Duration::from_secs(20), "team_error", |s| {
            s["team_error"].is_string()
        })
        .await;
    eprintln!("team_error: {}", status["team_error"]);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(team.desired().await, 3, "fail safe: shared stays up");
    let b_state = ec2_state(R, &b_box).await.0;
    assert!(
        ["stopped", "stopping"].contains(&b_state.as_str()),
        "B's own sleeps: {b_state}"
    );
    // B's own wakes and sleeps as before.
    team.d(1).ok("USER_ACTIVITY").await;
    let t = Instant::now();
    while ec2_state(R, &b_box).await.0 != "running" {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "B's own did not wake"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(team.desired().await, 3);
    team.d(1).ok("SLEEP_NOW").await;
    // DynamoDB is back: coordination resumes, the shared service sleeps.
    fwd.accept();
    team.wait_desired(0, Duration::from_secs(30)).await;
    team.d(1)
        .wait_status(Duration::from_secs(10), "no team_error", |s| {
            s["team_error"].is_null()
        })
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sleeps: usize = (0..3).map(|i| team.sleeps(i)).sum();
    assert_eq!(sleeps, 1);
    eprintln!("test took {:?}", t0.elapsed());
}
