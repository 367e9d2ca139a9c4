//! Amazon WorkSpaces through the real binary against moto, the daemon's
//! calls going over cloudnap's own signed JSON transport: registered by UDP
//! text and JSON, found by tag, listed, stopped (the protected one left up,
//! an `ALWAYS_ON` one refused by name, its stop never sent), started
//! exactly after a `kill -9`, stopped and started by hand; 30 WorkSpaces
//! stopped with 2 StopWorkspaces calls (25 a call) and started with 2
//! StartWorkspaces; the AWS-side deadline's schedule fired as the scheduler
//! would; and `aws-setup` naming the sleep call.
//!
//! moto 5 has WorkSpaces' CreateWorkspaces, DescribeWorkspaces,
//! RegisterWorkspaceDirectory (on a Directory Service directory, made here
//! in a VPC with two subnets), CreateTags, DescribeTags, and tag discovery
//! (its tagging API's GetResources serves `workspaces:workspace`): those
//! stay moto's. It lacks StopWorkspaces, StartWorkspaces and DeleteTags:
//! the forwarder in front of moto plays them over it with the state of
//! [`Played`] (`Forwarder::overlay`), written into moto's answers
//! (`Forwarder::rewrite`): a WorkSpace's state into DescribeWorkspaces, a
//! deleted tag hidden from DescribeTags until it is created again (and,
//! where moto's CreateTags adds a key twice, the last value shown, as AWS
//! replaces it).

mod common;
#[path = "common/forwarder.rs"]
mod forwarder;
#[path = "common/scheduler.rs"]
#[allow(dead_code)]
mod scheduler;

use cloudnap::cloud::aws::signed::{Protocol, Service, Signed, WORKSPACES};
use common::*;
use forwarder::Forwarder;
use scheduler::*;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const R: &str = "af-south-1";
const ACCOUNT: &str = "123456789012";
const BUNDLE: &str = "wsb-0123abcde";

/// AWS Directory Service (for the directory WorkSpaces need).
const DS: Service = Service {
    signing_name: "ds",
    host_prefix: "ds",
    protocol: Protocol::Json {
        target_prefix: "DirectoryService_20150416",
    },
};

/// What the forwarder plays over moto for the operations it lacks.
#[derive(Default)]
struct Played {
    /// Each WorkSpace's state, once StopWorkspaces or StartWorkspaces set it.
    states: HashMap<String, String>,
    /// Each WorkSpace's running mode, as moto's answers told it.
    modes: HashMap<String, String>,
    /// (WorkSpace, tag key) removed by DeleteTags.
    deleted: HashSet<(String, String)>,
    /// The ids of each StopWorkspaces call, in order.
    stops: Vec<Vec<String>>,
    /// How many ids each DescribeWorkspaces by id named.
    described: Vec<usize>,
}

/// The WorkspaceId of each item of `list`.
fn ids_of(list: &Value) -> Vec<String> {
    (list.as_array().into_iter().flatten())
        .map(|r| r["WorkspaceId"].as_str().unwrap_or_default().to_string())
        .collect()
}

impl Played {
    /// StopWorkspaces or StartWorkspaces (`running`) as AWS answers them:
    /// an `ALWAYS_ON` WorkSpace, or one not in the state the change starts
    /// from, is a `FailedRequests` item; the others change state.
    fn change(&mut self, request: &Value, running: bool) -> Value {
        let (key, from, to) = if running {
            ("StartWorkspaceRequests", "STOPPED", "AVAILABLE")
        } else {
            ("StopWorkspaceRequests", "AVAILABLE", "STOPPED")
        };
        let ids = ids_of(&request[key]);
        if !running {
            self.stops.push(ids.clone());
        }
        let mut failed = Vec::new();
        for id in ids {
            let state = self.states.get(&id).map_or("AVAILABLE", String::as_str);
            let refusal = match self.modes.get(&id).map(String::as_str) {
                None => Some(("ResourceNotFound.Workspace", "not found".to_string())),
                Some("ALWAYS_ON") => Some((
                    "OperationNotSupportedException",
                    "The WorkSpace's running mode is AlwaysOn.".to_string(),
                )),
                _ if state != from => {
                    Some(("InvalidResourceState", format!("The WorkSpace is {state}.")))
                }
                _ => None,
            };
            match refusal {
                Some((code, why)) => {
                    failed.push(json!({"WorkspaceId": id, "ErrorCode": code, "ErrorMessage": why}))
                }
                None => {
                    self.states.insert(id, to.to_string());
                }
            }
        }
        json!({"FailedRequests": failed})
    }

