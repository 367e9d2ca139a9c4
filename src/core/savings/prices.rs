//! Hourly prices of what a sleep turns off and of what keeps costing while
//! asleep. A [`PriceBook`] asks its [`PriceSource`]s in order (the AWS Price
//! List API can sit in front) and falls back to the table shipped with
//! cloudnap ([`ShippedTable`], source `estimate`). Pure: no I/O.
//!
//! Assumptions, stated in every report ([`ASSUMPTIONS`]): on-demand prices in
//! USD, no savings plans, reserved instances or free tier, Linux unless the
//! instance says otherwise.

use serde::Serialize;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// What every figure assumes.
pub const ASSUMPTIONS: &str = "on-demand prices in USD; no savings plans, reserved instances, \
spot or free tier; Linux unless the instance reports another OS; EBS at list price per GB-month \
(730 h); ECS on EC2 capacity is counted on its instances";

/// Hours in the month EBS prices are quoted for.
pub const HOURS_PER_MONTH: f64 = 730.0;

/// Something with an hourly price. (RDS databases are not priced yet: they
/// become variants here when they are.)
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PriceItem {
    /// One EC2 instance of a type, in a region, running an OS (`Linux`,
    /// `Windows`, ...).
    Instance {
        region: String,
        instance_type: String,
        os: String,
    },
    /// One Fargate vCPU (Linux/x86).
    FargateVcpu { region: String },
    /// One GB of Fargate memory.
    FargateGb { region: String },
    /// One GB of an EBS volume type (`gp3`, `gp2`, `io1`, ...).
    EbsGb { region: String, volume_type: String },
    /// One public IPv4 address.
    PublicIpv4 { region: String },
    /// One EKS cluster's control plane.
    EksControlPlane { region: String },
    /// One SageMaker ML instance of a type (`ml.t3.medium`: a notebook
    /// instance), in a region.
    MlInstance {
        region: String,
        instance_type: String,
    },
    /// One node of a Redshift provisioned cluster of a node type
    /// (`ra3.xlplus`), in a region.
    RedshiftNode { region: String, node_type: String },
}

/// Where a price came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The AWS Price List API (or its cache).
    PriceList,
    /// The table shipped with cloudnap.
    Estimate,
}

impl Source {
    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Source::PriceList => "price_list",
            Source::Estimate => "estimate",
        }
    }
}

/// An hourly price in USD and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Price {
    pub usd_per_hour: f64,
    pub source: Source,
}

/// A source of hourly prices: answers `None` when it does not know one.
pub trait PriceSource: Send + Sync {
    /// Which source this is.
    fn source(&self) -> Source;
    /// The on-demand USD per hour of one `item` (for EBS: per GB-hour).
    fn hourly(&self, item: &PriceItem) -> Option<f64>;
}

/// Notes every item it is asked for and knows none: run a computation
/// through it once to learn which prices to look up.
#[derive(Clone, Default)]
pub struct Wanted(Arc<Mutex<HashSet<PriceItem>>>);

impl Wanted {
    /// The items asked for so far, each once.
    pub fn items(&self) -> Vec<PriceItem> {
        self.0
            .lock()
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default()
    }
}

impl PriceSource for Wanted {
    fn source(&self) -> Source {
        Source::PriceList
    }

    fn hourly(&self, item: &PriceItem) -> Option<f64> {
        if let Ok(mut set) = self.0.lock() {
            set.insert(item.clone());
        }
        None
    }
}

/// Price sources asked in order; the first that knows a price wins.
pub struct PriceBook {
    sources: Vec<Box<dyn PriceSource>>,
}

impl Default for PriceBook {
    /// Only the shipped table.
    fn default() -> Self {
        PriceBook {
            sources: vec![Box::new(ShippedTable)],
        }
    }
}

impl PriceBook {
    /// `first` asked before the shipped table (e.g. the Price List API).
    pub fn with_first(first: Box<dyn PriceSource>) -> Self {
        PriceBook {
            sources: vec![first, Box::new(ShippedTable)],
        }
    }

    /// The price of one `item`, from the first source that knows it.
    pub fn price(&self, item: &PriceItem) -> Option<Price> {
        self.sources.iter().find_map(|s| {
            s.hourly(item)
                .filter(|p| p.is_finite() && *p >= 0.0)
                .map(|usd_per_hour| Price {
                    usd_per_hour,
                    source: s.source(),
                })
        })
    }
}

/// The price table shipped with cloudnap: us-east-1 list prices of common
/// instance families (per `large`, scaled by size), Fargate, EBS, IPv4 and
/// EKS, and a factor per commercial region. Source `estimate`.
pub struct ShippedTable;

