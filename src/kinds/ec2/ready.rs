//! EC2 readiness on AWS: each instance's status checks (one
//! `DescribeInstanceStatus` per 100 instances of a region), or, for an entry
//! with `ready_port`, that port answering on the instance's current address.

use super::ready;
use crate::cloud::aws::all_items;
use crate::cloud::aws::error::not_found;
use crate::cloud::CloudError;
use crate::core::model::resource::ResourceId;
use crate::core::policy::readiness::Probe;
use aws_sdk_ec2::types::InstanceStatus;
use aws_sdk_ec2::Client;
use std::collections::HashMap;
use std::time::Duration;

/// How long a TCP connection to a `ready_port` may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether each of `items` (instances of one region, with their
/// `ready_port`) is usable now.
pub(super) async fn probe_all(
    ec2: &Client,
    items: &[(ResourceId, Option<u16>)],
) -> Vec<Result<Probe, CloudError>> {
    let checked: Vec<String> = (items.iter())
        .filter(|(_, port)| port.is_none())
        .map(|(id, _)| id.part(0).to_string())
        .collect();
    let ported: Vec<(String, u16)> = (items.iter())
        .filter_map(|(id, port)| Some((id.part(0).to_string(), (*port)?)))
        .collect();
    let (checks, ports) = tokio::join!(checks(ec2, &checked), ports(ec2, &ported));
    let (mut checks, mut ports) = (checks.into_iter(), ports.into_iter());
    items
        .iter()
        .map(|(_, port)| {
            let next = match port {
                None => checks.next(),
                Some(_) => ports.next(),
            };
            next.unwrap_or_else(|| {
                Err(CloudError::new(crate::cloud::ErrorKind::Other, "no answer"))
            })
        })
        .collect()
}

/// The status checks of each of `ids`: one call for all (100 a page); if
/// that fails (an instance gone), one by one.
async fn checks(ec2: &Client, ids: &[String]) -> Vec<Result<Probe, CloudError>> {
    if ids.is_empty() {
        return Vec::new();
    }
    match statuses(ec2, ids).await {
        Ok(found) => ids.iter().map(|id| of(&found, id)).collect(),
        Err(_) if ids.len() > 1 => {
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let one = statuses(ec2, std::slice::from_ref(id)).await;
                out.push(one.and_then(|found| of(&found, id)));
            }
            out
        }
        Err(e) => vec![Err(e)],
    }
}

/// The probe of `id` from the statuses found.
fn of(found: &HashMap<String, InstanceStatus>, id: &str) -> Result<Probe, CloudError> {
    let s = found
        .get(id)
        .ok_or_else(|| not_found(format!("instance {id}")))?;
    let state = s
        .instance_state()
        .and_then(|s| s.name())
        .map_or("unknown", |n| n.as_str());
    let check = |summary: Option<&aws_sdk_ec2::types::InstanceStatusSummary>| {
        summary
            .and_then(|c| c.status())
            .map_or("unknown", |c| c.as_str())
            .to_string()
    };
    let (instance, system) = (check(s.instance_status()), check(s.system_status()));
    Ok(Probe {
        ready: ready(state, &instance, &system),
        detail: format!("{state}, checks {instance}/{system}"),
    })
}

/// `DescribeInstanceStatus` (all instances, not only running ones) for
/// `ids`, 100 a call.
async fn statuses(
    ec2: &Client,
    ids: &[String],
) -> Result<HashMap<String, InstanceStatus>, CloudError> {
    let mut found = HashMap::new();
    for chunk in ids.chunks(100) {
        let listed = all_items!(ec2
            .describe_instance_status()
            .include_all_instances(true)
            .set_instance_ids(Some(chunk.to_vec())))?;
        for s in listed {
            if let Some(id) = s.instance_id() {
                found.insert(id.to_string(), s.clone());
            }
        }
    }
    Ok(found)
}

/// For each instance of `items` with its port: running, and the port
/// answering on its public address (else its private one). One
/// `DescribeInstances` for all.
async fn ports(ec2: &Client, items: &[(String, u16)]) -> Vec<Result<Probe, CloudError>> {
    if items.is_empty() {
        return Vec::new();
    }
    let ids: Vec<String> = items.iter().map(|(id, _)| id.clone()).collect();
    let reservations = match all_items!(ec2.describe_instances().set_instance_ids(Some(ids))) {
        Ok(r) => r,
        Err(e) => return vec![Err(e); items.len()],
    };
    let mut found = HashMap::new();
    for i in reservations.iter().flat_map(|r| r.instances()) {
        let running = i.state().and_then(|s| s.name()).map(|n| n.as_str()) == Some("running");
        let address = i.public_ip_address().or(i.private_ip_address());
        if let Some(id) = i.instance_id() {
            found.insert(id.to_string(), (running, address.map(String::from)));
        }
    }
    let answers = items.iter().map(|(id, port)| {
        let seen = found.get(id).cloned();
        async move {
            let (running, address) = seen.ok_or_else(|| not_found(format!("instance {id}")))?;
            let Some(address) = address.filter(|_| running) else {
                return Ok(Probe {
                    ready: false,
                    detail: "not running yet".into(),
                });
            };
            let open = answers(&address, *port).await;
            Ok(Probe {
                ready: open,
                detail: format!(
                    "port {port} on {address} {}",
                    if open { "answers" } else { "closed" }
                ),
            })
        }
    });
    futures::future::join_all(answers).await
}

/// Whether `port` on `address` takes a TCP connection within
/// [`CONNECT_TIMEOUT`].
pub(crate) async fn answers(address: &str, port: u16) -> bool {
    let connect = tokio::net::TcpStream::connect((address, port));
    matches!(
        tokio::time::timeout(CONNECT_TIMEOUT, connect).await,
        Ok(Ok(_))
    )
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn a_port_answers_while_something_listens_on_it() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(super::answers("127.0.0.1", port).await);
        drop(listener);
        assert!(!super::answers("127.0.0.1", port).await);
    }
}
