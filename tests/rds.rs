//! RDS through the real binary and the real SDK against moto: a DB instance
//! and an Aurora cluster are stopped and started exactly; an instance of a
//! cluster is never stopped alone; a database AWS starts again by itself
//! (after 7 days stopped) while the user is away is stopped again.

mod common;
use common::*;
use serde_json::json;
use std::time::Duration;

const R: &str = "sa-east-1";

async fn rds() -> aws_sdk_rds::Client {
    aws_sdk_rds::Client::new(&sdk(R).await)
}

/// An Aurora PostgreSQL cluster with one instance, `<name>-a`.
async fn aurora(name: &str) -> String {
    let rds = rds().await;
    rds.create_db_cluster()
        .db_cluster_identifier(name)
        .engine("aurora-postgresql")
        .master_username("admin")
        .master_user_password("password123")
        .send()
        .await
        .unwrap();
    let member = format!("{name}-a");
    rds.create_db_instance()
        .db_instance_identifier(&member)
        .db_cluster_identifier(name)
        .engine("aurora-postgresql")
        .db_instance_class("db.r6g.large")
        .send()
        .await
        .unwrap();
    member
}

/// A DB instance's status and tags.
async fn instance(name: &str) -> (String, Vec<(String, String)>) {
    let out = rds()
        .await
        .describe_db_instances()
        .db_instance_identifier(name)
        .send()
        .await
        .unwrap();
    let db = &out.db_instances()[0];
    (
        db.db_instance_status().unwrap().to_string(),
        tags(db.tag_list()),
    )
}

/// A DB cluster's status and tags.
async fn cluster(name: &str) -> (String, Vec<(String, String)>) {
    let out = rds()
        .await
        .describe_db_clusters()
        .db_cluster_identifier(name)
        .send()
        .await
        .unwrap();
    let c = &out.db_clusters()[0];
    (c.status().unwrap().to_string(), tags(c.tag_list()))
}

fn tags(tags: &[aws_sdk_rds::types::Tag]) -> Vec<(String, String)> {
    tags.iter()
        .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
        .collect()
}

fn sleeping() -> (String, String) {
    ("cloudnap:sleeping".into(), "running".into())
}

/// The `--json` report rows of `cloudnap CMD` and its exit code.
fn report(cfg: &ConfigDir, cmd: &str) -> (Option<i32>, Vec<serde_json::Value>) {
    let out = cfg.run(&[cmd, "--json"]);
    (
        out.status.code(),
        serde_json::from_slice(&out.stdout).unwrap(),
    )
}