/// us-east-1 Linux on-demand USD/hour of `<family>.large`.
const FAMILY_LARGE: &[(&str, f64)] = &[
    ("t2", 0.0928),
    ("t3", 0.0832),
    ("t3a", 0.0752),
    ("t4g", 0.0672),
    ("m5", 0.096),
    ("m5a", 0.086),
    ("m6a", 0.0864),
    ("m6i", 0.096),
    ("m6g", 0.077),
    ("m7i", 0.1008),
    ("m7g", 0.0816),
    ("m7a", 0.11592),
    ("c5", 0.085),
    ("c5a", 0.077),
    ("c6a", 0.0765),
    ("c6i", 0.085),
    ("c6g", 0.068),
    ("c7i", 0.08925),
    ("c7g", 0.0725),
    ("r5", 0.126),
    ("r5a", 0.113),
    ("r6a", 0.1134),
    ("r6i", 0.126),
    ("r6g", 0.1008),
    ("r7i", 0.1323),
    ("r7g", 0.1071),
    ("g4dn", 0.2630),
];

/// Size factor relative to `large`, and vCPUs (for the Windows licence).
const SIZES: &[(&str, f64, f64)] = &[
    ("nano", 0.0625, 2.0),
    ("micro", 0.125, 2.0),
    ("small", 0.25, 2.0),
    ("medium", 0.5, 2.0),
    ("large", 1.0, 2.0),
    ("xlarge", 2.0, 4.0),
    ("2xlarge", 4.0, 8.0),
    ("4xlarge", 8.0, 16.0),
    ("8xlarge", 16.0, 32.0),
    ("12xlarge", 24.0, 48.0),
    ("16xlarge", 32.0, 64.0),
    ("24xlarge", 48.0, 96.0),
];

/// Price factor of each commercial region relative to us-east-1 (approximate).
const REGIONS: &[(&str, f64)] = &[
    ("us-east-1", 1.0),
    ("us-east-2", 1.0),
    ("us-west-1", 1.19),
    ("us-west-2", 1.0),
    ("ca-central-1", 1.11),
    ("ca-west-1", 1.11),
    ("mx-central-1", 1.15),
    ("sa-east-1", 1.59),
    ("eu-west-1", 1.11),
    ("eu-west-2", 1.16),
    ("eu-west-3", 1.17),
    ("eu-central-1", 1.15),
    ("eu-central-2", 1.27),
    ("eu-north-1", 1.07),
    ("eu-south-1", 1.16),
    ("eu-south-2", 1.11),
    ("il-central-1", 1.21),
    ("me-south-1", 1.24),
    ("me-central-1", 1.22),
    ("af-south-1", 1.30),
    ("ap-south-1", 1.07),
    ("ap-south-2", 1.07),
    ("ap-east-1", 1.36),
    ("ap-southeast-1", 1.26),
    ("ap-southeast-2", 1.26),
    ("ap-southeast-3", 1.26),
    ("ap-southeast-4", 1.26),
    ("ap-southeast-5", 1.20),
    ("ap-southeast-7", 1.20),
    ("ap-northeast-1", 1.30),
    ("ap-northeast-2", 1.24),
    ("ap-northeast-3", 1.30),
];

/// us-east-1 USD per GB-month of each EBS volume type.
const EBS_GB_MONTH: &[(&str, f64)] = &[
    ("gp3", 0.08),
    ("gp2", 0.10),
    ("io1", 0.125),
    ("io2", 0.125),
    ("st1", 0.045),
    ("sc1", 0.015),
    ("standard", 0.05),
];

/// SageMaker's ML instance price over the EC2 instance of the same type
/// (us-east-1: ml.t3.medium $0.05 against t3.medium $0.0416, ml.m5.xlarge
/// $0.23 against m5.xlarge $0.192).
const ML_MARKUP: f64 = 1.2;

/// us-east-1 USD per node-hour of each Redshift node type (on-demand).
const REDSHIFT_NODE: &[(&str, f64)] = &[
    ("dc2.large", 0.25),
    ("dc2.8xlarge", 4.80),
    ("ra3.large", 0.543),
    ("ra3.xlplus", 1.086),
    ("ra3.4xlarge", 3.26),
    ("ra3.16xlarge", 13.04),
    ("ds2.xlarge", 0.85),
    ("ds2.8xlarge", 6.80),
];

/// Whether `t` is a Redshift node type (`dc2.large`, `ra3.xlplus`): their
/// families are no EC2 instance family.
pub fn is_redshift_node(t: &str) -> bool {
    ["dc1.", "dc2.", "ds2.", "ra3."]
        .iter()
        .any(|family| t.starts_with(family))
}

/// Windows licence per vCPU-hour added to the Linux price.
const WINDOWS_PER_VCPU: f64 = 0.046;

