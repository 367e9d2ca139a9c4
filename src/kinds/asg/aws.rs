//! EC2 Auto Scaling groups: describe, min/desired/max, the sleep tag (a group
//! tag, not propagated to instances), and listing.

use crate::cloud::aws::error::{aws_err, not_found};
use crate::cloud::aws::{all_items, has_protect, sleep_tag, SLEEP_TAG};
use crate::cloud::CloudError;
use crate::core::model::resource::{Capacity, Facts, Kind, Observed, ResourceId, Scaling};
use crate::core::policy::readiness::Probe;
use crate::kinds::adapter::{each, rows, wrong_shape, Cx, Each, KindAdapter};
use crate::kinds::asg;
use aws_sdk_autoscaling::types::{AutoScalingGroup, Tag};
use aws_sdk_autoscaling::Client;
use futures::future::BoxFuture;
use serde::Serialize;

/// A group, or `NotFound`.
async fn describe(asg: &Client, group: &str) -> Result<AutoScalingGroup, CloudError> {
    asg.describe_auto_scaling_groups()
        .auto_scaling_group_names(group)
        .send()
        .await
        .map_err(aws_err)?
        .auto_scaling_groups
        .unwrap_or_default()
        .into_iter()
        .next()
        .ok_or_else(|| not_found(format!("Auto Scaling group {group}")))
}

/// `(min, desired, max)` of a group.
fn scaling(g: &AutoScalingGroup) -> (i32, i32, i32) {
    (
        g.min_size().unwrap_or(0),
        g.desired_capacity().unwrap_or(0),
        g.max_size().unwrap_or(0),
    )
}

/// The instances `InService` in group `g`.
fn in_service_of(g: &AutoScalingGroup) -> i32 {
    let n = (g.instances().iter())
        .filter(|i| i.lifecycle_state().map(|s| s.as_str()) == Some("InService"))
        .count();
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The instances `InService` in `groups` together (one call), if they can
/// be read (an EKS nodegroup's groups).
pub(crate) async fn in_service(asg: &Client, groups: &[String]) -> Option<i32> {
    let out = asg
        .describe_auto_scaling_groups()
        .set_auto_scaling_group_names(Some(groups.to_vec()))
        .send()
        .await
        .ok()?;
    let found = out.auto_scaling_groups();
    (!found.is_empty()).then(|| found.iter().map(in_service_of).sum())
}

/// Capacity, protection, sleep tag and status of group `g`.
fn observe(g: &AutoScalingGroup) -> Observed {
    let tags = g
        .tags()
        .iter()
        .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default()));
    let (min, desired, max) = scaling(g);
    Observed {
        capacity: Capacity::of(Kind::Asg, Scaling { min, desired, max }),
        protected: has_protect(tags.clone()),
        sleep_tag: sleep_tag(
            Kind::Asg,
            tags.clone().find(|(k, _)| *k == SLEEP_TAG).map(|(_, v)| v),
        ),
        status: g.status().unwrap_or("active").to_string(),
        deployments: Vec::new(),
        part_of: None,
    }
}

/// What a group's instances are, for pricing.
fn facts(g: &AutoScalingGroup) -> Facts {
    let mut instance_types: Vec<String> = g
        .instances()
        .iter()
        .filter_map(|i| i.instance_type().map(String::from))
        .collect();
    instance_types.dedup();
    Facts {
        instance_types,
        ..Facts::default()
    }
}

/// Sets a group's min, desired and max size.
async fn set_scaling(
    asg: &Client,
    group: &str,
    (min, desired, max): (i32, i32, i32),
) -> Result<(), CloudError> {
    asg.update_auto_scaling_group()
        .auto_scaling_group_name(group)
        .min_size(min)
        .desired_capacity(desired)
        .max_size(max)
        .send()
        .await
        .map_err(aws_err)?;
    Ok(())
}

