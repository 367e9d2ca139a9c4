//! DocumentDB and Neptune clusters share the RDS cluster API, so the Aurora
//! kind (`RDS_CLUSTER`) covers them. Against moto (which takes engine
//! `neptune` and refuses `docdb`; DocumentDB's calls are tested with
//! aws-smithy-mocks in src/kinds/rds/aws.rs): a Neptune cluster is stopped,
//! tagged and started exactly, and listed with its engine.

mod common;
use common::*;

const R: &str = "eu-north-1";

async fn rds() -> aws_sdk_rds::Client {
    aws_sdk_rds::Client::new(&sdk(R).await)
}

/// A cluster's status and whether it has the sleep tag.
async fn cluster(name: &str) -> (String, bool) {
    let out = rds()
        .await
        .describe_db_clusters()
        .db_cluster_identifier(name)
        .send()
        .await
        .unwrap();
    let c = &out.db_clusters()[0];
    let sleeping = c
        .tag_list()
        .iter()
        .any(|t| t.key() == Some("cloudnap:sleeping") && t.value() == Some("running"));
    (c.status().unwrap().to_string(), sleeping)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_neptune_cluster_is_an_rds_cluster_listed_with_its_engine() {
    let name = unique("graph");
    rds()
        .await
        .create_db_cluster()
        .db_cluster_identifier(&name)
        .engine("neptune")
        .send()
        .await
        .unwrap();
    let cfg = ConfigDir::new(
        &[R],
        &format!("rds_clusters:\n  - db_cluster_identifier: {name}\n    region: {R}\n"),
    );

    let out = cfg.run(&["sleep", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["action"], "stopped", "{rows}");
    assert_eq!(cluster(&name).await, ("stopped".into(), true));
    let out = cfg.run(&["wake", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["action"], "restored", "{rows}");
    assert_eq!(cluster(&name).await, ("available".into(), false));

    let d = Daemon::start(&cfg);
    let listed = d.ok(&format!("LIST_RDS_CLUSTER:{R}")).await;
    let row = listed["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["db_cluster_identifier"] == name.as_str())
        .unwrap_or_else(|| panic!("{listed}"))
        .clone();
    assert_eq!(row["engine"], "neptune", "{row}");
    assert_eq!(row["status"], "available");
}
