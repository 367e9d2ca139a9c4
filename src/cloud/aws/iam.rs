//! IAM: the role the AWS-side deadline runs as (see [`crate::core::config::iam`]),
//! made by `cloudnap aws-setup`. IAM is global: any region's client does.

use super::error::aws_err;
use crate::cloud::{CloudError, ErrorKind};
use crate::core::config::iam::Role;
use aws_sdk_iam::Client;

/// Creates `role` (or sets the trust policy of the one that exists) and
/// puts its inline policy: three calls at most, each idempotent. Returns
/// the role's ARN and whether it was created.
pub(super) async fn put_role(client: &Client, role: &Role) -> Result<(String, bool), CloudError> {
    let found = client.get_role().role_name(&role.name).send().await;
    let (arn, created) = match found.map_err(aws_err) {
        Ok(out) => {
            client
                .update_assume_role_policy()
                .role_name(&role.name)
                .policy_document(role.trust.to_string())
                .send()
                .await
                .map_err(aws_err)?;
            (out.role().map(|r| r.arn().to_string()), false)
        }
        Err(e) if e.kind == ErrorKind::NotFound => {
            let out = client
                .create_role()
                .role_name(&role.name)
                .assume_role_policy_document(role.trust.to_string())
                .description(&role.description)
                .send()
                .await
                .map_err(aws_err)?;
            (out.role().map(|r| r.arn().to_string()), true)
        }
        Err(e) => return Err(e),
    };
    client
        .put_role_policy()
        .role_name(&role.name)
        .policy_name(&role.policy_name)
        .policy_document(role.policy.to_string())
        .send()
        .await
        .map_err(aws_err)?;
    let arn = arn.ok_or_else(|| CloudError::new(ErrorKind::Other, "IAM returned no role ARN"))?;
    Ok((arn, created))
}
