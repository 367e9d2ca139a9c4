//! Application Auto Scaling: the scalable targets of resources (an ECS
//! service's desired count), read with them and held down while they sleep.

use super::all_items;
use super::error::aws_err;
use crate::cloud::CloudError;
use crate::core::model::resource::{ScalableTarget, Suspended};
use aws_sdk_applicationautoscaling::types::{ScalableDimension, ServiceNamespace, SuspendedState};
use aws_sdk_applicationautoscaling::Client;
use std::collections::HashMap;

/// What a kind's resources are scaled by: a namespace and a dimension.
pub(crate) struct Dimension {
    pub(crate) namespace: ServiceNamespace,
    pub(crate) dimension: ScalableDimension,
}

/// The scalable targets of `resource_ids` (`service/cluster/name`) by
/// resource id; a resource without one is absent. 50 ids a call (the API's
/// limit).
pub(crate) async fn targets(
    client: &Client,
    of: &Dimension,
    resource_ids: &[String],
) -> Result<HashMap<String, ScalableTarget>, CloudError> {
    let mut found = HashMap::new();
    for chunk in resource_ids.chunks(50) {
        let pages = all_items!(client
            .describe_scalable_targets()
            .service_namespace(of.namespace.clone())
            .scalable_dimension(of.dimension.clone())
            .set_resource_ids(Some(chunk.to_vec())))?;
        for t in pages {
            let s = t.suspended_state();
            let flag = |f: Option<bool>| f.unwrap_or(false);
            found.insert(
                t.resource_id().to_string(),
                ScalableTarget {
                    min: t.min_capacity(),
                    max: t.max_capacity(),
                    suspended: Suspended {
                        dynamic_in: flag(s.and_then(|s| s.dynamic_scaling_in_suspended())),
                        dynamic_out: flag(s.and_then(|s| s.dynamic_scaling_out_suspended())),
                        scheduled: flag(s.and_then(|s| s.scheduled_scaling_suspended())),
                    },
                },
            );
        }
    }
    Ok(found)
}

/// Sets the target of `resource_id` to `target`'s bounds and suspended
/// scaling.
pub(crate) async fn set(
    client: &Client,
    of: &Dimension,
    resource_id: &str,
    target: ScalableTarget,
) -> Result<(), CloudError> {
    let s = target.suspended;
    client
        .register_scalable_target()
        .service_namespace(of.namespace.clone())
        .scalable_dimension(of.dimension.clone())
        .resource_id(resource_id)
        .min_capacity(target.min)
        .max_capacity(target.max)
        .suspended_state(
            SuspendedState::builder()
                .dynamic_scaling_in_suspended(s.dynamic_in)
                .dynamic_scaling_out_suspended(s.dynamic_out)
                .scheduled_scaling_suspended(s.scheduled)
                .build(),
        )
        .send()
        .await
        .map_err(aws_err)?;
    Ok(())
}