    /// Moto's CreateWorkspaces or DescribeWorkspaces answer with the states
    /// played, the running modes learnt.
    fn seen(&mut self, request: &Value, mut answer: Value) -> Value {
        if let Some(ids) = request["WorkspaceIds"].as_array() {
            self.described.push(ids.len());
        }
        for list in ["Workspaces", "PendingRequests"] {
            let Some(list) = answer[list].as_array_mut() else {
                continue;
            };
            for w in list {
                self.learn(w);
            }
        }
        answer
    }

    /// Learns `w`'s running mode and writes the state played into it.
    fn learn(&mut self, w: &mut Value) {
        let id = w["WorkspaceId"].as_str().unwrap_or_default().to_string();
        let mode = w["WorkspaceProperties"]["RunningMode"].as_str();
        self.modes.insert(id.clone(), mode.unwrap_or("").into());
        if let Some(state) = self.states.get(&id) {
            w["State"] = state.as_str().into();
        }
    }

    /// Moto's DescribeTags answer without the deleted keys, each key once
    /// (its last value).
    fn tags(&self, request: &Value, mut answer: Value) -> Value {
        let id = request["ResourceId"].as_str().unwrap_or_default();
        let mut kept: Vec<Value> = Vec::new();
        for tag in answer["TagList"].as_array().cloned().unwrap_or_default() {
            let key = tag["Key"].as_str().unwrap_or_default().to_string();
            if !self.deleted.contains(&(id.to_string(), key)) {
                kept.retain(|t| t["Key"] != tag["Key"]);
                kept.push(tag);
            }
        }
        answer["TagList"] = kept.into();
        answer
    }

    /// A CreateTags (`deleted` false: the keys show again) or DeleteTags.
    fn tag_keys(&mut self, request: &Value, keys: &[&str], deleted: bool) {
        let id = request["ResourceId"].as_str().unwrap_or_default();
        for key in keys {
            let pair = (id.to_string(), key.to_string());
            if deleted {
                self.deleted.insert(pair);
            } else {
                self.deleted.remove(&pair);
            }
        }
    }

    /// Plays what moto lacks over it through `fwd`.
    fn over(fwd: &Forwarder) -> Arc<Mutex<Played>> {
        let played = Arc::new(Mutex::new(Played::default()));
        let p = played.clone();
        fwd.overlay("StopWorkspaces", move |r| {
            p.lock().unwrap().change(r, false)
        });
        let p = played.clone();
        fwd.overlay("StartWorkspaces", move |r| {
            p.lock().unwrap().change(r, true)
        });
        for op in ["CreateWorkspaces", "DescribeWorkspaces"] {
            let p = played.clone();
            fwd.rewrite(op, move |r, a| p.lock().unwrap().seen(r, a));
        }
        let p = played.clone();
        fwd.rewrite("DescribeTags", move |r, a| p.lock().unwrap().tags(r, a));
        let p = played.clone();
        fwd.overlay("DeleteTags", move |r| {
            let keys: Vec<&str> = (r["TagKeys"].as_array().into_iter().flatten())
                .filter_map(Value::as_str)
                .collect();
            p.lock().unwrap().tag_keys(r, &keys, true);
            json!({})
        });
        let p = played.clone();
        fwd.rewrite("CreateTags", move |r, a| {
            let keys: Vec<&str> = (r["Tags"].as_array().into_iter().flatten())
                .filter_map(|t| t["Key"].as_str())
                .collect();
            p.lock().unwrap().tag_keys(r, &keys, false);
            a
        });
        played
    }
}

