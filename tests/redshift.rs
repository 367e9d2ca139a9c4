//! Redshift provisioned clusters through the real binary against moto, the
//! daemon's calls going over cloudnap's own signed Query transport:
//! registered by UDP text and JSON, found by tag, listed, paused (the
//! protected one left up), resumed exactly after a `kill -9`, paused and
//! resumed by hand; a cluster AWS cannot pause refused by name; one with
//! database connections left up as busy; the
//! AWS-side deadline's schedule fired as the scheduler would; and
//! `aws-setup` naming the sleep call.
//!
//! moto's tagging API does not serve Redshift clusters, so the forwarder in
//! front of moto answers GetResources with the tagged cluster's ARN (as AWS
//! would); moto never refuses a pause, so the forwarder answers one
//! cluster's PauseCluster with AWS's `UnsupportedOperation`.

mod common;
#[path = "common/forwarder.rs"]
mod forwarder;
#[path = "common/scheduler.rs"]
#[allow(dead_code)]
mod scheduler;

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
use cloudnap::cloud::aws::signed::{Signed, REDSHIFT};
use common::*;
use forwarder::Forwarder;
use scheduler::*;
use serde_json::{json, Value};
use std::time::{Duration, SystemTime};

const R: &str = "eu-north-1";
const ACCOUNT: &str = "123456789012";

/// A Redshift action at moto, signed as the SDK (and the scheduler's
/// universal target) would sign it: its XML answer.
async fn redshift(action: &str, params: &[(&str, &str)]) -> String {
    let params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Signed::new(&sdk(R).await)
        .query(&REDSHIFT, action, &params)
        .await
        .unwrap_or_else(|e| panic!("{action}: {e}"))
}

/// A new 2-node `ra3.xlplus` cluster with tag `tag` (if any), available.
async fn cluster(prefix: &str, tag: Option<(&str, &str)>) -> String {
    let name = unique(prefix);
    let mut params = vec![
        ("ClusterIdentifier", name.as_str()),
        ("NodeType", "ra3.xlplus"),
        ("ClusterType", "multi-node"),
        ("NumberOfNodes", "2"),
        ("MasterUsername", "admin"),
        ("MasterUserPassword", "Passw0rd!"),
    ];
    if let Some((k, v)) = tag {
        params.extend([("Tags.Tag.1.Key", k), ("Tags.Tag.1.Value", v)]);
    }
    redshift("CreateCluster", &params).await;
    name
}

/// A cluster's status and whether it has the sleep tag (`running`).
async fn state(name: &str) -> (String, bool) {
    let xml = redshift("DescribeClusters", &[("ClusterIdentifier", name)]).await;
    let status = xml
        .split("<ClusterStatus>")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap_or_else(|| panic!("{xml}"));
    let compact: String = xml.lines().map(str::trim).collect();
    let tagged = compact.contains("<Key>cloudnap:sleeping</Key><Value>running</Value>");
    (status.to_string(), tagged)
}

/// Puts one `DatabaseConnections` datapoint of cluster `name`, 30 s old,
/// through the forwarder (the SDK speaks CBOR, which it turns to JSON).
async fn connections(fwd: &Forwarder, name: &str, value: f64) {
    let conf = aws_sdk_cloudwatch::config::Builder::from(&sdk(R).await)
        .endpoint_url(&fwd.url)
        .build();
    let at = SystemTime::now() - Duration::from_secs(30);
    let datum = MetricDatum::builder()
        .metric_name("DatabaseConnections")
        .value(value)
        .timestamp(DateTime::from(at))
        .dimensions(
            Dimension::builder()
                .name("ClusterIdentifier")
                .value(name)
                .build(),
        );
    aws_sdk_cloudwatch::Client::from_conf(conf)
        .put_metric_data()
        .namespace("AWS/Redshift")
        .metric_data(datum.build())
        .send()
        .await
        .unwrap();
}

/// The row of a report about cluster `name`.
fn row<'a>(rows: &'a Value, name: &str) -> &'a Value {
    report_row(rows, "cluster_identifier", name)
}

/// Settings pointing the daemon at `fwd`.
fn settings(fwd: &Forwarder, extra: Value) -> String {
    let mut extra = extra;
    extra["aws"]["endpoint_url"] = fwd.url.clone().into();
    daemon_settings(&[R], detectors_off(extra))
}

/// The tagging API's answer naming `name` as tagged `cloudnap:managed=true`.
fn tagged_answer(name: &str) -> String {
    json!({"ResourceTagMappingList": [{
        "ResourceARN": format!("arn:aws:redshift:{R}:{ACCOUNT}:cluster:{name}"),
        "Tags": [{"Key": "cloudnap:managed", "Value": "true"}]
    }]})
    .to_string()
}