/// The row of `rows` about the resource named `name`.
fn row<'a>(rows: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    rows.iter()
        .find(|r| {
            r["resource"]["db_instance_identifier"] == name
                || r["resource"]["db_cluster_identifier"] == name
        })
        .unwrap_or_else(|| panic!("no row for {name}: {rows:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_and_an_aurora_cluster_stop_and_start() {
    let (db, aur, kept) = (unique("db"), unique("aur"), unique("db"));
    rds_instance(R, &db, &[]).await;
    rds_instance(R, &kept, &[("cloudnap:protect", "true")]).await;
    aurora(&aur).await;
    let cfg = ConfigDir::new(
        &[R],
        &format!(
            "rds_instances:\n  - db_instance_identifier: {db}\n    region: {R}\n    description: dev db\n  - db_instance_identifier: {kept}\n    region: {R}\n\
             rds_clusters:\n  - db_cluster_identifier: {aur}\n    region: {R}\n"
        ),
    );

    let (code, rows) = report(&cfg, "sleep");
    assert_eq!(code, Some(0), "{rows:?}");
    assert_eq!(row(&rows, &db)["action"], "stopped", "{rows:?}");
    assert_eq!(row(&rows, &db)["resource"]["type"], "RDS");
    assert_eq!(row(&rows, &aur)["action"], "stopped", "{rows:?}");
    assert_eq!(row(&rows, &aur)["resource"]["type"], "RDS_CLUSTER");
    assert_eq!(row(&rows, &kept)["action"], "protected", "{rows:?}");
    assert_eq!(instance(&kept).await.0, "available");
    let (status, tags) = instance(&db).await;
    assert_eq!(status, "stopped");
    assert!(tags.contains(&sleeping()), "{tags:?}");
    let (status, tags) = cluster(&aur).await;
    assert_eq!(status, "stopped");
    assert!(tags.contains(&sleeping()), "{tags:?}");
    let state = std::fs::read_to_string(cfg.file("state.json")).unwrap();
    assert!(
        state.contains(&format!(
            r#""type": "RDS_CLUSTER",
        "db_cluster_identifier": "{aur}""#
        )),
        "{state}"
    );

    // A second sleep keeps what the first saved.
    let (_, rows) = report(&cfg, "sleep");
    assert_eq!(row(&rows, &db)["action"], "already_asleep", "{rows:?}");

    let (code, rows) = report(&cfg, "wake");
    assert_eq!(code, Some(0), "{rows:?}");
    assert_eq!(row(&rows, &db)["action"], "restored", "{rows:?}");
    assert_eq!(row(&rows, &aur)["action"], "restored", "{rows:?}");
    for (status, tags) in [instance(&db).await, cluster(&aur).await] {
        assert_eq!(status, "available");
        assert!(!tags.contains(&sleeping()), "{tags:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_of_a_cluster_is_never_stopped_alone() {
    let aur = unique("aur");
    let member = aurora(&aur).await;
    let cfg = ConfigDir::with_settings(
        &daemon_settings(&[R], detectors_off(json!({}))),
        &format!("rds_instances:\n  - db_instance_identifier: {member}\n    region: {R}\n"),
    );
    let reason = format!("in_rds_cluster: {aur}");

    let out = cfg.run(&["check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("warning:") && text.contains(&reason),
        "{text}"
    );

    let (code, rows) = report(&cfg, "sleep");
    assert_eq!(code, Some(1), "{rows:?}");
    assert_eq!(row(&rows, &member)["action"], "failed", "{rows:?}");
    assert_eq!(row(&rows, &member)["error"], reason.as_str(), "{rows:?}");
    assert_eq!(instance(&member).await.0, "available");
    assert_eq!(cluster(&aur).await.0, "available");

    // Registering it is refused; the cluster is listed and registered.
    let d = Daemon::start(&cfg);
    d.ok(&format!("UNREGISTER_RDS:{member}:{R}")).await;
    let e = d.err(&format!("REGISTER_RDS:{member}:{R}")).await;
    assert!(e.contains(&reason), "{e}");
    let listed = d.ok(&format!("LIST_RDS:{R}")).await;
    let found = listed["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["db_instance_identifier"] == member.as_str())
        .unwrap_or_else(|| panic!("{listed}"))
        .clone();
    assert_eq!(found["db_cluster_identifier"], aur.as_str());
    assert_eq!(found["db_instance_class"], "db.r6g.large");
    let listed = d.ok(&format!("LIST_RDS_CLUSTER:{R}")).await;
    let found = listed["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["db_cluster_identifier"] == aur.as_str())
        .unwrap_or_else(|| panic!("{listed}"))
        .clone();
    assert_eq!(found["members"], json!([member]));
    d.ok(&format!("REGISTER_RDS_CLUSTER:{aur}:{R}:aurora"))
        .await;
    let text = std::fs::read_to_string(cfg.file("services.yaml")).unwrap();
    assert!(
        text.contains(&format!(
            "rds_clusters:\n  - db_cluster_identifier: {aur}\n    region: {R}\n    description: aurora\n"
        )),
        "{text}"
    );

    // By hand, in text and in JSON.
    d.ok(&format!("STOP_RDS_CLUSTER:{aur}:{R}")).await;
    assert_eq!(cluster(&aur).await.0, "stopped");
    let reply = d
        .send(
            &json!({"type": "AWS_SERVICE_STATUS", "content": {
                "action": "START", "service_type": "RDS_CLUSTER",
                "db_cluster_identifier": aur, "region": R
            }})
            .to_string(),
        )
        .await;
    assert_eq!(reply["content"]["capacity"]["running"], true, "{reply}");
    assert_eq!(cluster(&aur).await.0, "available");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_aws_starts_again_while_the_user_is_away_is_stopped_again() {
    let db = unique("db");
    rds_instance(R, &db, &[]).await;
    let cfg = ConfigDir::with_settings(
        &daemon_settings(
            &[R],
            detectors_off(json!({"aws": {"service_state_check_interval_minutes": 0.01}})),
        ),
        &format!("rds_instances:\n  - db_instance_identifier: {db}\n    region: {R}\n"),
    );
    let d = Daemon::start(&cfg);
    let report = d.ok("SLEEP_NOW").await;
    assert_eq!(report[0]["action"], "stopped", "{report}");
    assert_eq!(d.ok("STATUS").await["state"], "asleep");
    assert_eq!(instance(&db).await.0, "stopped");

    // AWS starts it by itself (after 7 days stopped, in real life).
    rds()
        .await
        .start_db_instance()
        .db_instance_identifier(&db)
        .send()
        .await
        .unwrap();
    let t0 = std::time::Instant::now();
    while instance(&db).await.0 != "stopped" {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "not stopped again: {}",
            d.log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("stopped again after {:?}", t0.elapsed());
    d.logged("stopped it again").await;
    let status = d.ok("STATUS").await;
    assert_eq!(status["state"], "asleep");
    assert_eq!(status["asleep"].as_array().unwrap().len(), 1, "{status}");
    assert!(instance(&db).await.1.contains(&sleeping()));

    // The user comes back: it is started, and the tag is gone.
    d.ok("USER_ACTIVITY").await;
    d.wait_status(Duration::from_secs(30), "awake", |s| {
        s["asleep"].as_array().is_some_and(|a| a.is_empty()) && s["state"] == "active"
    })
    .await;
    let (status, tags) = instance(&db).await;
    assert_eq!(status, "available");
    assert!(!tags.contains(&sleeping()), "{tags:?}");
}