/// A JSON call of `service` through `fwd`, signed as the SDK (and the
/// scheduler's universal target) would sign it.
async fn call(fwd: &Forwarder, service: &Service, op: &str, input: Value) -> Value {
    let conf = sdk(R).await.to_builder().endpoint_url(&fwd.url).build();
    Signed::new(&conf)
        .json(service, op, &input)
        .await
        .unwrap_or_else(|e| panic!("{op}: {e}"))
}

/// A Directory Service directory in a new VPC (two subnets in two zones),
/// registered with WorkSpaces: its id.
async fn directory(fwd: &Forwarder) -> String {
    let ec2 = aws_sdk_ec2::Client::new(&sdk(R).await);
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.9.0.0/16")
        .send()
        .await
        .unwrap();
    let vpc = vpc.vpc().unwrap().vpc_id().unwrap().to_string();
    let mut subnets = Vec::new();
    for (i, zone) in ["a", "b"].iter().enumerate() {
        let subnet = (ec2.create_subnet().vpc_id(&vpc))
            .cidr_block(format!("10.9.{i}.0/24"))
            .availability_zone(format!("{R}{zone}"))
            .send()
            .await
            .unwrap();
        subnets.push(subnet.subnet().unwrap().subnet_id().unwrap().to_string());
    }
    let made = call(
        fwd,
        &DS,
        "CreateDirectory",
        json!({"Name": "corp.example.com", "Password": "Passw0rd!", "Size": "Small",
               "VpcSettings": {"VpcId": vpc, "SubnetIds": subnets}}),
    )
    .await;
    let id = made["DirectoryId"].as_str().unwrap().to_string();
    let input = json!({"DirectoryId": id});
    call(fwd, &WORKSPACES, "RegisterWorkspaceDirectory", input).await;
    id
}

/// New `STANDARD` WorkSpaces in directory `dir`, one per (running mode,
/// tags), created 25 a call: their ids.
async fn workspaces(fwd: &Forwarder, dir: &str, each: &[(&str, &[(&str, &str)])]) -> Vec<String> {
    let mut ids = Vec::new();
    for some in each.chunks(25) {
        let requests: Vec<Value> = (some.iter())
            .map(|(mode, tags)| {
                let tags: Vec<Value> = (tags.iter())
                    .map(|(k, v)| json!({"Key": k, "Value": v}))
                    .collect();
                json!({"DirectoryId": dir, "UserName": unique("dev"), "BundleId": BUNDLE,
                       "WorkspaceProperties": {"RunningMode": mode, "ComputeTypeName": "STANDARD"},
                       "Tags": tags})
            })
            .collect();
        let input = json!({"Workspaces": requests});
        let made = call(fwd, &WORKSPACES, "CreateWorkspaces", input).await;
        assert_eq!(made["FailedRequests"], json!([]), "{made}");
        ids.extend(ids_of(&made["PendingRequests"]));
    }
    ids
}

/// A WorkSpace's state and whether it has the sleep tag, as AWS (moto and
/// what the forwarder plays) tells them.
async fn state(fwd: &Forwarder, id: &str) -> (String, bool) {
    let input = json!({"WorkspaceIds": [id]});
    let found = call(fwd, &WORKSPACES, "DescribeWorkspaces", input).await;
    let tags = call(fwd, &WORKSPACES, "DescribeTags", json!({"ResourceId": id})).await;
    let sleeping = (tags["TagList"].as_array().unwrap().iter())
        .any(|t| t["Key"] == "cloudnap:sleeping" && t["Value"] == "running");
    let state = found["Workspaces"][0]["State"]
        .as_str()
        .unwrap()
        .to_string();
    (state, sleeping)
}

/// The row of a report about WorkSpace `id`.
fn row<'a>(rows: &'a Value, id: &str) -> &'a Value {
    report_row(rows, "workspace_id", id)
}

/// Settings pointing the daemon at `fwd`.
fn settings(fwd: &Forwarder, extra: Value) -> String {
    let mut extra = extra;
    extra["aws"]["endpoint_url"] = fwd.url.clone().into();
    daemon_settings(&[R], detectors_off(extra))
}

/// services.yaml registering `ids`.
fn services(ids: &[String]) -> String {
    let entries: String = (ids.iter())
        .map(|id| format!("  - workspace_id: {id}\n    region: {R}\n"))
        .collect();
    format!("workspaces:\n{entries}")
}

