//! Tag discovery through the real binary and the real SDK against moto: an
//! EC2 instance tagged `cloudnap:managed=true` and in no services.yaml is
//! slept and woken like a registered one, listed with `source: tag`; one
//! also tagged `cloudnap:protect=true` stays up; an untagged one is not
//! touched.

mod common;
use common::*;
use serde_json::Value;

const R: &str = "sa-east-1";

fn rows(out: std::process::Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The row of instance `id`, if any.
fn row<'a>(rows: &'a [Value], id: &str) -> Option<&'a Value> {
    rows.iter().find(|r| r["resource"]["instance_id"] == id)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tagged_instance_is_managed_without_services_yaml_and_protect_still_wins() {
    let managed = [("cloudnap:managed", "true")];
    let tagged = ec2_instance(R, false, &managed).await;
    let protected = ec2_instance(R, false, &[managed[0], ("cloudnap:protect", "true")]).await;
    let untagged = ec2_instance(R, false, &[]).await;
    let cfg = ConfigDir::new(&[R], "");

    let slept = rows(cfg.run(&["sleep", "--json"]));
    assert_eq!(
        row(&slept, &tagged).unwrap()["action"],
        "stopped",
        "{slept:?}"
    );
    assert_eq!(
        row(&slept, &protected).unwrap()["action"],
        "protected",
        "{slept:?}"
    );
    assert!(row(&slept, &untagged).is_none(), "{slept:?}");
    assert_eq!(ec2_state(R, &tagged).await.0, "stopped");
    assert_eq!(ec2_state(R, &protected).await.0, "running");
    assert_eq!(ec2_state(R, &untagged).await.0, "running");

    let status = rows(cfg.run(&["status", "--json"]));
    let listed = row(&status, &tagged).unwrap();
    assert_eq!(listed["source"], "tag", "{status:?}");
    assert_eq!(listed["asleep"]["running"], true, "{status:?}");

    // The daemon searches at start: LIST_REGISTERED_SERVICES shows it.
    let d = Daemon::start(&ConfigDir::with_settings(
        &daemon_settings(&[R], serde_json::json!({})),
        "",
    ));
    let t0 = std::time::Instant::now();
    let services = loop {
        let reply = d.ok("LIST_REGISTERED_SERVICES").await;
        let services = reply["services"].as_array().unwrap().clone();
        if row(&services, &tagged).is_some() {
            break services;
        }
        assert!(t0.elapsed().as_secs() < 20, "not listed: {reply}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(row(&services, &tagged).unwrap()["source"], "tag");
    assert!(row(&services, &untagged).is_none(), "{services:?}");
    drop(d);

    let woken = rows(cfg.run(&["wake", "--json"]));
    assert_eq!(
        row(&woken, &tagged).unwrap()["action"],
        "restored",
        "{woken:?}"
    );
    assert_eq!(ec2_state(R, &tagged).await.0, "running");

    // Switched off, the tag means nothing.
    let off = ConfigDir::with_settings(
        &serde_json::json!({
            "aws": { "regions": [R], "endpoint_url": moto_url(), "tag_discovery": false }
        })
        .to_string(),
        "",
    );
    assert!(rows(off.run(&["sleep", "--json"])).is_empty());
    assert_eq!(ec2_state(R, &tagged).await.0, "running");
}
