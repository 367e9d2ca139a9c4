//! RDS DB instances and Aurora clusters: describe, stop and start (waiting
//! while a database is still stopping), the sleep tag on their ARN, and
//! listing.

use crate::cloud::aws::error::{aws_err, not_found};
use crate::cloud::aws::{all_items, has_protect, sleep_tag, SLEEP_TAG};
use crate::cloud::{CloudError, ErrorKind};
use crate::core::model::resource::{Capacity, Facts, Kind, Observed, ResourceId, Running};
use crate::core::policy::readiness::Probe;
use crate::kinds::adapter::{self, each, rows, wrong_shape, Cx, Each, KindAdapter, Lifecycle};
use crate::kinds::rds;
use aws_sdk_rds::types::{DbCluster, DbInstance, Tag};
use aws_sdk_rds::Client;
use futures::future::BoxFuture;
use serde::Serialize;

/// A DB instance, or `NotFound`.
async fn instance(rds: &Client, id: &str) -> Result<DbInstance, CloudError> {
    rds.describe_db_instances()
        .db_instance_identifier(id)
        .send()
        .await
        .map_err(aws_err)?
        .db_instances
        .unwrap_or_default()
        .into_iter()
        .next()
        .ok_or_else(|| not_found(format!("RDS DB instance {id}")))
}

/// A DB cluster, or `NotFound`.
async fn cluster(rds: &Client, id: &str) -> Result<DbCluster, CloudError> {
    rds.describe_db_clusters()
        .db_cluster_identifier(id)
        .send()
        .await
        .map_err(aws_err)?
        .db_clusters
        .unwrap_or_default()
        .into_iter()
        .next()
        .ok_or_else(|| not_found(format!("RDS DB cluster {id}")))
}

/// Whether a database in `status` is up: everything but `stopped` and
/// `stopping` (`starting`, `available`, `backing-up`, `modifying`, ...
/// all cost).
fn is_up(status: &str) -> bool {
    !matches!(status, "stopped" | "stopping")
}

fn observe(kind: Kind, status: &str, tags: &[Tag], part_of: Option<String>) -> Observed {
    let tags = tags
        .iter()
        .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default()));
    Observed {
        capacity: Capacity::of(kind, Running(is_up(status))),
        protected: has_protect(tags.clone()),
        sleep_tag: sleep_tag(
            kind,
            tags.clone().find(|(k, _)| *k == SLEEP_TAG).map(|(_, v)| v),
        ),
        status: status.to_string(),
        deployments: Vec::new(),
        part_of,
    }
}

/// State, protection and sleep tag of a DB instance; one of an Aurora
/// cluster is never stopped alone.
fn observe_instance(db: &DbInstance) -> Observed {
    observe(
        Kind::Rds,
        db.db_instance_status().unwrap_or("unknown"),
        db.tag_list(),
        db.db_cluster_identifier().map(rds::member_reason),
    )
}

/// State, protection and sleep tag of a DB cluster.
fn observe_cluster(c: &DbCluster) -> Observed {
    observe(
        Kind::RdsCluster,
        c.status().unwrap_or("unknown"),
        c.tag_list(),
        None,
    )
}

/// The status of a DB instance or cluster now.
async fn status(rds: &Client, kind: Kind, id: &str) -> Result<String, CloudError> {
    let status = match kind {
        Kind::RdsCluster => cluster(rds, id).await?.status,
        _ => instance(rds, id).await?.db_instance_status,
    };
    Ok(status.unwrap_or_default())
}