/// Registers `ws` by text and `kept` by JSON, `always` by text, waits
/// until `tagged` is found by its tag, and checks `ws`'s listing.
async fn register_and_list(d: &Daemon, cfg: &ConfigDir, ids: [&str; 4]) {
    let [ws, kept, always, tagged] = ids;
    let field = "workspace_id";
    register_both(d, cfg, "WORKSPACE", field, (ws, kept), R, "workspaces").await;
    d.ok(&format!("REGISTER_WORKSPACE:{always}:{R}")).await;
    found_by_tag(d, field, tagged).await;
    let found = listed_row(d, "WORKSPACE", R, "workspaces", field, ws).await;
    let user = found["user_name"].clone();
    assert_eq!(
        found,
        json!({"workspace_id": ws, "region": R, "state": "AVAILABLE",
               "running_mode": "AUTO_STOP", "compute_type": "STANDARD",
               "bundle_id": BUNDLE, "user_name": user})
    );
    assert!(user.as_str().unwrap().starts_with("dev-"), "{found}");
}

#[tokio::test(flavor = "multi_thread")]
async fn workspaces_sleep_and_wake_exactly_and_an_always_on_one_is_refused() {
    let fwd = Forwarder::start(&moto_url());
    let played = Played::over(&fwd);
    let dir = directory(&fwd).await;
    let made = workspaces(
        &fwd,
        &dir,
        &[
            ("AUTO_STOP", &[]),
            ("AUTO_STOP", &[("cloudnap:protect", "true")]),
            ("ALWAYS_ON", &[]),
            ("MANUAL", &[("cloudnap:managed", "true")]),
        ],
    )
    .await;
    let [ws, kept, always, tagged] = [0, 1, 2, 3].map(|i| made[i].as_str());
    let cfg = ConfigDir::with_settings(&settings(&fwd, json!({})), "");
    let mut d = Daemon::start(&cfg);
    register_and_list(&d, &cfg, [ws, kept, always, tagged]).await;

    // Asleep: stopped and tagged; the protected one left up, the ALWAYS_ON
    // one refused by name and its stop never sent.
    let slept = d.ok("SLEEP_NOW").await;
    assert_eq!(row(&slept, ws)["action"], "stopped", "{slept}");
    assert_eq!(row(&slept, tagged)["action"], "stopped", "{slept}");
    assert_eq!(row(&slept, kept)["action"], "protected", "{slept}");
    assert_eq!(row(&slept, ws)["resource"]["type"], "WORKSPACE");
    let refused = row(&slept, always);
    assert_eq!(refused["action"], "failed", "{slept}");
    let why = refused["error"].as_str().unwrap_or_default();
    assert!(
        why.contains(&format!("WorkSpace {always} cannot be stopped")) && why.contains("ALWAYS_ON"),
        "{refused}"
    );
    let stops = played.lock().unwrap().stops.concat();
    assert!(!stops.iter().any(|id| id == always), "{stops:?}");
    for id in [ws, tagged] {
        assert_eq!(state(&fwd, id).await, ("STOPPED".into(), true), "{id}");
    }
    for id in [kept, always] {
        assert_eq!(state(&fwd, id).await, ("AVAILABLE".into(), false), "{id}");
    }

    // Killed while asleep; started again, the user's return starts exactly
    // what it stopped.
    killed_then_back(&mut d, &cfg).await;
    for id in [ws, tagged, kept, always] {
        assert_eq!(state(&fwd, id).await, ("AVAILABLE".into(), false), "{id}");
    }

    // By hand, in text and in JSON; an ALWAYS_ON one refused by name.
    d.ok(&format!("STOP_WORKSPACE:{ws}:{R}")).await;
    assert_eq!(state(&fwd, ws).await.0, "STOPPED");
    let reply = d
        .send(
            &json!({"type": "AWS_SERVICE_STATUS", "content": {
                "action": "START", "service_type": "WORKSPACE",
                "workspace_id": ws, "region": R
            }})
            .to_string(),
        )
        .await;
    assert_eq!(reply["content"]["capacity"]["running"], true, "{reply}");
    assert_eq!(state(&fwd, ws).await.0, "AVAILABLE");
    let err = d.err(&format!("STOP_WORKSPACE:{always}:{R}")).await;
    assert!(
        err.contains(&format!("WorkSpace {always} cannot be stopped")),
        "{err}"
    );
    assert_eq!(state(&fwd, always).await.0, "AVAILABLE");
}

