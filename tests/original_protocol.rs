//! A client written from the original cloudnap README works: its datagrams,
//! sent verbatim to the real binary over UDP against moto, get replies with
//! the fields that README's users read.

mod common;
use common::*;
use serde_json::{json, Value};

const R: &str = "ap-northeast-2";

/// The original README's JSON envelope, `timestamp` a number.
fn envelope(kind: &str, content: Value) -> String {
    json!({"id": "요청ID", "type": kind, "timestamp": 1621234567, "source": "client", "content": content})
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_original_readmes_datagrams_get_the_replies_it_promised() {
    let id = ec2_instance(R, false, &[("Name", "개발 서버")]).await;
    let cluster = unique("orig");
    ecs_service(R, &cluster, "my-service", 2).await;
    eks_nodegroup(R, &cluster, "my-nodegroup", (1, 2, 3)).await;
    let cfg = ConfigDir::with_settings(&daemon_settings(&[R], detectors_off(json!({}))), "");
    let d = Daemon::start(&cfg);

    // JSON: AWS_EC2_LIST with a numeric timestamp.
    let r = d.send(&envelope("AWS_EC2_LIST", json!({}))).await;
    assert_eq!(r["type"], "AWS_EC2_LIST", "{r}");
    assert_eq!(r["reply_to"], "요청ID");
    assert!(r["timestamp"].is_u64(), "same timestamp type: {r}");
    let box_ = r["content"]["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["instance_id"] == id.as_str())
        .unwrap_or_else(|| panic!("{r}"))
        .clone();
    assert_eq!(box_["name"], "개발 서버");
    assert_eq!(box_["state"], "running");
    assert!(box_.get("public_ip").is_some() && box_["private_ip"].is_string());

    // JSON: clusters with their services and nodegroups.
    let r = d.send(&envelope("AWS_ECS_LIST", json!({}))).await;
    let c = r["content"]["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["cluster_name"] == cluster.as_str())
        .unwrap_or_else(|| panic!("{r}"))
        .clone();
    assert_eq!(c["services"][0]["service_name"], "my-service");
    let r = d.send(&envelope("AWS_EKS_LIST", json!({}))).await;
    assert!(r["content"]["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["cluster_name"] == cluster.as_str()
            && c["nodegroups"][0]["nodegroup_name"] == "my-nodegroup"));

    // JSON: REGISTER_SERVICE exactly as in the README.
    let reg = json!({"service_type": "EC2", "instance_id": "i-1234567890abcdef0", "region": R});
    let r = d.send(&envelope("REGISTER_SERVICE", reg.clone())).await;
    assert_eq!(r["type"], "REGISTER_SERVICE", "{r}");
    // An error carries content.message.
    let r = d.send(&envelope("REGISTER_SERVICE", reg)).await;
    assert_eq!(r["type"], "ERROR", "{r}");
    assert!(r["content"]["message"]
        .as_str()
        .unwrap()
        .contains("already registered"));
    assert!(r["timestamp"].is_u64());

    // JSON: an EKS nodegroup scaled through AWS_SERVICE_STATUS.
    let scale = json!({"action": "SCALE", "service_type": "EKS", "cluster_name": cluster,
        "nodegroup_name": "my-nodegroup", "desired_size": 3, "region": R});
    let r = d.send(&envelope("AWS_SERVICE_STATUS", scale)).await;
    assert_eq!(r["type"], "AWS_SERVICE_STATUS", "{r}");
    assert_eq!(eks_scaling(R, &cluster, "my-nodegroup").await.0 .1, 3);

    // Text: the README's commands, verbatim apart from the names.
    assert!(d.ok("LIST_EC2").await["instances"].is_array());
    assert!(d.ok("LIST_ECS").await["clusters"].is_array());
    assert!(d.ok("LIST_EKS").await["clusters"].is_array());
    let all = d.ok("LIST_ALL_SERVICES").await;
    assert!(all["ec2"].is_array() && all["ecs"].is_array() && all["eks"].is_array());
    d.ok(&format!("STOP_EC2:{id}:{R}")).await;
    assert_eq!(ec2_state(R, &id).await.0, "stopped");
    d.ok(&format!("START_EC2:{id}:{R}")).await;
    assert_eq!(ec2_state(R, &id).await.0, "running");
    d.ok(&format!("STOP_ECS:{cluster}:my-service:{R}")).await;
    assert_eq!(ecs_desired(R, &cluster, "my-service").await.0, 0);
    // A service stopped by hand has no saved count: START_ECS without a
    // count starts 1 task (docs/protocol.md).
    d.ok(&format!("START_ECS:{cluster}:my-service:{R}")).await;
    assert_eq!(ecs_desired(R, &cluster, "my-service").await.0, 1);
    d.ok(&format!("SCALE_EKS:{cluster}:my-nodegroup:{R}:1"))
        .await;
    assert_eq!(eks_scaling(R, &cluster, "my-nodegroup").await.0 .1, 1);
    let ids = [
        format!("EC2:{id}:{R}"),
        format!("ECS:{cluster}:my-service:{R}"),
        format!("EKS:{cluster}:my-nodegroup:{R}"),
    ];
    let registered = || async {
        d.ok("LIST_REGISTERED_SERVICES").await["services"]
            .as_array()
            .unwrap()
            .len()
    };
    for id in &ids {
        d.ok(&format!("REGISTER_{id}")).await;
    }
    assert_eq!(registered().await, 4);
    for id in &ids {
        d.ok(&format!("UNREGISTER_{id}")).await;
    }
    assert_eq!(registered().await, 1);
}