/// One start or stop call for a DB instance or cluster.
async fn start_or_stop(
    rds: &Client,
    kind: Kind,
    id: &str,
    running: bool,
) -> Result<(), CloudError> {
    match (kind, running) {
        (Kind::RdsCluster, true) => drop(
            rds.start_db_cluster()
                .db_cluster_identifier(id)
                .send()
                .await
                .map_err(aws_err)?,
        ),
        (Kind::RdsCluster, false) => drop(
            rds.stop_db_cluster()
                .db_cluster_identifier(id)
                .send()
                .await
                .map_err(aws_err)?,
        ),
        (_, true) => drop(
            rds.start_db_instance()
                .db_instance_identifier(id)
                .send()
                .await
                .map_err(aws_err)?,
        ),
        (_, false) => drop(
            rds.stop_db_instance()
                .db_instance_identifier(id)
                .send()
                .await
                .map_err(aws_err)?,
        ),
    }
    Ok(())
}

/// RDS refuses a start or stop in the wrong state with an invalid-state fault.
const LIFE: Lifecycle = Lifecycle {
    is_up,
    stopping: "stopping",
    refused: |e| e.kind == ErrorKind::InvalidState,
};

/// Starts (`running`) or stops a DB instance or cluster, waiting while a
/// database to start is still stopping (see [`adapter::set_running`]).
async fn set_running(rds: &Client, kind: Kind, id: &str, running: bool) -> Result<(), CloudError> {
    let what = format!("{} {id}", kind.spec().noun);
    let call = |running| start_or_stop(rds, kind, id, running);
    adapter::set_running(&what, running, &LIFE, call, || status(rds, kind, id)).await
}

/// Writes (`Some`) or removes (`None`) the sleep tag of the database `arn`.
async fn set_sleep_tag(rds: &Client, arn: &str, saved: Option<Capacity>) -> Result<(), CloudError> {
    match saved {
        Some(saved) => {
            rds.add_tags_to_resource()
                .resource_name(arn)
                .tags(Tag::builder().key(SLEEP_TAG).value(saved.to_tag()).build())
                .send()
                .await
                .map_err(aws_err)?;
        }
        None => {
            rds.remove_tags_from_resource()
                .resource_name(arn)
                .tag_keys(SLEEP_TAG)
                .send()
                .await
                .map_err(aws_err)?;
        }
    }
    Ok(())
}

/// All DB instances in `region`.
async fn list(rds: &Client, region: &str) -> Result<Vec<Listed>, CloudError> {
    let dbs = all_items!(rds.describe_db_instances())?;
    Ok(dbs
        .iter()
        .map(|db| Listed {
            db_instance_identifier: db.db_instance_identifier().unwrap_or_default().to_string(),
            region: region.to_string(),
            status: db.db_instance_status().unwrap_or_default().to_string(),
            engine: db.engine().unwrap_or_default().to_string(),
            db_instance_class: db.db_instance_class().unwrap_or_default().to_string(),
            db_cluster_identifier: db.db_cluster_identifier().map(String::from),
        })
        .collect())
}

/// All DB clusters in `region`.
async fn list_clusters(rds: &Client, region: &str) -> Result<Vec<ListedCluster>, CloudError> {
    let clusters = all_items!(rds.describe_db_clusters())?;
    Ok(clusters
        .iter()
        .map(|c| ListedCluster {
            db_cluster_identifier: c.db_cluster_identifier().unwrap_or_default().to_string(),
            region: region.to_string(),
            status: c.status().unwrap_or_default().to_string(),
            engine: c.engine().unwrap_or_default().to_string(),
            members: c
                .db_cluster_members()
                .iter()
                .filter_map(|m| m.db_instance_identifier().map(String::from))
                .collect(),
        })
        .collect())
}

/// An RDS DB instance as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listed {
    pub db_instance_identifier: String,
    pub region: String,
    pub status: String,
    pub engine: String,
    pub db_instance_class: String,
    /// The Aurora cluster it belongs to, if any (register that instead).
    pub db_cluster_identifier: Option<String>,
}

/// An Aurora DB cluster as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListedCluster {
    pub db_cluster_identifier: String,
    pub region: String,
    pub status: String,
    pub engine: String,
    /// Its DB instances.
    pub members: Vec<String>,
}

