//! Auto Scaling groups through the real binary and the real SDK against moto:
//! a group sleeps at min 0 / desired 0 (max kept) and wakes exactly; an
//! instance of a group is never stopped alone. An ECS service under
//! Application Auto Scaling sleeps with its scalable target held down and
//! wakes with it exactly as it was, also after a sleep killed half-way.

mod common;
#[path = "common/forwarder.rs"]
mod forwarder;

use aws_sdk_applicationautoscaling::types::{ScalableDimension, ServiceNamespace, SuspendedState};
use aws_sdk_autoscaling::types::LaunchTemplateSpecification;
use common::*;
use forwarder::Forwarder;

const R: &str = "ap-southeast-2";

/// A group at `min/desired/max` launched from a new launch template.
async fn group(name: &str, (min, desired, max): (i32, i32, i32)) {
    let conf = sdk(R).await;
    let template = aws_sdk_ec2::Client::new(&conf)
        .create_launch_template()
        .launch_template_name(name)
        .launch_template_data(
            aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
                .image_id("ami-12c6146b")
                .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let template_id = template
        .launch_template()
        .unwrap()
        .launch_template_id()
        .unwrap();
    aws_sdk_autoscaling::Client::new(&conf)
        .create_auto_scaling_group()
        .auto_scaling_group_name(name)
        .launch_template(
            LaunchTemplateSpecification::builder()
                .launch_template_id(template_id)
                .build(),
        )
        .min_size(min)
        .desired_capacity(desired)
        .max_size(max)
        .availability_zones(format!("{R}a"))
        .send()
        .await
        .unwrap();
}

/// A group's min/desired/max, tags and instance ids.
async fn described(name: &str) -> ((i32, i32, i32), Vec<(String, String)>, Vec<String>) {
    let out = aws_sdk_autoscaling::Client::new(&sdk(R).await)
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(name)
        .send()
        .await
        .unwrap();
    let g = &out.auto_scaling_groups()[0];
    let tags = g
        .tags()
        .iter()
        .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
        .collect();
    let instances = g
        .instances()
        .iter()
        .map(|i| i.instance_id().unwrap().to_string())
        .collect();
    (
        (
            g.min_size().unwrap(),
            g.desired_capacity().unwrap(),
            g.max_size().unwrap(),
        ),
        tags,
        instances,
    )
}

/// The `--json` report rows of `cloudnap CMD` and its exit code.
fn report(cfg: &ConfigDir, cmd: &str) -> (Option<i32>, Vec<serde_json::Value>) {
    let out = cfg.run(&[cmd, "--json"]);
    (
        out.status.code(),
        serde_json::from_slice(&out.stdout).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_group_sleeps_at_zero_keeping_max_and_wakes_exactly() {
    let name = unique("asg");
    group(&name, (1, 2, 3)).await;
    let cfg = ConfigDir::new(
        &[R],
        &format!("autoscaling_groups:\n  - group_name: {name}\n    region: {R}\n    description: web tier\n"),
    );

    let (code, rows) = report(&cfg, "sleep");
    assert_eq!(code, Some(0), "{rows:?}");
    assert_eq!(rows[0]["action"], "stopped", "{rows:?}");
    assert_eq!(rows[0]["resource"]["type"], "ASG");
    assert_eq!(rows[0]["resource"]["group_name"], name.as_str());
    let (scaling, tags, _) = described(&name).await;
    assert_eq!(scaling, (0, 0, 3));
    assert!(
        tags.contains(&("cloudnap:sleeping".into(), "min=1 desired=2 max=3".into())),
        "{tags:?}"
    );
    let state = std::fs::read_to_string(cfg.file("state.json")).unwrap();
    assert!(
        state.contains(
            r#""saved": {
        "type": "ASG",
        "min": 1,
        "desired": 2,
        "max": 3
      }"#
        ),
        "{state}"
    );

    let (code, rows) = report(&cfg, "wake");
    assert_eq!(code, Some(0), "{rows:?}");
    assert_eq!(rows[0]["action"], "restored", "{rows:?}");
    let (scaling, tags, _) = described(&name).await;
    assert_eq!(scaling, (1, 2, 3));
    assert!(
        tags.iter().all(|(k, _)| k != "cloudnap:sleeping"),
        "{tags:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_of_a_group_is_never_stopped_alone() {
    let name = unique("asg");
    group(&name, (1, 1, 2)).await;
    let (_, _, instances) = described(&name).await;
    let member = instances[0].clone();
    let cfg = ConfigDir::with_settings(
        &daemon_settings(&[R], serde_json::json!({})),
        &format!("ec2_instances:\n  - instance_id: {member}\n    region: {R}\n"),
    );
    let reason = format!("in_autoscaling_group: {name}");

    // `check` warns about it.
    let out = cfg.run(&["check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("warning:") && text.contains(&reason),
        "{text}"
    );

    // Sleep leaves it running and says why.
    let (code, rows) = report(&cfg, "sleep");
    assert_eq!(code, Some(1), "{rows:?}");
    assert_eq!(rows[0]["action"], "failed", "{rows:?}");
    assert_eq!(rows[0]["error"], reason.as_str(), "{rows:?}");
    assert_eq!(ec2_state(R, &member).await.0, "running");
    assert_eq!(described(&name).await.0, (1, 1, 2));

    // Registering it is refused; the group can be listed and registered.
    let d = Daemon::start(&cfg);
    let _ = d.ok(&format!("UNREGISTER_EC2:{member}:{R}")).await;
    let e = d.err(&format!("STOP_EC2:{member}:{R}")).await;
    assert!(e.contains(&reason) && e.contains("stop the group"), "{e}");
    assert_eq!(ec2_state(R, &member).await.0, "running");
    let e = d.err(&format!("REGISTER_EC2:{member}:{R}")).await;
    assert!(
        e.contains(&reason) && e.contains("register the group"),
        "{e}"
    );
    let groups = d.ok(&format!("LIST_ASG:{R}")).await;
    let listed = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group_name"] == name.as_str())
        .unwrap_or_else(|| panic!("{groups}"))
        .clone();
    assert_eq!(listed["desired_size"], 1);
    assert_eq!(listed["instances"], 1);
    d.ok(&format!("REGISTER_ASG:{name}:{R}:web tier")).await;
    let text = std::fs::read_to_string(cfg.file("services.yaml")).unwrap();
    assert!(
        text.contains(&format!("autoscaling_groups:\n  - group_name: {name}\n    region: {R}\n    description: web tier\n")),
        "{text}"
    );
}

/// The scalable target of ECS service `cluster/service`: min, max and
/// suspended (dynamic in, dynamic out, scheduled).
async fn target_of(cluster: &str, service: &str) -> (i32, i32, (bool, bool, bool)) {
    let out = aws_sdk_applicationautoscaling::Client::new(&sdk(R).await)
        .describe_scalable_targets()
        .service_namespace(ServiceNamespace::Ecs)
        .resource_ids(format!("service/{cluster}/{service}"))
        .send()
        .await
        .unwrap();
    let t = &out.scalable_targets()[0];
    let s = t.suspended_state().unwrap();
    (
        t.min_capacity(),
        t.max_capacity(),
        (
            s.dynamic_scaling_in_suspended().unwrap(),
            s.dynamic_scaling_out_suspended().unwrap(),
            s.scheduled_scaling_suspended().unwrap(),
        ),
    )
}

/// An ECS service at desired 3 whose scalable target is 2..6 with only its
/// scheduled scaling suspended; its services.yaml entry.
async fn scaled_service(cluster: &str) -> String {
    ecs_service(R, cluster, "api", 3).await;
    aws_sdk_applicationautoscaling::Client::new(&sdk(R).await)
        .register_scalable_target()
        .service_namespace(ServiceNamespace::Ecs)
        .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
        .resource_id(format!("service/{cluster}/api"))
        .min_capacity(2)
        .max_capacity(6)
        .suspended_state(
            SuspendedState::builder()
                .dynamic_scaling_in_suspended(false)
                .dynamic_scaling_out_suspended(false)
                .scheduled_scaling_suspended(true)
                .build(),
        )
        .send()
        .await
        .unwrap();
    format!("ecs_services:\n  - cluster_name: {cluster}\n    service_name: api\n    region: {R}\n")
}

/// The ECS service's desired count and `cloudnap:sleeping` tag value.
async fn desired_and_tag(cluster: &str) -> (i32, Option<String>) {
    let out = aws_sdk_ecs::Client::new(&sdk(R).await)
        .describe_services()
        .cluster(cluster)
        .services("api")
        .include(aws_sdk_ecs::types::ServiceField::Tags)
        .send()
        .await
        .unwrap();
    let s = &out.services()[0];
    let tag = s
        .tags()
        .iter()
        .find(|t| t.key() == Some("cloudnap:sleeping"))
        .and_then(|t| t.value().map(String::from));
    (s.desired_count(), tag)
}

const HELD: (i32, i32, (bool, bool, bool)) = (0, 6, (true, true, true));
const AS_IT_WAS: (i32, i32, (bool, bool, bool)) = (2, 6, (false, false, true));
const SAVED_TAG: &str = "desired=3 target_min=2 target_max=6 suspended=scheduled";

#[tokio::test(flavor = "multi_thread")]
async fn an_ecs_service_sleeps_with_its_scalable_target_held_down_and_wakes_exactly() {
    let cluster = unique("appas");
    let cfg = ConfigDir::new(&[R], &scaled_service(&cluster).await);

    let (code, rows) = report(&cfg, "sleep");
    assert_eq!(code, Some(0), "{rows:?}");
    assert_eq!(rows[0]["action"], "stopped", "{rows:?}");
    assert_eq!(rows[0]["saved"]["target"]["min"], 2, "{rows:?}");
    // Held at min 0 with all scaling suspended: nothing scales it back up.
    assert_eq!(target_of(&cluster, "api").await, HELD);
    assert_eq!(desired_and_tag(&cluster).await, (0, Some(SAVED_TAG.into())));

    let (code, rows) = report(&cfg, "wake");
    assert_eq!(code, Some(0), "{rows:?}");
    assert_eq!(rows[0]["action"], "restored", "{rows:?}");
    assert_eq!(target_of(&cluster, "api").await, AS_IT_WAS);
    assert_eq!(desired_and_tag(&cluster).await, (3, None));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sleep_killed_between_the_target_and_the_count_is_woken_exactly_by_a_new_process() {
    let cluster = unique("appas");
    let services = scaled_service(&cluster).await;
    let fwd = Forwarder::start(&moto_url());
    fwd.hold("UpdateService");
    let settings = |endpoint: &str| {
        serde_json::json!({"aws": {"regions": [R], "endpoint_url": endpoint}}).to_string()
    };
    let cfg = ConfigDir::with_settings(&settings(&fwd.url), &services);

    // The sleep hangs in UpdateService, after the target was held down: kill -9.
    let mut sleep = cfg.command(&["sleep"]).spawn().unwrap();
    let start = std::time::Instant::now();
    // (The sleep tag goes with the target, beside it.)
    while fwd.count("UpdateService") == 0 || fwd.count("TagResource") == 0 {
        assert!(start.elapsed().as_secs() < 60, "no UpdateService");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    sleep.kill().unwrap();
    sleep.wait().unwrap();
    assert_eq!(target_of(&cluster, "api").await, HELD);
    assert_eq!(desired_and_tag(&cluster).await, (3, Some(SAVED_TAG.into())));
    let state = std::fs::read_to_string(cfg.file("state.json")).unwrap();
    assert!(state.contains(r#""phase": "stopping""#), "{state}");

    // A new process wakes it exactly as it was.
    std::fs::write(cfg.file("settings.json"), settings(&moto_url())).unwrap();
    let (code, rows) = report(&cfg, "wake");
    assert_eq!(code, Some(0), "{rows:?}");
    assert_eq!(rows[0]["action"], "restored", "{rows:?}");
    assert_eq!(target_of(&cluster, "api").await, AS_IT_WAS);
    assert_eq!(desired_and_tag(&cluster).await, (3, None));
    let state = std::fs::read_to_string(cfg.file("state.json")).unwrap();
    assert!(!state.contains(&cluster), "{state}");
}