/// Writes (`Some`) or removes (`None`) the sleep tag of `group`.
async fn set_sleep_tag(
    asg: &Client,
    group: &str,
    saved: Option<Capacity>,
) -> Result<(), CloudError> {
    let tag = Tag::builder()
        .resource_id(group)
        .resource_type("auto-scaling-group")
        .key(SLEEP_TAG)
        .propagate_at_launch(false);
    match saved {
        Some(saved) => {
            asg.create_or_update_tags()
                .tags(tag.value(saved.to_tag()).build())
                .send()
                .await
                .map_err(aws_err)?;
        }
        None => {
            asg.delete_tags()
                .tags(tag.build())
                .send()
                .await
                .map_err(aws_err)?;
        }
    }
    Ok(())
}

/// All groups in `region`.
async fn list(asg: &Client, region: &str) -> Result<Vec<Listed>, CloudError> {
    let groups = all_items!(asg.describe_auto_scaling_groups())?;
    Ok(groups
        .iter()
        .map(|g| {
            let (min, desired, max) = scaling(g);
            Listed {
                group_name: g.auto_scaling_group_name().unwrap_or_default().to_string(),
                region: region.to_string(),
                status: g.status().unwrap_or("active").to_string(),
                min_size: min,
                desired_size: desired,
                max_size: max,
                instances: g.instances().len(),
            }
        })
        .collect())
}
/// An Auto Scaling group as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listed {
    pub group_name: String,
    pub region: String,
    pub status: String,
    pub min_size: i32,
    pub desired_size: i32,
    pub max_size: i32,
    /// How many instances it has now.
    pub instances: usize,
}

/// The Auto Scaling adapter: one group at a time.
pub struct Asg;

/// Auto Scaling groups' adapter.
pub static ASG: Asg = Asg;

impl KindAdapter for Asg {
    fn ready<'a>(&'a self, cx: Cx<'a>, items: &'a [(ResourceId, Option<u16>)]) -> Each<'a, Probe> {
        Box::pin(each(items, move |(id, _)| async move {
            let g = describe(&cx.clients.autoscaling, id.part(0)).await?;
            let (_, desired, _) = scaling(&g);
            let n = in_service_of(&g);
            Ok(Probe {
                ready: asg::ready(n, desired),
                detail: format!("{n} of {desired} instances in service"),
            })
        }))
    }

    fn observe<'a>(&'a self, cx: Cx<'a>, ids: &'a [ResourceId]) -> Each<'a, Observed> {
        Box::pin(each(ids, move |id| async move {
            Ok(observe(
                &describe(&cx.clients.autoscaling, id.part(0)).await?,
            ))
        }))
    }

    fn set_capacity<'a>(&'a self, cx: Cx<'a>, items: &'a [(ResourceId, Capacity)]) -> Each<'a, ()> {
        Box::pin(each(items, move |(id, to)| async move {
            let Scaling { min, desired, max } = to.level else {
                return Err(wrong_shape(id, *to));
            };
            set_scaling(&cx.clients.autoscaling, id.part(0), (min, desired, max)).await
        }))
    }

    fn set_sleep_tags<'a>(
        &'a self,
        cx: Cx<'a>,
        items: &'a [(ResourceId, Option<Capacity>)],
    ) -> Each<'a, ()> {
        Box::pin(each(items, move |(id, saved)| {
            set_sleep_tag(&cx.clients.autoscaling, id.part(0), *saved)
        }))
    }

    fn facts<'a>(&'a self, cx: Cx<'a>, ids: &'a [ResourceId]) -> Each<'a, Facts> {
        Box::pin(each(ids, move |id| async move {
            Ok(facts(&describe(&cx.clients.autoscaling, id.part(0)).await?))
        }))
    }

    fn list<'a>(
        &'a self,
        cx: Cx<'a>,
        region: &'a str,
    ) -> BoxFuture<'a, Result<Vec<serde_json::Value>, CloudError>> {
        Box::pin(async move { rows(list(&cx.clients.autoscaling, region).await?) })
    }
}