/// The RDS adapter of DB instances (`Kind::Rds`) or Aurora clusters
/// (`Kind::RdsCluster`): one database at a time.
pub struct Rds(Kind);

/// RDS DB instances' adapter.
pub static INSTANCE: Rds = Rds(Kind::Rds);
/// Aurora DB clusters' adapter.
pub static CLUSTER: Rds = Rds(Kind::RdsCluster);

impl Rds {
    /// What database `id` is now, remembering its ARN.
    async fn observe_one(&self, cx: Cx<'_>, id: &ResourceId) -> Result<Observed, CloudError> {
        let name = id.part(0);
        if self.0 == Kind::RdsCluster {
            let c = cluster(&cx.clients.rds, name).await?;
            cx.arns.remember(id, c.db_cluster_arn());
            Ok(observe_cluster(&c))
        } else {
            let db = instance(&cx.clients.rds, name).await?;
            cx.arns.remember(id, db.db_instance_arn());
            Ok(observe_instance(&db))
        }
    }
}

impl KindAdapter for Rds {
    fn ready<'a>(&'a self, cx: Cx<'a>, items: &'a [(ResourceId, Option<u16>)]) -> Each<'a, Probe> {
        Box::pin(each(items, move |(id, _)| async move {
            let status = status(&cx.clients.rds, self.0, id.part(0)).await?;
            Ok(Probe {
                ready: rds::ready(&status),
                detail: status,
            })
        }))
    }

    fn observe<'a>(&'a self, cx: Cx<'a>, ids: &'a [ResourceId]) -> Each<'a, Observed> {
        Box::pin(each(ids, move |id| self.observe_one(cx, id)))
    }

    fn set_capacity<'a>(&'a self, cx: Cx<'a>, items: &'a [(ResourceId, Capacity)]) -> Each<'a, ()> {
        Box::pin(each(items, move |(id, to)| async move {
            let Running(running) = to.level else {
                return Err(wrong_shape(id, *to));
            };
            set_running(&cx.clients.rds, self.0, id.part(0), running).await
        }))
    }

    fn set_sleep_tags<'a>(
        &'a self,
        cx: Cx<'a>,
        items: &'a [(ResourceId, Option<Capacity>)],
    ) -> Each<'a, ()> {
        Box::pin(each(items, move |(id, saved)| async move {
            let learn = async { self.observe_one(cx, id).await.map(drop) };
            let arn = cx.arns.of(id, learn).await?;
            set_sleep_tag(&cx.clients.rds, &arn, *saved).await
        }))
    }

    /// Not priced yet: the report notes the type as unknown.
    fn facts<'a>(&'a self, _: Cx<'a>, ids: &'a [ResourceId]) -> Each<'a, Facts> {
        Box::pin(async move { ids.iter().map(|_| Ok(Facts::default())).collect() })
    }

    fn list<'a>(
        &'a self,
        cx: Cx<'a>,
        region: &'a str,
    ) -> BoxFuture<'a, Result<Vec<serde_json::Value>, CloudError>> {
        Box::pin(async move {
            match self.0 {
                Kind::RdsCluster => rows(list_clusters(&cx.clients.rds, region).await?),
                _ => rows(list(&cx.clients.rds, region).await?),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::aws::mocked;
    use aws_sdk_rds::error::ErrorMetadata;
    use aws_sdk_rds::operation::describe_db_clusters::DescribeDbClustersOutput;
    use aws_sdk_rds::operation::describe_db_instances::DescribeDbInstancesOutput;
    use aws_sdk_rds::operation::start_db_cluster::StartDBClusterError;
    use aws_sdk_rds::operation::start_db_instance::{StartDBInstanceError, StartDbInstanceOutput};
    use aws_sdk_rds::operation::stop_db_cluster::StopDbClusterOutput;
    use aws_sdk_rds::operation::stop_db_instance::StopDBInstanceError;
    use aws_smithy_mocks::{mock, Rule};

    fn client(rules: &[&Rule]) -> Client {
        mocked!(aws_sdk_rds, rules)
    }

    fn invalid_state() -> ErrorMetadata {
        ErrorMetadata::builder()
            .code("InvalidDBInstanceState")
            .message("from the mock")
            .build()
    }

    fn status(status: &'static str) -> impl Fn() -> DescribeDbInstancesOutput {
        move || {
            DescribeDbInstancesOutput::builder()
                .db_instances(DbInstance::builder().db_instance_status(status).build())
                .build()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stopping_database_is_started_once_it_has_stopped() {
        let start = mock!(Client::start_db_instance)
            .sequence()
            .error(|| StartDBInstanceError::generic(invalid_state()))
            .times(2)
            .output(|| StartDbInstanceOutput::builder().build())
            .build();
        let describe = mock!(Client::describe_db_instances).then_output(status("stopping"));
        let rds = client(&[&start, &describe]);

        assert_eq!(set_running(&rds, Kind::Rds, "db", true).await, Ok(()));
        assert_eq!((start.num_calls(), describe.num_calls()), (3, 2));
    }

    #[tokio::test]
    async fn a_database_already_there_is_left_and_a_refused_stop_is_reported() {
        let start = mock!(Client::start_db_instance)
            .then_error(|| StartDBInstanceError::generic(invalid_state()));
        let stop = mock!(Client::stop_db_instance)
            .then_error(|| StopDBInstanceError::generic(invalid_state()));
        let describe = mock!(Client::describe_db_instances).then_output(status("starting"));
        let rds = client(&[&start, &stop, &describe]);

        assert_eq!(set_running(&rds, Kind::Rds, "db", true).await, Ok(()));
        let err = set_running(&rds, Kind::Rds, "db", false).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidState);
        assert_eq!(err.code.as_deref(), Some("InvalidDBInstanceState"));
        assert_eq!((start.num_calls(), stop.num_calls()), (1, 1));
    }

    /// DocumentDB shares the RDS cluster API (moto refuses its engine): a
    /// cluster as DescribeDBClusters answers for it.
    fn docdb() -> DescribeDbClustersOutput {
        DescribeDbClustersOutput::builder()
            .db_clusters(
                DbCluster::builder()
                    .db_cluster_identifier("docs")
                    .db_cluster_arn("arn:aws:rds:us-east-1:123456789012:cluster:docs")
                    .engine("docdb")
                    .status("available")
                    .build(),
            )
            .build()
    }

    #[tokio::test]
    async fn a_documentdb_cluster_is_stopped_left_when_up_and_listed_with_its_engine() {
        let describe = mock!(Client::describe_db_clusters).then_output(docdb);
        let stop =
            mock!(Client::stop_db_cluster).then_output(|| StopDbClusterOutput::builder().build());
        let start = mock!(Client::start_db_cluster).then_error(|| {
            StartDBClusterError::generic(
                ErrorMetadata::builder()
                    .code("InvalidDBClusterStateFault")
                    .message("DbCluster docs is not in stopped state.")
                    .build(),
            )
        });
        let rds = client(&[&describe, &stop, &start]);

        assert_eq!(
            set_running(&rds, Kind::RdsCluster, "docs", false).await,
            Ok(())
        );
        assert_eq!(stop.num_calls(), 1);
        // Already available: the refused start leaves it as it is.
        assert_eq!(
            set_running(&rds, Kind::RdsCluster, "docs", true).await,
            Ok(())
        );
        assert_eq!(start.num_calls(), 1);
        let seen = observe_cluster(&docdb().db_clusters()[0]);
        assert_eq!(seen.capacity, Capacity::of(Kind::RdsCluster, Running(true)));
        let listed = list_clusters(&rds, "us-east-1").await.unwrap();
        assert_eq!(listed[0].engine, "docdb");
        assert_eq!(listed[0].db_cluster_identifier, "docs");
    }
}