/// Registers `dw` by text and `kept` by JSON, waits until `tagged` is
/// found by its tag, and checks `dw`'s listing.
async fn register_and_list(d: &Daemon, cfg: &ConfigDir, dw: &str, kept: &str, tagged: &str) {
    let field = "cluster_identifier";
    let names = (dw, kept);
    register_both(
        d,
        cfg,
        "REDSHIFT_CLUSTER",
        field,
        names,
        R,
        "redshift_clusters",
    )
    .await;
    found_by_tag(d, field, tagged).await;
    let found = listed_row(d, "REDSHIFT_CLUSTER", R, "clusters", field, dw).await;
    assert_eq!(
        found,
        json!({"cluster_identifier": dw, "region": R, "status": "available",
               "node_type": "ra3.xlplus", "number_of_nodes": 2})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn clusters_pause_and_resume_exactly_by_registration_and_by_tag() {
    let fwd = Forwarder::start(&moto_url());
    let dw = cluster("dw", None).await;
    let kept = cluster("kept", Some(("cloudnap:protect", "true"))).await;
    let tagged = cluster("tagged", Some(("cloudnap:managed", "true"))).await;
    fwd.answer(
        "GetResources",
        "redshift:cluster",
        200,
        &tagged_answer(&tagged),
    );
    let cfg = ConfigDir::with_settings(&settings(&fwd, json!({})), "");
    let mut d = Daemon::start(&cfg);

    register_and_list(&d, &cfg, &dw, &kept, &tagged).await;

    // Asleep: paused and tagged, the protected one left up.
    let slept = d.ok("SLEEP_NOW").await;
    assert_eq!(row(&slept, &dw)["action"], "stopped", "{slept}");
    assert_eq!(row(&slept, &tagged)["action"], "stopped", "{slept}");
    assert_eq!(row(&slept, &kept)["action"], "protected", "{slept}");
    assert_eq!(row(&slept, &dw)["resource"]["type"], "REDSHIFT_CLUSTER");
    for name in [&dw, &tagged] {
        assert_eq!(state(name).await, ("paused".into(), true), "{name}");
    }
    assert_eq!(state(&kept).await, ("available".into(), false));

    // Killed while asleep; started again, the user's return resumes
    // exactly what it paused.
    killed_then_back(&mut d, &cfg).await;
    for name in [&dw, &tagged, &kept] {
        assert_eq!(state(name).await, ("available".into(), false), "{name}");
    }
    // A region's clusters are read with one DescribeClusters a look.
    assert!(fwd.count("DescribeClusters") > 0);

    // By hand, in text and in JSON.
    d.ok(&format!("STOP_REDSHIFT_CLUSTER:{dw}:{R}")).await;
    assert_eq!(state(&dw).await.0, "paused");
    let reply = d
        .send(
            &json!({"type": "AWS_SERVICE_STATUS", "content": {
                "action": "START", "service_type": "REDSHIFT_CLUSTER",
                "cluster_identifier": dw, "region": R
            }})
            .to_string(),
        )
        .await;
    assert_eq!(reply["content"]["capacity"]["running"], true, "{reply}");
    assert_eq!(state(&dw).await.0, "available");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_aws_cannot_pause_is_refused_by_name_and_a_connected_one_is_busy() {
    let fwd = Forwarder::start(&moto_url());
    let dw = cluster("ok", None).await;
    let (classic, used) = (cluster("classic", None).await, cluster("used", None).await);
    let refusal = "<ErrorResponse><Error><Type>Sender</Type><Code>UnsupportedOperation</Code>\
<Message>Pause is not supported for this cluster.</Message></Error></ErrorResponse>";
    fwd.answer("PauseCluster", &classic, 400, refusal);
    connections(&fwd, &used, 3.0).await;
    connections(&fwd, &dw, 0.0).await;
    let services: String = [&dw, &classic, &used]
        .iter()
        .map(|n| format!("  - cluster_identifier: {n}\n    region: {R}\n"))
        .collect();
    let services = format!("redshift_clusters:\n{services}");
    let cfg = ConfigDir::with_settings(&settings(&fwd, json!({})), &services);
    let d = Daemon::start(&cfg);

    let slept = d.ok("SLEEP_NOW").await;
    assert_eq!(row(&slept, &dw)["action"], "stopped", "{slept}");
    let refused = row(&slept, &classic);
    assert_eq!(refused["action"], "failed", "{slept}");
    let why = refused["error"].as_str().unwrap_or_default();
    assert!(
        why.contains(&format!("Redshift cluster {classic} cannot be paused"))
            && why.contains("Pause is not supported for this cluster"),
        "{refused}"
    );
    let busy = row(&slept, &used);
    assert_eq!(busy["action"], "busy", "{slept}");
    assert_eq!(busy["error"], "busy: database 3.0 connections over 10 min");
    assert_eq!(state(&dw).await, ("paused".into(), true));
    assert_eq!(state(&classic).await.0, "available");
    assert_eq!(state(&used).await, ("available".into(), false));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_deadline_pauses_a_cluster_and_aws_setup_names_the_call() {
    let dw = cluster("deadline", None).await;
    let settings = timeout_settings(
        R,
        Duration::from_secs(20),
        json!({"aws": {"deadline_role_arn": ROLE}}),
    );
    let cfg = ConfigDir::with_settings(
        &settings,
        &format!("redshift_clusters:\n  - cluster_identifier: {dw}\n    region: {R}\n"),
    );

    let out = cfg.run(&["aws-setup", "--dry-run"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("redshift:PauseCluster"), "{text}");
    assert!(
        text.contains(&format!("arn:aws:redshift:{R}:{ACCOUNT}:cluster:{dw}")),
        "{text}"
    );

    // Armed at start, the capacity written ahead into the sleep tag; killed;
    // the schedule fires as the scheduler would.
    let mut d = Daemon::start(&cfg);
    let armed = schedule_of(R, &dw, Duration::from_secs(30), |_| true).await;
    assert_eq!(
        armed.arn,
        "arn:aws:scheduler:::aws-sdk:redshift:pauseCluster"
    );
    assert_eq!(armed.input, json!({"ClusterIdentifier": dw}));
    assert_eq!(armed.role, ROLE);
    assert_eq!(state(&dw).await, ("available".into(), true));
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    let action = armed.arn.rsplit(':').next().unwrap();
    let op = format!("{}{}", action[..1].to_uppercase(), &action[1..]);
    let input = armed.input.as_object().unwrap();
    let params: Vec<(&str, &str)> = input
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
        .collect();
    redshift(&op, &params).await;
    assert_eq!(state(&dw).await, ("paused".into(), true));

    // `cloudnap wake` restores exactly what ran, from the tag.
    let out = cfg.run(&["wake"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(state(&dw).await, ("available".into(), false));
}
