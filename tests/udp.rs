//! The UDP command server of the real binary, over real sockets, against moto.

mod common;
use common::*;
use serde_json::{json, Value};

const R: &str = "ap-southeast-2";

/// A daemon with its detectors off: these tests are about the protocol.
fn daemon(extra: Value, services: &str) -> (ConfigDir, Daemon) {
    let cfg = ConfigDir::with_settings(&daemon_settings(&[R], detectors_off(extra)), services);
    let d = Daemon::start(&cfg);
    (cfg, d)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_text_command_works_against_moto() {
    let id = ec2_instance(R, false, &[("Name", "udp-box")]).await;
    let cluster = unique("udp");
    ecs_service(R, &cluster, "api", 3).await;
    eks_nodegroup(R, &cluster, "ng", (1, 2, 4)).await;
    let (_cfg, d) = daemon(json!({}), "ec2_instances: []\n");

    // Listing: the original protocol's keys, clusters with their services
    // and nodegroups nested.
    let list = d.ok("LIST_EC2").await;
    let box_ = list["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["instance_id"] == id.as_str())
        .unwrap();
    assert_eq!(box_["name"], "udp-box");
    assert_eq!(box_["state"], "running");
    assert!(!d.ok(&format!("LIST_EC2:{R}")).await["instances"]
        .as_array()
        .unwrap()
        .is_empty());
    let ecs = d.ok("LIST_ECS").await;
    let c = ecs["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["cluster_name"] == cluster.as_str())
        .unwrap();
    assert!(c["services"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["service_name"] == "api" && s["desired_count"] == 3));
    let eks = d.ok("LIST_EKS").await;
    let c = eks["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["cluster_name"] == cluster.as_str())
        .unwrap();
    let ng = &c["nodegroups"][0];
    assert_eq!(ng["nodegroup_name"], "ng");
    assert_eq!(
        (
            ng["min_size"].clone(),
            ng["desired_size"].clone(),
            ng["max_size"].clone()
        ),
        (json!(1), json!(2), json!(4))
    );
    let all = d.ok("LIST_ALL_SERVICES").await;
    assert!(all["ec2"].is_array() && all["ecs"].is_array() && all["eks"].is_array());

    // Start and stop by hand.
    d.ok(&format!("STOP_EC2:{id}:{R}")).await;
    assert_eq!(ec2_state(R, &id).await.0, "stopped");
    d.ok(&format!("START_EC2:{id}:{R}")).await;
    assert_eq!(ec2_state(R, &id).await.0, "running");

    // Registration.
    d.ok(&format!("REGISTER_EC2:{id}:{R}:the udp box")).await;
    assert!(d
        .err(&format!("REGISTER_EC2:{id}:{R}"))
        .await
        .contains("already registered"));
    d.ok(&format!("REGISTER_ECS:{cluster}:api:{R}")).await;
    d.ok(&format!("REGISTER_EKS:{cluster}:ng:{R}")).await;
    let reg = d.ok("LIST_REGISTERED_SERVICES").await;
    assert_eq!(reg["services"].as_array().unwrap().len(), 3);
    assert_eq!(reg["services"][0]["description"], "the udp box");

    // Sleep and wake now: exact capacities.
    let report = d.ok("SLEEP_NOW").await;
    assert_eq!(
        report
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o["action"] == "stopped")
            .count(),
        3
    );
    assert_eq!(ec2_state(R, &id).await.0, "stopped");
    assert_eq!(ecs_desired(R, &cluster, "api").await.0, 0);
    assert_eq!(eks_scaling(R, &cluster, "ng").await.0, (0, 0, 4));
    let status = d.ok("STATUS").await;
    assert_eq!(status["state"], "asleep");
    assert_eq!(status["asleep"].as_array().unwrap().len(), 3);
    d.ok("WAKE_NOW").await;
    assert_eq!(ec2_state(R, &id).await.0, "running");
    assert_eq!(ecs_desired(R, &cluster, "api").await.0, 3);
    assert_eq!(eks_scaling(R, &cluster, "ng").await.0, (1, 2, 4));
    assert_eq!(d.ok("STATUS").await["state"], "active");

    // START_ECS: explicit count, else the recorded count, else 1.
    d.ok(&format!("STOP_ECS:{cluster}:api:{R}")).await;
    assert_eq!(ecs_desired(R, &cluster, "api").await.0, 0);
    d.ok(&format!("START_ECS:{cluster}:api:{R}")).await;
    assert_eq!(ecs_desired(R, &cluster, "api").await.0, 1);
    d.ok(&format!("START_ECS:{cluster}:api:{R}:5")).await;
    assert_eq!(ecs_desired(R, &cluster, "api").await.0, 5);
    d.ok("SLEEP_NOW").await;
    d.ok(&format!("START_ECS:{cluster}:api:{R}")).await;
    assert_eq!(
        ecs_desired(R, &cluster, "api").await.0,
        5,
        "the recorded count"
    );
    let asleep = d.ok("STATUS").await["asleep"].clone();
    assert!(
        asleep
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["resource"]["type"] != "ECS"),
        "{asleep}"
    );
    d.ok("WAKE_NOW").await;

    // EKS scaling keeps min <= desired <= max.
    d.ok(&format!("SCALE_EKS:{cluster}:ng:{R}:3")).await;
    assert_eq!(eks_scaling(R, &cluster, "ng").await.0, (1, 3, 4));
    d.ok(&format!("SCALE_EKS:{cluster}:ng:{R}:0")).await;
    assert_eq!(eks_scaling(R, &cluster, "ng").await.0, (0, 0, 4));
    d.ok(&format!("START_EKS:{cluster}:ng:{R}")).await;
    assert_eq!(eks_scaling(R, &cluster, "ng").await.0, (0, 1, 4));
    d.ok(&format!("STOP_EKS:{cluster}:ng:{R}")).await;
    assert_eq!(eks_scaling(R, &cluster, "ng").await.0, (0, 0, 4));

    // Pause, resume, activity.
    let paused = d.ok("PAUSE:60").await;
    assert_eq!(paused["state"], "paused");
    assert!(paused["paused_for_seconds"].as_f64().unwrap() > 3590.0);
    assert_eq!(d.ok("RESUME").await["state"], "active");
    assert_eq!(d.ok("USER_ACTIVITY").await["state"], "active");

    // Unregister.
    d.ok(&format!("UNREGISTER_EC2:{id}:{R}")).await;
    d.ok(&format!("UNREGISTER_ECS:{cluster}:api:{R}")).await;
    d.ok(&format!("UNREGISTER_EKS:{cluster}:ng:{R}")).await;
    assert!(d
        .err(&format!("UNREGISTER_EC2:{id}:{R}"))
        .await
        .contains("not registered"));
    assert_eq!(
        d.ok("LIST_REGISTERED_SERVICES").await["services"],
        json!([])
    );

    // AWS errors keep their code; a missing resource is named.
    let e = d.err(&format!("START_EC2:i-0000000000000dead:{R}")).await;
    assert!(
        e.contains("i-0000000000000dead") && e.contains("NotFound"),
        "{e}"
    );
    let e = d.err(&format!("STOP_ECS:{cluster}:ghost:{R}")).await;
    assert!(e.contains("not found"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn json_envelopes_get_envelope_replies() {
    let cluster = unique("udpj");
    ecs_service(R, &cluster, "web", 2).await;
    let (_cfg, d) = daemon(json!({}), "");
    let send = |t: &str, content: Value| {
        json!({"id": format!("req-{t}"), "type": t, "timestamp": "2026-11-21T00:00:00Z", "source": "test", "content": content}).to_string()
    };
    for t in ["AWS_EC2_LIST", "AWS_ECS_LIST", "AWS_EKS_LIST"] {
        let r = d.send(&send(t, json!({"region": R}))).await;
        assert_eq!(r["type"], t, "{r}");
        assert_eq!(r["reply_to"], format!("req-{t}"));
        assert_eq!(r["source"], "cloudnap");
        assert!(r["id"].is_string() && r["id"] != r["reply_to"]);
        assert!(r["timestamp"].as_str().unwrap().starts_with("20"));
        let key = if t == "AWS_EC2_LIST" {
            "instances"
        } else {
            "clusters"
        };
        assert!(r["content"][key].is_array(), "{r}");
    }
    let svc =
        json!({"service_type": "ECS", "cluster_name": cluster, "service_name": "web", "region": R});
    let mut stop = svc.clone();
    stop["action"] = json!("STOP");
    let r = d.send(&send("AWS_SERVICE_STATUS", stop)).await;
    assert_eq!(r["type"], "AWS_SERVICE_STATUS", "{r}");
    assert_eq!(ecs_desired(R, &cluster, "web").await.0, 0);
    let mut start = svc.clone();
    start["action"] = json!("START");
    start["desired_size"] = json!(4);
    d.send(&send("AWS_SERVICE_STATUS", start)).await;
    assert_eq!(ecs_desired(R, &cluster, "web").await.0, 4);

    let r = d.send(&send("REGISTER_SERVICE", svc.clone())).await;
    assert_eq!(r["type"], "REGISTER_SERVICE", "{r}");
    let r = d.send(&send("LIST_REGISTERED_SERVICES", json!({}))).await;
    assert_eq!(
        r["content"]["services"][0]["resource"]["service_name"],
        "web"
    );
    let r = d.send(&send("REGISTER_SERVICE", svc.clone())).await;
    assert_eq!(r["type"], "ERROR");
    assert!(r["content"]["error"]
        .as_str()
        .unwrap()
        .contains("already registered"));
    let r = d.send(&send("UNREGISTER_SERVICE", svc)).await;
    assert_eq!(r["type"], "UNREGISTER_SERVICE");

    assert_eq!(
        d.send(&send("STATUS", json!({}))).await["content"]["state"],
        "active"
    );
    assert_eq!(
        d.send(&send("PAUSE", json!({"minutes": 5}))).await["content"]["state"],
        "paused"
    );
    assert_eq!(
        d.send(&send("USER_ACTIVITY", json!({}))).await["content"]["state"],
        "paused"
    );
    assert_eq!(
        d.send(&send("RESUME", json!({}))).await["content"]["state"],
        "active"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_an_error_reply_and_the_server_keeps_answering() {
    let (_cfg, d) = daemon(json!({}), "");
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut buf = vec![0u8; 65_536];
    let mut ask = |bytes: &[u8]| -> Value {
        sock.send_to(bytes, d.addr).unwrap();
        let (n, _) = sock
            .recv_from(&mut buf)
            .expect("every datagram gets a reply");
        serde_json::from_slice(&buf[..n]).unwrap()
    };
    let big = vec![b'A'; 65_000];
    let cases: Vec<(&[u8], &str)> = vec![
        (b"", "empty command"),
        (b"\x00\x01\x02garbage\xff", "not valid UTF-8"),
        (b"\xc3\x28", "not valid UTF-8"),
        (&big, "unknown command"),
        (b"START_EC2:i-1", "expected START_EC2:instance_id:region"),
        (
            b"SCALE_EKS:a:b:us-east-1",
            "expected SCALE_EKS:cluster:nodegroup:region:count",
        ),
        (
            b"REGISTER_ECS:c",
            "expected REGISTER_ECS:cluster:service:region",
        ),
        (b"LIST_EC2:nowhere", "bad region `nowhere`"),
        (b"PAUSE:soon", "must be a number"),
        (b"NOPE", "unknown command `NOPE`"),
        (b"AUTH:1:n", "wrong number of fields"),
        (b"AUTH:x:n:00:STATUS", "whole unix seconds"),
        (b"AUTH:1:n:zz:STATUS", "64 hex digits"),
        (b"AUTH:1:a b:00:STATUS", "the nonce must be"),
        (
            b"AUTH:1:n:0000000000000000000000000000000000000000000000000000000000000000:STATUS",
            "signed commands need udp_server.token",
        ),
        (b"TOKEN:x", "TOKEN:<token>:COMMAND"),
    ];
    for (bytes, needle) in cases {
        let r = ask(bytes);
        assert_eq!(r["ok"], false, "{r}");
        assert!(
            r["error"].as_str().unwrap().contains(needle),
            "{needle}: {r}"
        );
    }
    let json_cases: Vec<(&str, &str)> = vec![
        (r#"{"id":"1","type":"FROB"}"#, "unknown type `FROB`"),
        (
            r#"{"id":"2","type":"AWS_EC2_LIST","content":{"region":7}}"#,
            "content.region must be a string",
        ),
        (
            r#"{"id":"3","type":"PAUSE","content":{"minutes":"x"}}"#,
            "must be a number",
        ),
        (
            r#"{"id":"4","type":"AWS_SERVICE_STATUS","content":{"action":"START","service_type":"EC2","region":"us-east-1"}}"#,
            "content.instance_id is required",
        ),
        (r#"{"id":"5","type":["STATUS"]}"#, "`type` must be a string"),
        (r#"{"id":"6","type":"STATUS""#, "invalid JSON at position"),
        (
            r#"{"auth":{"ts":1},"signed":7}"#,
            "`signed` must be a string",
        ),
        (
            r#"{"auth":{"ts":1,"nonce":"n","mac":"00"},"signed":"STATUS"}"#,
            "64 hex digits",
        ),
    ];
    for (text, needle) in json_cases {
        let r = ask(text.as_bytes());
        assert_eq!(r["type"], "ERROR", "{r}");
        assert!(
            r["content"]["error"].as_str().unwrap().contains(needle),
            "{needle}: {r}"
        );
    }
    assert_eq!(ask(br#"{"id":"5","type":"FROB"}"#)["reply_to"], "5");
    assert_eq!(ask(b"STATUS")["ok"], true, "still answering");
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_datagrams_and_floods_are_answered_without_disturbing_the_server() {
    let (_cfg, d) = daemon(
        json!({"udp_server": {"buffer_size": 1024, "rate_limit_per_second": 2}}),
        "",
    );
    let e = d.err(&"x".repeat(2000)).await;
    assert!(e.contains("datagram too large: 2000 bytes"), "{e}");
    let mut limited = 0;
    for _ in 0..6 {
        let r = d.send(&format!("LIST_EC2:{R}")).await;
        if r["ok"] == false && r["error"].as_str().unwrap().contains("rate limited") {
            limited += 1;
        }
    }
    assert!(limited >= 3, "{limited}");
    // STATUS is not an AWS call and is never limited.
    for _ in 0..50 {
        assert_eq!(d.send("STATUS").await["ok"], true);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_concurrent_registrations_are_all_kept() {
    let (cfg, d) = daemon(json!({}), "# my services\nec2_instances: []\n");
    let addr = d.addr;
    let mut tasks = Vec::new();
    for s in 0..8u32 {
        tasks.push(tokio::task::spawn_blocking(move || {
            let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            sock.set_read_timeout(Some(std::time::Duration::from_secs(60)))
                .unwrap();
            for i in 0..125u32 {
                let cmd = format!("REGISTER_EC2:i-{:08x}:us-east-1:box {s}/{i}", s * 1000 + i);
                sock.send_to(cmd.as_bytes(), addr).unwrap();
            }
            let mut buf = vec![0u8; 65_536];
            let mut ok = 0;
            for _ in 0..125 {
                let (n, _) = sock.recv_from(&mut buf).expect("a reply for every command");
                let r: Value = serde_json::from_slice(&buf[..n]).unwrap();
                assert_eq!(r["ok"], true, "{r}");
                ok += 1;
            }
            ok
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert_eq!(total, 1000);
    let text = std::fs::read_to_string(cfg.file("services.yaml")).unwrap();
    assert!(text.starts_with("# my services\n"), "comments kept");
    let parsed: Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(parsed["ec2_instances"].as_array().unwrap().len(), 1000);

    // The listing is larger than one datagram: `cloudnap send` reassembles the parts.
    let out = cfg
        .command(&[
            "send",
            "--to",
            &addr.to_string(),
            "LIST_REGISTERED_SERVICES",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reply: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply["result"]["services"].as_array().unwrap().len(), 1000);
    assert_eq!(d.send("STATUS").await["ok"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn hand_edits_are_seen_by_the_next_command() {
    let (cfg, d) = daemon(json!({}), "ec2_instances: []\n");
    std::fs::write(
        cfg.file("services.yaml"),
        "ec2_instances:\n  - instance_id: i-0000000000000abcd\n    region: us-east-1 # by hand\n",
    )
    .unwrap();
    d.ok("REGISTER_EC2:i-0000000000000beef:us-east-1").await;
    let text = std::fs::read_to_string(cfg.file("services.yaml")).unwrap();
    assert!(
        text.contains("i-0000000000000abcd") && text.contains("# by hand"),
        "{text}"
    );
    assert_eq!(
        d.ok("LIST_REGISTERED_SERVICES").await["services"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn a_public_bind_without_a_token_refuses_to_start() {
    let cfg = ConfigDir::with_settings(
        &daemon_settings(&[R], json!({"udp_server": {"ip": "0.0.0.0"}})),
        "",
    );
    let out = cfg.run(&["run"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("udp_server.token must be set"));
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_token_every_command_must_carry_it() {
    let (cfg, d) = daemon(json!({"udp_server": {"token": "s3cr3t-t0ken"}}), "");
    let r = d.send("STATUS").await;
    assert_eq!(r["ok"], false);
    assert!(
        r["error"].as_str().unwrap().contains("missing token"),
        "{r}"
    );
    assert_eq!(
        d.send("TOKEN:wrong-token:STATUS").await["error"],
        "wrong token"
    );
    assert_eq!(d.send("TOKEN:s3cr3t-t0ken:STATUS").await["ok"], true);
    assert_eq!(
        d.send(r#"{"id":"1","type":"STATUS"}"#).await["type"],
        "ERROR"
    );
    assert_eq!(
        d.send(r#"{"id":"1","type":"STATUS","token":"s3cr3t-t0ken"}"#)
            .await["type"],
        "STATUS"
    );
    d.logged("missing token").await;
    // `cloudnap send` signs with the token from settings.json.
    let out = cfg
        .command(&["send", "--to", &d.addr.to_string(), "STATUS"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn send_exits_by_reply() {
    let (cfg, d) = daemon(json!({}), "");
    let to = d.addr.to_string();
    let out = cfg
        .command(&["send", "--to", &to, "STATUS"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let reply: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply["result"]["state"], "active");
    let out = cfg
        .command(&["send", "--to", &to, "FROB"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("unknown command"));
    drop(d);
    let out = cfg
        .command(&["send", "--timeout", "0.5", "--to", &to, "STATUS"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no reply"));
}

#[tokio::test(flavor = "multi_thread")]
async fn replies_and_state_changes_are_echoed_to_the_events_port() {
    let events = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    events
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let port = events.local_addr().unwrap().port();
    let (_cfg, d) = daemon(json!({"udp_server": {"events_port": port}}), "");
    d.ok("PAUSE:5").await;
    let mut buf = vec![0u8; 65_536];
    let mut seen = Vec::new();
    let reply = |v: &Value| v["command"] == "PAUSE" && v["ok"] == true;
    let paused = |v: &Value| v["type"] == "EVENT" && v["content"]["event"] == "paused";
    // Other events (the deadline being off, say) may come too.
    while !(seen.iter().any(reply) && seen.iter().any(paused)) {
        let (n, _) = events.recv_from(&mut buf).expect("echoed");
        seen.push(serde_json::from_slice::<Value>(&buf[..n]).unwrap());
        assert!(seen.len() <= 5, "{seen:?}");
    }
}