#[tokio::test(flavor = "multi_thread")]
async fn thirty_workspaces_are_stopped_and_started_25_a_call() {
    let fwd = Forwarder::start(&moto_url());
    let played = Played::over(&fwd);
    let dir = directory(&fwd).await;
    let auto: &[(&str, &str)] = &[];
    let ids = workspaces(&fwd, &dir, &[("AUTO_STOP", auto); 30]).await;
    let extra = json!({"aws": {"tag_discovery": false}});
    let cfg = ConfigDir::with_settings(&settings(&fwd, extra), &services(&ids));
    let d = Daemon::start(&cfg);

    let slept = d.sleep_now().await;
    assert_eq!(slept.as_array().unwrap().len(), 30, "{slept}");
    let mut sizes: Vec<usize> = (played.lock().unwrap().stops.iter())
        .map(Vec::len)
        .collect();
    sizes.sort();
    assert_eq!(sizes, [5, 25]);
    assert_eq!(fwd.count("StopWorkspaces"), 2);
    let described = played.lock().unwrap().described.clone();
    assert!(
        described.iter().all(|n| *n <= 25) && described.contains(&25),
        "{described:?}"
    );
    for id in &ids {
        assert_eq!(state(&fwd, id).await, ("STOPPED".into(), true), "{id}");
    }

    let woken = d.ok("WAKE_NOW").await;
    assert!(
        (woken.as_array().unwrap().iter()).all(|r| r["action"] == "restored"),
        "{woken}"
    );
    assert_eq!(fwd.count("StartWorkspaces"), 2);
    for id in &ids {
        assert_eq!(state(&fwd, id).await, ("AVAILABLE".into(), false), "{id}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_deadline_stops_a_workspace_and_aws_setup_names_the_call() {
    let fwd = Forwarder::start(&moto_url());
    let _played = Played::over(&fwd);
    let dir = directory(&fwd).await;
    let ws = workspaces(&fwd, &dir, &[("AUTO_STOP", &[])])
        .await
        .remove(0);
    let settings = timeout_settings(
        R,
        Duration::from_secs(20),
        json!({"aws": {"deadline_role_arn": ROLE, "tag_discovery": false,
                       "endpoint_url": fwd.url}}),
    );
    let cfg = ConfigDir::with_settings(&settings, &services(std::slice::from_ref(&ws)));

    let out = cfg.run(&["aws-setup", "--dry-run"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("workspaces:StopWorkspaces"), "{text}");
    let arn = format!("arn:aws:workspaces:{R}:{ACCOUNT}:workspace/{ws}");
    assert!(text.contains(&arn), "{text}");

    // Armed at start, the capacity written ahead into the sleep tag; killed;
    // the schedule fires as the scheduler would.
    let mut d = Daemon::start(&cfg);
    let armed = schedule_of(R, &ws, Duration::from_secs(30), |_| true).await;
    assert_eq!(
        armed.arn,
        "arn:aws:scheduler:::aws-sdk:workspaces:stopWorkspaces"
    );
    let input = json!({"StopWorkspaceRequests": [{"WorkspaceId": ws}]});
    assert_eq!(armed.input, input);
    assert_eq!(armed.role, ROLE);
    assert_eq!(state(&fwd, &ws).await, ("AVAILABLE".into(), true));
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    let action = armed.arn.rsplit(':').next().unwrap();
    let op = format!("{}{}", action[..1].to_uppercase(), &action[1..]);
    let answer = call(&fwd, &WORKSPACES, &op, armed.input.clone()).await;
    assert_eq!(answer, json!({"FailedRequests": []}));
    assert_eq!(state(&fwd, &ws).await, ("STOPPED".into(), true));

    // `cloudnap wake` restores exactly what ran, from the tag.
    let out = cfg.run(&["wake"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(state(&fwd, &ws).await, ("AVAILABLE".into(), false));
}
