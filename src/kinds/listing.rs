//! What `LIST_*` answers, from each kind's listing rows.

use super::Kind;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// What `LIST_*` found, as the reply sends it: `{"<list_key>": [rows]}` for
/// one kind (the original protocol's keys: `instances` for EC2, `clusters`
/// for ECS and EKS), `{"ec2": …, "ecs": …, "eks": …}` for
/// `LIST_ALL_SERVICES`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Listing(pub Map<String, Value>);

impl Listing {
    /// `LIST_<kind>`: its rows under its list key.
    pub fn of(kind: Kind, rows: Vec<Value>) -> Self {
        let spec = kind.spec();
        Listing(Map::from_iter([(
            spec.list_key.to_string(),
            Value::Array(grouped(kind, rows)),
        )]))
    }

    /// `LIST_ALL_SERVICES`: the rows of each kind it lists, under the kind's
    /// label in lower case.
    pub fn all(kinds: impl IntoIterator<Item = (Kind, Vec<Value>)>) -> Self {
        Listing(
            kinds
                .into_iter()
                .map(|(kind, rows)| {
                    let key = kind.spec().label.to_ascii_lowercase();
                    (key, Value::Array(grouped(kind, rows)))
                })
                .collect(),
        )
    }
}

/// `rows` as the kind lists them: flat, or grouped per (region, cluster) into
/// `{cluster_name, region, <group key>: [rows]}`, sorted by region and cluster.
fn grouped(kind: Kind, rows: Vec<Value>) -> Vec<Value> {
    let Some(key) = kind.spec().list_group else {
        return rows;
    };
    let text = |row: &Value, field: &str| row[field].as_str().unwrap_or_default().to_string();
    let mut groups: BTreeMap<(String, String), Vec<Value>> = BTreeMap::new();
    for row in rows {
        let place = (text(&row, "region"), text(&row, "cluster_name"));
        groups.entry(place).or_default().push(row);
    }
    groups
        .into_iter()
        .map(|((region, cluster), rows)| {
            serde_json::json!({"cluster_name": cluster, "region": region, key: rows})
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(cluster: &str, name: &str, region: &str) -> Value {
        json!({"cluster_name": cluster, "service_name": name, "region": region,
               "status": "ACTIVE", "desired_count": 1, "running_count": 1, "pending_count": 0})
    }

    #[test]
    fn services_are_nested_in_their_clusters_per_region() {
        let listing = Listing::of(
            Kind::Ecs,
            vec![
                svc("a", "api", "us-east-1"),
                svc("b", "web", "us-east-1"),
                svc("a", "db", "us-east-1"),
                svc("a", "api", "eu-west-1"),
            ],
        );
        let clusters = listing.0["clusters"].as_array().unwrap();
        let names: Vec<_> = clusters
            .iter()
            .map(|c| {
                let services = c["services"].as_array().unwrap().len();
                (
                    c["region"].as_str().unwrap(),
                    c["cluster_name"].as_str().unwrap(),
                    services,
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                ("eu-west-1", "a", 1),
                ("us-east-1", "a", 2),
                ("us-east-1", "b", 1)
            ]
        );
    }

    #[test]
    fn all_services_lists_the_original_three_kinds_under_their_labels() {
        let kinds = Kind::ALL.into_iter().filter(|k| k.spec().list_all);
        let listing = Listing::all(kinds.map(|k| (k, Vec::new())));
        let keys: Vec<&str> = listing.0.keys().map(String::as_str).collect();
        assert_eq!(keys, ["ec2", "ecs", "eks"]);
        assert_eq!(Listing::of(Kind::Ec2, Vec::new()).0["instances"], json!([]));
    }
}
