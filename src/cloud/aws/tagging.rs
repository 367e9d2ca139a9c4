//! The Resource Groups Tagging API: resources tagged `cloudnap:managed=true`.

use super::{all_items, MANAGED_TAG, SHARED_TAG};
use crate::cloud::CloudError;
use crate::core::model::resource::ResourceId;
use crate::kinds::Kind;
use aws_sdk_resourcegroupstagging::types::TagFilter;
use aws_sdk_resourcegroupstagging::Client;

/// The resources of the client's region tagged [`MANAGED_TAG`]`=true`, of
/// every kind found by tag, each with whether it is also tagged
/// [`SHARED_TAG`]`=true`; ARNs that name none are skipped.
pub(super) async fn discover(client: &Client) -> Result<Vec<(ResourceId, bool)>, CloudError> {
    let types: Vec<String> = Kind::ALL
        .into_iter()
        .filter_map(|k| k.spec().tagged.as_ref())
        .map(|t| t.resource_type.to_string())
        .collect();
    let mappings = all_items!(client
        .get_resources()
        .tag_filters(TagFilter::builder().key(MANAGED_TAG).values("true").build())
        .set_resource_type_filters(Some(types)))?;
    Ok(mappings
        .iter()
        .filter_map(|m| {
            let id = ResourceId::from_arn(m.resource_arn()?)?;
            let shared = (m.tags().iter()).any(|t| t.key() == SHARED_TAG && t.value() == "true");
            Some((id, shared))
        })
        .collect())
}
