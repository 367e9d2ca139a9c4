//! SageMaker notebook instances through the real binary against moto, the
//! daemon's calls going over cloudnap's own signed transport: registered by
//! UDP text and JSON, found by tag, listed, put to sleep (the protected one
//! left up), woken exactly after a `kill -9`, stopped and started by hand;
//! the AWS-side deadline's schedule fired as the scheduler would; and
//! `aws-setup` naming the sleep call.

mod common;
#[path = "common/scheduler.rs"]
#[allow(dead_code)]
mod scheduler;

use cloudnap::cloud::aws::signed::{Signed, SAGEMAKER};
use common::*;
use scheduler::*;
use serde_json::{json, Value};
use std::time::Duration;

const R: &str = "eu-south-1";

/// A SageMaker call to moto, signed as the SDK (and the scheduler's
/// universal target) would sign it.
async fn sagemaker(op: &str, input: Value) -> Value {
    Signed::new(&sdk(R).await)
        .json(&SAGEMAKER, op, &input)
        .await
        .unwrap_or_else(|e| panic!("{op}: {e}"))
}

/// A new `ml.t3.medium` notebook instance with `tags`, InService.
async fn notebook(prefix: &str, tags: &[(&str, &str)]) -> String {
    let name = unique(prefix);
    let tags: Vec<Value> = tags
        .iter()
        .map(|(k, v)| json!({"Key": k, "Value": v}))
        .collect();
    sagemaker(
        "CreateNotebookInstance",
        json!({"NotebookInstanceName": name, "InstanceType": "ml.t3.medium",
               "RoleArn": "arn:aws:iam::123456789012:role/sm", "Tags": tags}),
    )
    .await;
    name
}

/// A notebook instance's status and whether it has the sleep tag.
async fn state(name: &str) -> (String, bool) {
    let nb = sagemaker(
        "DescribeNotebookInstance",
        json!({"NotebookInstanceName": name}),
    )
    .await;
    let arn = nb["NotebookInstanceArn"].clone();
    let tags = sagemaker("ListTags", json!({"ResourceArn": arn})).await;
    let sleeping = tags["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["Key"] == "cloudnap:sleeping" && t["Value"] == "running");
    (
        nb["NotebookInstanceStatus"].as_str().unwrap().to_string(),
        sleeping,
    )
}

/// The row of a report about notebook `name`.
fn row<'a>(rows: &'a Value, name: &str) -> &'a Value {
    report_row(rows, "notebook_instance_name", name)
}

/// Registers `nb` by text and `kept` by JSON, waits until `tagged` is
/// found by its tag, and checks `nb`'s listing.
async fn register_and_list(d: &Daemon, cfg: &ConfigDir, nb: &str, kept: &str, tagged: &str) {
    // Registered by text and by JSON; the tagged one is found by its tag.
    let field = "notebook_instance_name";
    let names = (nb, kept);
    register_both(
        d,
        cfg,
        "SAGEMAKER_NOTEBOOK",
        field,
        names,
        R,
        "sagemaker_notebooks",
    )
    .await;
    found_by_tag(d, field, tagged).await;

    // Listed.
    let found = listed_row(d, "SAGEMAKER_NOTEBOOK", R, "notebooks", field, nb).await;
    assert_eq!(
        found,
        json!({"notebook_instance_name": nb, "region": R, "status": "InService", "instance_type": "ml.t3.medium"})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn notebooks_sleep_and_wake_exactly_by_registration_and_by_tag() {
    let (nb, kept) = (
        notebook("nb", &[]).await,
        notebook("kept", &[("cloudnap:protect", "true")]).await,
    );
    let tagged = notebook("tagged", &[("cloudnap:managed", "true")]).await;
    let cfg = ConfigDir::with_settings(&daemon_settings(&[R], detectors_off(json!({}))), "");
    let mut d = Daemon::start(&cfg);

    register_and_list(&d, &cfg, &nb, &kept, &tagged).await;

    // Asleep: stopped and tagged, the protected one left up.
    let slept = d.ok("SLEEP_NOW").await;
    assert_eq!(row(&slept, &nb)["action"], "stopped", "{slept}");
    assert_eq!(row(&slept, &tagged)["action"], "stopped", "{slept}");
    assert_eq!(row(&slept, &kept)["action"], "protected", "{slept}");
    assert_eq!(row(&slept, &nb)["resource"]["type"], "SAGEMAKER_NOTEBOOK");
    for name in [&nb, &tagged] {
        assert_eq!(state(name).await, ("Stopped".into(), true), "{name}");
    }
    assert_eq!(state(&kept).await, ("InService".into(), false));

    // Killed while asleep; started again, the user's return wakes exactly
    // what it stopped.
    killed_then_back(&mut d, &cfg).await;
    for name in [&nb, &tagged, &kept] {
        assert_eq!(state(name).await, ("InService".into(), false), "{name}");
    }

    // By hand, in text and in JSON.
    d.ok(&format!("STOP_SAGEMAKER_NOTEBOOK:{nb}:{R}")).await;
    assert_eq!(state(&nb).await.0, "Stopped");
    let reply = d
        .send(
            &json!({"type": "AWS_SERVICE_STATUS", "content": {
                "action": "START", "service_type": "SAGEMAKER_NOTEBOOK",
                "notebook_instance_name": nb, "region": R
            }})
            .to_string(),
        )
        .await;
    assert_eq!(reply["content"]["capacity"]["running"], true, "{reply}");
    assert_eq!(state(&nb).await.0, "InService");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_deadline_stops_a_notebook_and_aws_setup_names_the_call() {
    let nb = notebook("deadline", &[]).await;
    let settings = timeout_settings(
        R,
        Duration::from_secs(20),
        json!({"aws": {"deadline_role_arn": ROLE}}),
    );
    let cfg = ConfigDir::with_settings(
        &settings,
        &format!("sagemaker_notebooks:\n  - notebook_instance_name: {nb}\n    region: {R}\n"),
    );

    let out = cfg.run(&["aws-setup", "--dry-run"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("sagemaker:StopNotebookInstance"), "{text}");
    assert!(
        text.contains(&format!(
            "arn:aws:sagemaker:{R}:123456789012:notebook-instance/{nb}"
        )),
        "{text}"
    );

    // Armed at start, the capacity written ahead into the sleep tag; killed;
    // the schedule fires as the scheduler would.
    let mut d = Daemon::start(&cfg);
    let armed = schedule_of(R, &nb, Duration::from_secs(30), |_| true).await;
    assert_eq!(
        armed.arn,
        "arn:aws:scheduler:::aws-sdk:sagemaker:stopNotebookInstance"
    );
    assert_eq!(armed.input, json!({"NotebookInstanceName": nb}));
    assert_eq!(armed.role, ROLE);
    assert_eq!(state(&nb).await, ("InService".into(), true));
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    let action = armed.arn.rsplit(':').next().unwrap();
    let op = format!("{}{}", action[..1].to_uppercase(), &action[1..]);
    sagemaker(&op, armed.input.clone()).await;
    assert_eq!(state(&nb).await, ("Stopped".into(), true));

    // `cloudnap wake` restores exactly what ran, from the tag.
    let out = cfg.run(&["wake"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(state(&nb).await, ("InService".into(), false));
}
