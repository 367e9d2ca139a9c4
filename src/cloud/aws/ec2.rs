//! EC2 instances: describe, start and stop, the sleep tag, and listing.

use super::error::{aws_err, not_found};
use super::{all_items, has_protect, marker, SLEEP_TAG};
use crate::cloud::{CloudError, ErrorKind};
use crate::core::resource::{Capacity, Ec2Instance, Kind, Observed, ResourceId};
use aws_sdk_ec2::types::{Instance, Tag};
use aws_sdk_ec2::Client;
use std::collections::HashMap;
use std::time::Duration;

/// The region of `ids` when they are all EC2 instances of one region.
pub(super) fn same_region<'a>(ids: impl IntoIterator<Item = &'a ResourceId>) -> Option<&'a str> {
    let mut region = None;
    for id in ids {
        match id {
            ResourceId::Ec2 { region: r, .. } if region.is_none_or(|x| x == r) => {
                region = Some(r.as_str())
            }
            _ => return None,
        }
    }
    region
}

/// The instance id of an EC2 resource.
pub(super) fn instance_id(id: &ResourceId) -> String {
    match id {
        ResourceId::Ec2 { instance_id, .. } => instance_id.clone(),
        _ => unreachable!("checked by same_region"),
    }
}

/// One instance, or `NotFound`.
pub(super) async fn describe(ec2: &Client, instance_id: &str) -> Result<Instance, CloudError> {
    let out = ec2
        .describe_instances()
        .instance_ids(instance_id)
        .send()
        .await
        .map_err(aws_err)?;
    out.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .find(|i| i.instance_id() == Some(instance_id))
        .cloned()
        .ok_or_else(|| not_found(format!("instance {instance_id}")))
}

/// Every instance of `ids` that exists, by id; one call per 500 ids.
pub(super) async fn describe_many(
    ec2: &Client,
    ids: &[String],
) -> Result<HashMap<String, Instance>, CloudError> {
    let mut found = HashMap::new();
    for chunk in ids.chunks(500) {
        let reservations = all_items!(ec2
            .describe_instances()
            .set_instance_ids(Some(chunk.to_vec())))?;
        for i in reservations.iter().flat_map(|r| r.instances()) {
            if let Some(id) = i.instance_id() {
                found.insert(id.to_string(), i.clone());
            }
        }
    }
    Ok(found)
}

/// Capacity, protection, sleep marker and state of an instance.
pub(super) fn observe(i: &Instance) -> Observed {
    let state = state(i);
    let tags = i
        .tags()
        .iter()
        .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default()));
    Observed {
        capacity: Capacity::Ec2 {
            running: matches!(state.as_str(), "pending" | "running"),
        },
        protected: has_protect(tags.clone()),
        marker: marker(
            Kind::Ec2,
            tags.clone().find(|(k, _)| *k == SLEEP_TAG).map(|(_, v)| v),
        ),
        status: state,
    }
}

fn state(i: &Instance) -> String {
    i.state()
        .and_then(|s| s.name())
        .map(|n| n.as_str().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Starts an instance; if it is still stopping, waits for it to stop first.
pub(super) async fn start(ec2: &Client, instance_id: &str) -> Result<(), CloudError> {
    for _ in 0..60 {
        match ec2.start_instances().instance_ids(instance_id).send().await {
            Ok(_) => return Ok(()),
            Err(e) => {
                let e = aws_err(e);
                if e.kind != ErrorKind::InvalidState {
                    return Err(e);
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
    Err(CloudError::new(
        ErrorKind::InvalidState,
        format!("instance {instance_id} did not reach a startable state in 2 minutes"),
    ))
}

/// Stops an instance.
pub(super) async fn stop(ec2: &Client, instance_id: &str) -> Result<(), CloudError> {
    ec2.stop_instances()
        .instance_ids(instance_id)
        .send()
        .await
        .map_err(aws_err)?;
    Ok(())
}

/// Starts (`running`) or stops all of `ids` with one call; whether it worked.
pub(super) async fn set_running_all(ec2: &Client, ids: Vec<String>, running: bool) -> bool {
    if running {
        ec2.start_instances()
            .set_instance_ids(Some(ids))
            .send()
            .await
            .is_ok()
    } else {
        ec2.stop_instances()
            .set_instance_ids(Some(ids))
            .send()
            .await
            .is_ok()
    }
}

/// Writes (`Some`) or removes (`None`) the sleep tag of an instance.
pub(super) async fn set_marker(
    ec2: &Client,
    instance_id: String,
    saved: Option<Capacity>,
) -> Result<(), CloudError> {
    match saved {
        Some(saved) => {
            let tag = Tag::builder().key(SLEEP_TAG).value(saved.to_tag()).build();
            ec2.create_tags()
                .resources(instance_id)
                .tags(tag)
                .send()
                .await
                .map_err(aws_err)?;
        }
        None => {
            let tag = Tag::builder().key(SLEEP_TAG).build();
            ec2.delete_tags()
                .resources(instance_id)
                .tags(tag)
                .send()
                .await
                .map_err(aws_err)?;
        }
    }
    Ok(())
}

/// [`set_marker`] for all of `ids` with one call; whether it worked.
pub(super) async fn set_marker_all(
    ec2: &Client,
    ids: Vec<String>,
    saved: Option<Capacity>,
) -> bool {
    let tag = Tag::builder().key(SLEEP_TAG);
    match saved {
        Some(saved) => ec2
            .create_tags()
            .set_resources(Some(ids))
            .tags(tag.value(saved.to_tag()).build())
            .send()
            .await
            .is_ok(),
        None => ec2
            .delete_tags()
            .set_resources(Some(ids))
            .tags(tag.build())
            .send()
            .await
            .is_ok(),
    }
}

/// All instances in `region`.
pub(super) async fn list(ec2: &Client, region: &str) -> Result<Vec<Ec2Instance>, CloudError> {
    let reservations = all_items!(ec2.describe_instances())?;
    Ok(reservations
        .iter()
        .flat_map(|r| r.instances())
        .map(|i| Ec2Instance {
            instance_id: i.instance_id().unwrap_or_default().to_string(),
            region: region.to_string(),
            instance_type: i
                .instance_type()
                .map(|t| t.as_str().to_string())
                .unwrap_or_default(),
            state: state(i),
            name: i
                .tags()
                .iter()
                .find(|t| t.key() == Some("Name"))
                .and_then(|t| t.value())
                .map(String::from),
            public_ip: i.public_ip_address().map(String::from),
            private_ip: i.private_ip_address().map(String::from),
        })
        .collect())
}
