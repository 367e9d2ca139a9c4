//! The savings report through the real binary against moto: a fleet slept
//! and woken twice, `cloudnap report --json` per resource (asleep seconds
//! as measured, a saving), a torn history line, and the HTML page in a
//! real headless browser (chromium); and the daemon's `REPORT` priced by a
//! cached Price List answer, as `cloudnap report` is.

mod common;
use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const A: &str = "eu-west-1";
const B: &str = "us-west-2";

/// Runs `cmd` and returns the middle of the time it ran, in seconds since
/// `t0`, and whether it succeeded.
fn timed(cfg: &ConfigDir, cmd: &str, t0: Instant) -> f64 {
    let start = t0.elapsed().as_secs_f64();
    let out = cfg.run(&[cmd, "--json"]);
    assert!(out.status.success(), "{cmd} failed");
    (start + t0.elapsed().as_secs_f64()) / 2.0
}

fn report_json(cfg: &ConfigDir) -> (Value, String) {
    let out = cfg.run(&["report", "--since", "1d", "--json"]);
    assert!(out.status.success());
    (
        serde_json::from_slice(&out.stdout).unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn report_counts_each_sleep_and_survives_a_torn_line() {
    let (cluster, eks_cluster) = (unique("fargate"), unique("eks"));
    let instance = ec2_instance(A, false, &[]).await;
    ecs_service_on(A, &cluster, "api", 2, Launch::Fargate).await;
    eks_nodegroup(B, &eks_cluster, "workers", (1, 2, 3)).await;
    let cfg = ConfigDir::new(
        &[A, B],
        &format!(
            "ec2_instances:\n  - instance_id: {instance}\n    region: {A}\n\
             ecs_services:\n  - cluster_name: {cluster}\n    service_name: api\n    region: {A}\n\
             eks_nodegroups:\n  - cluster_name: {eks_cluster}\n    nodegroup_name: workers\n    region: {B}\n"
        ),
    );

    let t0 = Instant::now();
    let mut measured = 0.0;
    for _ in 0..2 {
        let slept = timed(&cfg, "sleep", t0);
        std::thread::sleep(Duration::from_secs(2));
        let woke = timed(&cfg, "wake", t0);
        measured += woke - slept;
        std::thread::sleep(Duration::from_millis(500));
    }

    let (report, _) = report_json(&cfg);
    let rows = report["resources"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{report:#}");
    for r in rows {
        let asleep = r["asleep_seconds"].as_f64().unwrap();
        assert!(
            (asleep - measured).abs() < 1.0,
            "{}: asleep {asleep} s, measured {measured} s",
            r["id"]
        );
        assert!(r["saved_usd"].as_f64().unwrap() > 0.0, "{r:#}");
        assert_eq!(r["sources"], serde_json::json!(["estimate"]), "{r:#}");
        assert_eq!(r["asleep"].as_array().unwrap().len(), 2);
        assert_eq!(r["asleep_now"], false);
    }
    let history = std::fs::read_to_string(cfg.file("history.jsonl")).unwrap();
    assert_eq!(history.lines().count(), 12, "{history}");
    assert!(history.contains("\"trigger\":\"command\""));
    assert!(
        history.contains("\"instance_type\":\"t3.micro\""),
        "{history}"
    );
    assert!(report["assumptions"]
        .as_str()
        .unwrap()
        .contains("on-demand"));

    // A crash while writing a line: the report still comes, with a warning.
    let mut torn = history.lines().next().unwrap().to_string();
    torn.truncate(torn.len() / 2);
    std::fs::write(cfg.file("history.jsonl"), format!("{history}{torn}")).unwrap();
    let (again, stderr) = report_json(&cfg);
    assert!(
        stderr.contains("warning") && stderr.contains("torn last line"),
        "{stderr}"
    );
    let same = |r: &Value| (r["id"].clone(), r["asleep"].clone(), r["saved_usd"].clone());
    let rows_again: Vec<_> = again["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(same)
        .collect();
    assert_eq!(rows_again, rows.iter().map(same).collect::<Vec<_>>());

    // The text form fits 100 columns.
    let out = cfg.run(&["report", "--since", "1d"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().all(|l| l.chars().count() <= 100), "{text}");
    assert!(text.contains("TOTAL"));

    // The HTML page in a real headless browser: a screenshot and one
    // timeline row per resource.
    let html = cfg.file("report.html");
    let out = cfg.run(&["report", "--since", "1h", "--html", html.to_str().unwrap()]);
    assert!(out.status.success());
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        !page.contains("<script") && !page.contains("src="),
        "self-contained"
    );
    let shot = artifacts_dir().join("report.png");
    chromium(
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1200,800",
        ],
        &html,
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 5_000,
        "{}",
        shot.display()
    );
    let dom = chromium(&["--dump-dom"], &html);
    assert_eq!(dom.matches("class=\"timeline-row\"").count(), 3, "{dom}");
    assert_eq!(dom.matches("class=\"asleep\"").count(), 6, "two bars each");
}

/// An hourly price for a t3.micro far from the shipped table's (0.0104 ×
/// 1.11 in eu-west-1), so a figure shows which was used.
const CACHED_T3_MICRO: f64 = 3.6;

#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_s_report_uses_the_cached_price_list_answer() {
    let instance = ec2_instance(A, false, &[]).await;
    let settings = daemon_settings(&[A], detectors_off(serde_json::json!({})));
    let cfg = ConfigDir::with_settings(
        &settings,
        &format!("ec2_instances:\n  - instance_id: {instance}\n    region: {A}\n"),
    );
    let fetched = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let cache = serde_json::json!({
        format!("ec2/{A}/t3.micro"): {"usd_per_hour": CACHED_T3_MICRO, "fetched": fetched}
    });
    std::fs::write(cfg.file("price-cache.json"), cache.to_string()).unwrap();

    let d = Daemon::start(&cfg);
    let slept = d.ok("SLEEP_NOW").await;
    assert_eq!(slept[0]["action"], "stopped", "{slept}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    d.ok("WAKE_NOW").await;

    // Over real UDP: the saving is the cached price × the hours asleep.
    let report = d.ok("REPORT").await;
    let rows = report["resources"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{report:#}");
    let row = &rows[0];
    let asleep = row["asleep_seconds"].as_f64().unwrap();
    assert!(asleep >= 1.5, "{row:#}");
    let saved = row["saved_usd"].as_f64().unwrap();
    let want = CACHED_T3_MICRO * asleep / 3600.0;
    assert!(
        (saved - want).abs() < 1e-9,
        "saved {saved}, want {want}: {row:#}"
    );
    assert!(
        row["sources"]
            .as_array()
            .unwrap()
            .contains(&"price_list".into()),
        "{row:#}"
    );

    // The tray's weekly figure is the same figure.
    let status = d.ok("STATUS").await;
    let week = status["saved_this_week_usd"].as_f64().unwrap();
    assert!((week - saved).abs() < 1e-9, "week {week}, REPORT {saved}");

    // And `cloudnap report` prices it the same way.
    let (cli, _) = report_json(&cfg);
    let cli_saved = cli["resources"][0]["saved_usd"].as_f64().unwrap();
    assert!((cli_saved - saved).abs() < 1e-9, "{cli:#}");
}

/// Runs headless chromium on the page `html` with `args`; returns stdout.
fn chromium(args: &[&str], html: &Path) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            &format!("--user-data-dir={}", profile.path().display()),
        ])
        .args(args)
        .arg(format!("file://{}", html.display()))
        .output()
        .expect("chromium (Debian package `chromium`, installed by build/test.sh)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