fn lookup<T: Copy>(table: &[(&str, T)], key: &str) -> Option<T> {
    table.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

impl PriceSource for ShippedTable {
    fn source(&self) -> Source {
        Source::Estimate
    }

    fn hourly(&self, item: &PriceItem) -> Option<f64> {
        let factor = |region: &str| lookup(REGIONS, region);
        match item {
            PriceItem::Instance {
                region,
                instance_type,
                os,
            } => {
                let (family, size) = instance_type.split_once('.')?;
                let large = lookup(FAMILY_LARGE, family)?;
                let (_, scale, vcpus) = SIZES.iter().find(|(s, _, _)| *s == size)?;
                let licence = if os.to_ascii_lowercase().starts_with("windows") {
                    WINDOWS_PER_VCPU * vcpus
                } else {
                    0.0
                };
                Some((large * scale + licence) * factor(region)?)
            }
            PriceItem::FargateVcpu { region } => Some(0.04048 * factor(region)?),
            PriceItem::FargateGb { region } => Some(0.004445 * factor(region)?),
            PriceItem::EbsGb {
                region,
                volume_type,
            } => Some(lookup(EBS_GB_MONTH, volume_type)? * factor(region)? / HOURS_PER_MONTH),
            PriceItem::PublicIpv4 { region } => factor(region).map(|_| 0.005),
            PriceItem::EksControlPlane { region } => factor(region).map(|_| 0.10),
            PriceItem::MlInstance {
                region,
                instance_type,
            } => {
                let ec2 = PriceItem::Instance {
                    region: region.clone(),
                    instance_type: instance_type.strip_prefix("ml.")?.to_string(),
                    os: "Linux".into(),
                };
                Some(self.hourly(&ec2)? * ML_MARKUP)
            }
            PriceItem::RedshiftNode { region, node_type } => {
                Some(lookup(REDSHIFT_NODE, node_type)? * factor(region)?)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ec2(t: &str, region: &str, os: &str) -> PriceItem {
        PriceItem::Instance {
            region: region.into(),
            instance_type: t.into(),
            os: os.into(),
        }
    }

    #[test]
    fn a_notebook_instance_is_priced_as_its_ec2_type_with_sagemakers_markup() {
        let ml = |t: &str| PriceItem::MlInstance {
            region: "us-east-1".into(),
            instance_type: t.into(),
        };
        let t3 = ShippedTable
            .hourly(&ec2("t3.medium", "us-east-1", "Linux"))
            .unwrap();
        let nb = ShippedTable.hourly(&ml("ml.t3.medium")).unwrap();
        assert!(
            (nb - t3 * 1.2).abs() < 1e-9 && (0.045..0.055).contains(&nb),
            "{nb}"
        );
        assert_eq!(ShippedTable.hourly(&ml("t3.medium")), None);
    }

    #[test]
    fn a_redshift_node_is_priced_from_its_own_table() {
        let node = |t: &str, region: &str| PriceItem::RedshiftNode {
            region: region.into(),
            node_type: t.into(),
        };
        assert_eq!(
            ShippedTable.hourly(&node("ra3.xlplus", "us-east-1")),
            Some(1.086)
        );
        assert_eq!(
            ShippedTable.hourly(&node("dc2.large", "us-east-1")),
            Some(0.25)
        );
        assert_eq!(ShippedTable.hourly(&node("ra3.xlplus", "nowhere-1")), None);
        assert_eq!(ShippedTable.hourly(&node("t3.large", "us-east-1")), None);
        assert!(is_redshift_node("ra3.4xlarge") && !is_redshift_node("r5.large"));
    }

    #[test]
    fn shipped_table_knows_us_east_1_list_prices() {
        let book = PriceBook::default();
        let p = book.price(&ec2("t3.micro", "us-east-1", "Linux")).unwrap();
        assert!((p.usd_per_hour - 0.0104).abs() < 1e-12);
        assert_eq!(p.source, Source::Estimate);
        let m5 = book
            .price(&ec2("m5.2xlarge", "us-east-1", "Linux"))
            .unwrap();
        assert!((m5.usd_per_hour - 0.384).abs() < 1e-12);
        assert!(book.price(&ec2("x9.large", "us-east-1", "Linux")).is_none());
        assert!(book
            .price(&ec2("t3.micro", "cn-north-1", "Linux"))
            .is_none());
        let win = book
            .price(&ec2("t3.micro", "us-east-1", "Windows"))
            .unwrap();
        assert!(win.usd_per_hour > 0.0104);
        let gp3 = book
            .price(&PriceItem::EbsGb {
                region: "us-east-1".into(),
                volume_type: "gp3".into(),
            })
            .unwrap();
        assert!((gp3.usd_per_hour * HOURS_PER_MONTH - 0.08).abs() < 1e-12);
    }

    struct Api;
    impl PriceSource for Api {
        fn source(&self) -> Source {
            Source::PriceList
        }
        fn hourly(&self, item: &PriceItem) -> Option<f64> {
            matches!(item, PriceItem::Instance { instance_type, .. } if instance_type == "t3.micro")
                .then_some(0.02)
        }
    }

    #[test]
    fn a_source_in_front_wins_and_the_table_fills_the_gaps() {
        let book = PriceBook::with_first(Box::new(Api));
        let p = book.price(&ec2("t3.micro", "us-east-1", "Linux")).unwrap();
        assert_eq!((p.usd_per_hour, p.source), (0.02, Source::PriceList));
        let p = book.price(&ec2("t3.small", "us-east-1", "Linux")).unwrap();
        assert_eq!(p.source, Source::Estimate);
    }
}
