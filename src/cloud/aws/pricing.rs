//! On-demand list prices from the AWS Price List API (`GetProducts`, in
//! us-east-1), cached 30 days in the state directory.
//!
//! Every failure (unreachable, access denied, throttled) is an `Err` so the
//! caller can fall back to the shipped price table.

use super::clients::loader;
use super::error::{aws_err, retry_config};
use crate::cloud::{CloudError, ErrorKind};
use crate::core::config::settings::AwsSettings;
use crate::core::savings::prices::{PriceBook, PriceItem, PriceSource, Source};
use crate::store::price_cache::PriceCache;
use aws_sdk_pricing::types::{Filter, FilterType};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// The region the Price List API is asked in (it also lives in ap-south-1
/// and eu-central-1; prices are the same).
pub const PRICING_REGION: &str = "us-east-1";

/// Hours in a month as AWS bills `GB-Mo`: a monthly price / 730 is hourly.
pub const HOURS_PER_MONTH: f64 = 730.0;

/// Result pages read at most per lookup (100 products each).
const MAX_PAGES: usize = 5;

/// What to price: one on-demand unit of a resource in a region.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PriceQuery {
    /// An EC2 instance hour: Linux, shared tenancy, no pre-installed
    /// software, no license, capacity status `Used`.
    Ec2Instance {
        region: String,
        instance_type: String,
    },
    /// One Fargate vCPU for an hour (Linux, x86).
    FargateVcpu { region: String },
    /// One GB of Fargate memory for an hour (Linux, x86).
    FargateGb { region: String },
    /// One GB of EBS volume storage for an hour: the `GB-Mo` price / 730.
    /// `volume_type` is the API name (`gp3`, `gp2`, `io1`, `st1`, ...).
    EbsVolume { region: String, volume_type: String },
    /// One EKS cluster (standard support) for an hour.
    EksCluster { region: String },
    /// One in-use public IPv4 address for an hour.
    PublicIpv4 { region: String },
    /// An RDS instance hour, single-AZ. `engine` is the Price List's
    /// `databaseEngine` (`MySQL`, `PostgreSQL`, `MariaDB`, ...).
    RdsInstance {
        region: String,
        instance_class: String,
        engine: String,
    },
}

/// The unit of the price dimension to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    /// `Hrs`, `Hours`, `vCPU-Hours`, `GB-Hours`.
    Hours,
    /// `GB-Mo`, converted to hours.
    GbMonth,
}

impl Unit {
    fn matches(self, unit: &str) -> bool {
        let u = unit.to_ascii_lowercase();
        match self {
            Unit::Hours => u.ends_with("hrs") || u.ends_with("hours") || u.ends_with("hour"),
            Unit::GbMonth => u == "gb-mo" || u == "gb-month",
        }
    }
}

/// How one [`PriceQuery`] is asked and read.
struct Lookup {
    service_code: &'static str,
    /// `TERM_MATCH` filters besides the service code.
    filters: Vec<(&'static str, String)>,
    /// The `usagetype` without its region prefix (`USE1-`), when the
    /// filters leave several products.
    usage: Option<&'static str>,
    unit: Unit,
}

impl PriceQuery {
    /// The query for a report's price item; `None` for what the API is not
    /// asked about here (instances of an OS other than Linux).
    pub fn of(item: &PriceItem) -> Option<PriceQuery> {
        let r = |region: &String| region.clone();
        Some(match item {
            PriceItem::Instance {
                region,
                instance_type,
                os,
            } if os == "Linux" => PriceQuery::Ec2Instance {
                region: r(region),
                instance_type: instance_type.clone(),
            },
            PriceItem::Instance { .. } => return None,
            PriceItem::FargateVcpu { region } => PriceQuery::FargateVcpu { region: r(region) },
            PriceItem::FargateGb { region } => PriceQuery::FargateGb { region: r(region) },
            PriceItem::EbsGb {
                region,
                volume_type,
            } => PriceQuery::EbsVolume {
                region: r(region),
                volume_type: volume_type.clone(),
            },
            PriceItem::PublicIpv4 { region } => PriceQuery::PublicIpv4 { region: r(region) },
            PriceItem::EksControlPlane { region } => PriceQuery::EksCluster { region: r(region) },
            // SageMaker's products are not asked about: the shipped estimate.
            PriceItem::MlInstance { .. } => return None,
            // Nor Redshift's: the shipped estimate.
            PriceItem::RedshiftNode { .. } => return None,
        })
    }

    /// A stable key for the cache.
    pub fn key(&self) -> String {
        match self {
            PriceQuery::Ec2Instance {
                region,
                instance_type,
            } => format!("ec2/{region}/{instance_type}"),
            PriceQuery::FargateVcpu { region } => format!("fargate-vcpu/{region}"),
            PriceQuery::FargateGb { region } => format!("fargate-gb/{region}"),
            PriceQuery::EbsVolume {
                region,
                volume_type,
            } => format!("ebs/{region}/{volume_type}"),
            PriceQuery::EksCluster { region } => format!("eks/{region}"),
            PriceQuery::PublicIpv4 { region } => format!("ipv4/{region}"),
            PriceQuery::RdsInstance {
                region,
                instance_class,
                engine,
            } => format!("rds/{region}/{instance_class}/{engine}"),
        }
    }

    fn lookup(&self) -> Lookup {
        let region = |r: &String| ("regionCode", r.clone());
        let in_region = ("locationType", "AWS Region".to_string());
        let fixed = |field: &'static str, value: &str| (field, value.to_string());
        match self {
            PriceQuery::Ec2Instance {
                region: r,
                instance_type,
            } => Lookup {
                service_code: "AmazonEC2",
                filters: vec![
                    fixed("productFamily", "Compute Instance"),
                    region(r),
                    in_region,
                    ("instanceType", instance_type.clone()),
                    fixed("operatingSystem", "Linux"),
                    fixed("tenancy", "Shared"),
                    fixed("preInstalledSw", "NA"),
                    fixed("licenseModel", "No License required"),
                    fixed("capacitystatus", "Used"),
                ],
                usage: None,
                unit: Unit::Hours,
            },
            PriceQuery::FargateVcpu { region: r } => Lookup {
                service_code: "AmazonECS",
                filters: vec![region(r)],
                usage: Some("Fargate-vCPU-Hours:perCPU"),
                unit: Unit::Hours,
            },
            PriceQuery::FargateGb { region: r } => Lookup {
                service_code: "AmazonECS",
                filters: vec![region(r)],
                usage: Some("Fargate-GB-Hours"),
                unit: Unit::Hours,
            },
            PriceQuery::EbsVolume {
                region: r,
                volume_type,
            } => Lookup {
                service_code: "AmazonEC2",
                filters: vec![
                    fixed("productFamily", "Storage"),
                    region(r),
                    in_region,
                    ("volumeApiName", volume_type.clone()),
                ],
                usage: None,
                unit: Unit::GbMonth,
            },
            PriceQuery::EksCluster { region: r } => Lookup {
                service_code: "AmazonEKS",
                filters: vec![region(r)],
                usage: Some("AmazonEKS-Hours:perCluster"),
                unit: Unit::Hours,
            },
            PriceQuery::PublicIpv4 { region: r } => Lookup {
                service_code: "AmazonVPC",
                filters: vec![region(r)],
                usage: Some("PublicIPv4:InUseAddress"),
                unit: Unit::Hours,
            },
            PriceQuery::RdsInstance {
                region: r,
                instance_class,
                engine,
            } => Lookup {
                service_code: "AmazonRDS",
                filters: vec![
                    fixed("productFamily", "Database Instance"),
                    region(r),
                    in_region,
                    ("instanceType", instance_class.clone()),
                    ("databaseEngine", engine.clone()),
                    fixed("deploymentOption", "Single-AZ"),
                ],
                usage: None,
                unit: Unit::Hours,
            },
        }
    }
}

/// The Price List answers kept in a [`PriceCache`] that are fresh at a
/// given time, as a price source: it makes no call.
struct Cached {
    cache: PriceCache,
    now: SystemTime,
}

impl PriceSource for Cached {
    fn source(&self) -> Source {
        Source::PriceList
    }

    fn hourly(&self, item: &PriceItem) -> Option<f64> {
        let query = PriceQuery::of(item)?;
        self.cache.get(&query.key(), self.now).flatten()
    }
}

/// The one price book of every savings figure (the daemon's `REPORT`, the
/// tray's weekly figure, `cloudnap report`): the Price List answers in
/// `cache` that are fresh at `now`, in front of the table shipped with
/// cloudnap. Makes no call.
pub fn price_book(cache: PriceCache, now: SystemTime) -> PriceBook {
    PriceBook::with_first(Box::new(Cached { cache, now }))
}

/// Makes a [`price_book`] of the cache file `path` as it is then: the
/// daemon's prices, so what `cloudnap report` learns is used at once.
pub fn books_from(path: PathBuf) -> impl Fn() -> PriceBook + Send + Sync + 'static {
    move || price_book(PriceCache::load(&path), SystemTime::now())
}

/// Those of `items` the Price List is asked about that have no fresh answer
/// in `cache` at `now`.
pub fn uncached(cache: &PriceCache, items: &[PriceItem], now: SystemTime) -> Vec<PriceItem> {
    items
        .iter()
        .filter(|item| PriceQuery::of(item).is_some_and(|q| cache.get(&q.key(), now).is_none()))
        .cloned()
        .collect()
}

/// A failed price lookup; every kind means "use the shipped table".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PricingError {
    /// No answer from the Price List API (network, timeout).
    #[error("Price List API unreachable: {0}")]
    Unreachable(CloudError),
    /// The credentials lack `pricing:GetProducts`.
    #[error("Price List API access denied (needs pricing:GetProducts): {0}")]
    AccessDenied(CloudError),
    /// Missing, invalid or expired credentials.
    #[error("no valid AWS credentials for the Price List API: {0}")]
    Credentials(CloudError),
    /// Still throttled after retries.
    #[error("Price List API throttled: {0}")]
    Throttled(CloudError),
    /// Any other error answer.
    #[error("Price List API failed: {0}")]
    Failed(CloudError),
}

impl From<CloudError> for PricingError {
    fn from(e: CloudError) -> Self {
        match e.kind {
            ErrorKind::Network => PricingError::Unreachable(e),
            ErrorKind::AccessDenied => PricingError::AccessDenied(e),
            ErrorKind::Credentials => PricingError::Credentials(e),
            ErrorKind::Throttled => PricingError::Throttled(e),
            _ => PricingError::Failed(e),
        }
    }
}

/// Whether a product's `usagetype` is `usage`, with or without the region
/// prefix (`USE1-Fargate-GB-Hours`, not `USE1-SpotUsage:Fargate-GB-Hours`).
fn usage_matches(usagetype: &str, usage: &str) -> bool {
    usagetype == usage
        || usagetype
            .strip_suffix(usage)
            .and_then(|prefix| prefix.strip_suffix('-'))
            .is_some_and(|region| !region.is_empty() && !region.contains(['-', ':']))
}

/// The on-demand USD price per `unit` of the first product in a
/// `GetProducts` `PriceList` whose `usagetype` matches `usage` (any when
/// `None`): `terms.OnDemand.*.priceDimensions.*.pricePerUnit.USD` of the
/// dimension in that unit (the first tier when tiered). Unparsable items are
/// skipped.
fn parse_price(price_list: &[String], usage: Option<&str>, unit: Unit) -> Option<f64> {
    price_list
        .iter()
        .filter_map(|item| serde_json::from_str::<Value>(item).ok())
        .filter(|p| {
            usage.is_none_or(|u| {
                p["product"]["attributes"]["usagetype"]
                    .as_str()
                    .is_some_and(|t| usage_matches(t, u))
            })
        })
        .find_map(|p| on_demand_price(&p, unit))
}

/// The price of `product` per `unit` in its on-demand terms.
fn on_demand_price(product: &Value, unit: Unit) -> Option<f64> {
    let terms = product["terms"]["OnDemand"].as_object()?;
    terms
        .values()
        .filter_map(|term| term["priceDimensions"].as_object())
        .flat_map(|dims| dims.values())
        .filter(|d| d["unit"].as_str().is_some_and(|u| unit.matches(u)))
        .filter(|d| d["beginRange"].as_str().is_none_or(|b| b == "0"))
        .filter_map(|d| {
            d["pricePerUnit"]["USD"]
                .as_str()?
                .trim()
                .parse::<f64>()
                .ok()
        })
        .find(|usd| usd.is_finite() && *usd >= 0.0)
}

/// Price lookups through the Price List API in front of a [`PriceCache`].
pub struct PriceList {
    client: aws_sdk_pricing::Client,
    cache: Mutex<PriceCache>,
}

impl PriceList {
    /// A client in [`PRICING_REGION`] with the settings' default profile and
    /// endpoint override, the standard credential chain and retries.
    pub async fn new(aws: &AwsSettings, cache: PriceCache) -> Self {
        let loader = loader(
            PRICING_REGION,
            aws.profile.as_deref(),
            aws.endpoint_url.as_deref(),
            Duration::from_secs(30),
        )
        // One retry: a report waits on this, and the shipped table answers
        // when the Price List cannot be reached.
        .retry_config(retry_config().with_max_attempts(2));
        let client = aws_sdk_pricing::Client::new(&loader.load().await);
        Self::with_client(client, cache)
    }

    /// Lookups through a given client (tests, or a shared configuration).
    pub fn with_client(client: aws_sdk_pricing::Client, cache: PriceCache) -> Self {
        PriceList {
            client,
            cache: Mutex::new(cache),
        }
    }

    /// The on-demand USD price of one hour of `query` (EBS: per GB-hour, the
    /// monthly price / [`HOURS_PER_MONTH`]), `Ok(None)` when AWS lists no
    /// such product. A cached answer younger than 30 days at `now` needs no
    /// call; a new answer is cached (a failed cache write is only logged).
    pub async fn on_demand_hourly(
        &self,
        query: &PriceQuery,
        now: SystemTime,
    ) -> Result<Option<f64>, PricingError> {
        let key = query.key();
        if let Some(cached) = self.cache_lock().get(&key, now) {
            return Ok(cached);
        }
        let price = self.fetch(query).await?;
        if let Err(e) = self.cache_lock().put(&key, price, now) {
            tracing::warn!("could not save the price cache: {e}");
        }
        Ok(price)
    }

    /// Asks the Price List for those of `items` with no fresh answer in
    /// the cache at `now`, caching each answer. The first failed call (no
    /// network, no permission) ends the lookups, logged once: what is still
    /// missing is left to the shipped table.
    pub async fn fill(&self, items: &[PriceItem], now: SystemTime) {
        for query in items.iter().filter_map(PriceQuery::of) {
            if let Err(e) = self.on_demand_hourly(&query, now).await {
                tracing::warn!("AWS Price List: {e}; using the prices shipped with cloudnap");
                break;
            }
        }
    }

    /// The cache, with every answer learnt so far.
    pub fn into_cache(self) -> PriceCache {
        self.cache.into_inner().unwrap_or_else(|e| e.into_inner())
    }

    fn cache_lock(&self) -> std::sync::MutexGuard<'_, PriceCache> {
        // The cache holds no invariant a panic elsewhere could break.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks `GetProducts` page by page until a product has a price.
    async fn fetch(&self, query: &PriceQuery) -> Result<Option<f64>, PricingError> {
        let lookup = query.lookup();
        let mut filters = vec![term("ServiceCode", lookup.service_code)?];
        for (field, value) in &lookup.filters {
            filters.push(term(field, value)?);
        }
        let mut token = None;
        for _ in 0..MAX_PAGES {
            let out = self
                .client
                .get_products()
                .service_code(lookup.service_code)
                .format_version("aws_v1")
                .set_filters(Some(filters.clone()))
                .max_results(100)
                .set_next_token(token)
                .send()
                .await
                .map_err(aws_err)?;
            let price = parse_price(out.price_list(), lookup.usage, lookup.unit);
            if let Some(usd) = price {
                return Ok(Some(match lookup.unit {
                    Unit::Hours => usd,
                    Unit::GbMonth => usd / HOURS_PER_MONTH,
                }));
            }
            token = out.next_token().filter(|t| !t.is_empty()).map(String::from);
            if token.is_none() {
                break;
            }
        }
        Ok(None)
    }
}

/// A `TERM_MATCH` filter.
fn term(field: &str, value: &str) -> Result<Filter, PricingError> {
    Filter::builder()
        .r#type(FilterType::TermMatch)
        .field(field)
        .value(value)
        .build()
        .map_err(|e| PricingError::Failed(CloudError::new(ErrorKind::Other, e.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_pricing::operation::get_products::{GetProductsInput, GetProductsOutput};
    use aws_smithy_mocks::{mock, MockResponseInterceptor, Rule, RuleMode};
    use std::time::UNIX_EPOCH;

    /// A real `GetProducts` item: t3.micro, Linux, us-east-1, $0.0104/h.
    const T3_MICRO: &str =
        include_str!("../../../tests/fixtures/pricing_ec2_t3_micro_us_east_1.json");

    /// The real io1 storage item of the AWS CLI's `get-products` example.
    const IO1_SINGAPORE: &str = r#"{"product":{"productFamily":"Storage","attributes":{"storageMedia":"SSD-backed","maxThroughputvolume":"320 MB/sec","volumeType":"Provisioned IOPS","maxIopsvolume":"20000","servicecode":"AmazonEC2","usagetype":"APS1-EBS:VolumeUsage.piops","locationType":"AWS Region","location":"Asia Pacific (Singapore)","servicename":"Amazon Elastic Compute Cloud","maxVolumeSize":"16 TiB","operation":""},"sku":"3MKHN58N7RDDVGKJ"},"serviceCode":"AmazonEC2","terms":{"OnDemand":{"3MKHN58N7RDDVGKJ.JRTCKXETXF":{"priceDimensions":{"3MKHN58N7RDDVGKJ.JRTCKXETXF.6YS6EN2CT7":{"unit":"GB-Mo","endRange":"Inf","description":"$0.138 per GB-month of Provisioned IOPS SSD (io1)  provisioned storage - Asia Pacific (Singapore)","appliesTo":[],"rateCode":"3MKHN58N7RDDVGKJ.JRTCKXETXF.6YS6EN2CT7","beginRange":"0","pricePerUnit":{"USD":"0.1380000000"}}},"sku":"3MKHN58N7RDDVGKJ","effectiveDate":"2018-08-01T00:00:00Z","offerTermCode":"JRTCKXETXF","termAttributes":{}}}},"version":"20180808005701","publicationDate":"2018-08-08T00:57:01Z"}"#;

    /// A one-dimension on-demand item of `usagetype` at `usd` per `unit`.
    fn item(usagetype: &str, unit: &str, usd: &str) -> String {
        serde_json::json!({
            "product": {"productFamily": "Compute", "attributes": {"usagetype": usagetype}, "sku": "SKU"},
            "terms": {"OnDemand": {"SKU.JRTCKXETXF": {"priceDimensions": {
                "SKU.JRTCKXETXF.6YS6EN2CT7": {"unit": unit, "beginRange": "0", "endRange": "Inf", "pricePerUnit": {"USD": usd}}
            }}}}
        })
        .to_string()
    }

    #[test]
    fn the_hourly_on_demand_price_is_read_not_the_reserved_one() {
        let list = vec![T3_MICRO.to_string()];
        assert_eq!(parse_price(&list, None, Unit::Hours), Some(0.0104));
        assert_eq!(parse_price(&list, None, Unit::GbMonth), None);
    }

    #[test]
    fn storage_is_read_per_gb_month() {
        let list = vec![IO1_SINGAPORE.to_string()];
        assert_eq!(parse_price(&list, None, Unit::GbMonth), Some(0.138));
        assert_eq!(parse_price(&list, None, Unit::Hours), None);
    }

    #[test]
    fn the_usage_type_picks_x86_on_demand_among_spot_arm_and_windows() {
        let list = vec![
            "not json".to_string(),
            item(
                "USE1-SpotUsage:Fargate-vCPU-Hours:perCPU",
                "hours",
                "0.0124",
            ),
            item("USE1-Fargate-ARM-vCPU-Hours:perCPU", "hours", "0.0324"),
            item("USE1-Fargate-Windows-vCPU-Hours:perCPU", "hours", "0.0465"),
            item("USE1-Fargate-vCPU-Hours:perCPU", "hours", "0.04048"),
        ];
        let usage = Some("Fargate-vCPU-Hours:perCPU");
        assert_eq!(parse_price(&list, usage, Unit::Hours), Some(0.04048));
        assert!(usage_matches("Fargate-GB-Hours", "Fargate-GB-Hours"));
        assert!(usage_matches("EUC1-Fargate-GB-Hours", "Fargate-GB-Hours"));
        assert!(!usage_matches("-Fargate-GB-Hours", "Fargate-GB-Hours"));
    }

    #[test]
    fn odd_items_give_no_price_and_no_panic() {
        for text in [
            "",
            "null",
            "[]",
            r#"{"terms":{"OnDemand":[]}}"#,
            r#"{"terms":{"OnDemand":{"a":{"priceDimensions":{"b":{"unit":"Hrs","pricePerUnit":{"USD":"NaN"}}}}}}}"#,
            r#"{"terms":{"OnDemand":{"a":{"priceDimensions":{"b":{"unit":"Hrs","pricePerUnit":{"USD":"-1"}}}}}}}"#,
            r#"{"terms":{"OnDemand":{"a":{"priceDimensions":{"b":{"unit":"Hrs","pricePerUnit":{"EUR":"1"}}}}}}}"#,
        ] {
            assert_eq!(
                parse_price(&[text.to_string()], None, Unit::Hours),
                None,
                "{text}"
            );
        }
    }

    fn prices(rule: &Rule, dir: &std::path::Path) -> PriceList {
        let conf = aws_sdk_pricing::Config::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(PRICING_REGION))
            .credentials_provider(aws_sdk_pricing::config::Credentials::new(
                "AKIDTEST", "secret", None, None, "test",
            ))
            .http_client(aws_smithy_mocks::create_mock_http_client())
            .interceptor(
                MockResponseInterceptor::new()
                    .rule_mode(RuleMode::Sequential)
                    .with_rule(rule),
            )
            .retry_config(retry_config().with_initial_backoff(Duration::from_millis(1)))
            .build();
        PriceList::with_client(
            aws_sdk_pricing::Client::from_conf(conf),
            PriceCache::load(&dir.join("prices.json")),
        )
    }

    fn t3_micro() -> PriceQuery {
        PriceQuery::Ec2Instance {
            region: "us-east-1".into(),
            instance_type: "t3.micro".into(),
        }
    }

    /// The `TERM_MATCH` filters of a request, as (field, value).
    fn filters(req: &GetProductsInput) -> Vec<(String, String)> {
        req.filters()
            .iter()
            .map(|f| {
                assert_eq!(f.r#type(), &FilterType::TermMatch);
                (f.field().to_string(), f.value().to_string())
            })
            .collect()
    }

    fn t0() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    #[tokio::test]
    async fn an_ec2_price_is_asked_with_the_right_filters_then_cached() {
        let rule = mock!(aws_sdk_pricing::Client::get_products)
            .match_requests(|req| {
                let want = [
                    ("ServiceCode", "AmazonEC2"),
                    ("productFamily", "Compute Instance"),
                    ("regionCode", "us-east-1"),
                    ("locationType", "AWS Region"),
                    ("instanceType", "t3.micro"),
                    ("operatingSystem", "Linux"),
                    ("tenancy", "Shared"),
                    ("preInstalledSw", "NA"),
                    ("licenseModel", "No License required"),
                    ("capacitystatus", "Used"),
                ]
                .map(|(f, v)| (f.to_string(), v.to_string()));
                req.service_code() == Some("AmazonEC2")
                    && req.format_version() == Some("aws_v1")
                    && filters(req) == want
            })
            .then_output(|| GetProductsOutput::builder().price_list(T3_MICRO).build());
        let dir = tempfile::tempdir().unwrap();
        let prices = prices(&rule, dir.path());

        let first = prices.on_demand_hourly(&t3_micro(), t0()).await;
        assert_eq!(first, Ok(Some(0.0104)));
        let later = t0() + Duration::from_secs(29 * 24 * 3600);
        assert_eq!(
            prices.on_demand_hourly(&t3_micro(), later).await,
            Ok(Some(0.0104))
        );
        assert_eq!(
            rule.num_calls(),
            1,
            "the second lookup is served by the cache"
        );

        // The cache is a file: a new process needs no call either.
        let reloaded = PriceCache::load(&dir.path().join("prices.json"));
        assert_eq!(reloaded.get(&t3_micro().key(), later), Some(Some(0.0104)));
    }

    #[tokio::test]
    async fn an_expired_price_is_asked_again() {
        let rule = mock!(aws_sdk_pricing::Client::get_products)
            .sequence()
            .output(|| GetProductsOutput::builder().price_list(T3_MICRO).build())
            .output(|| {
                GetProductsOutput::builder()
                    .price_list(item("BoxUsage:t3.micro", "Hrs", "0.0110000000"))
                    .build()
            })
            .build();
        let dir = tempfile::tempdir().unwrap();
        let prices = prices(&rule, dir.path());
        assert_eq!(
            prices.on_demand_hourly(&t3_micro(), t0()).await,
            Ok(Some(0.0104))
        );
        let expired = t0() + Duration::from_secs(31 * 24 * 3600);
        assert_eq!(
            prices.on_demand_hourly(&t3_micro(), expired).await,
            Ok(Some(0.011))
        );
        assert_eq!(rule.num_calls(), 2);
    }

    #[tokio::test]
    async fn ebs_is_priced_per_gb_hour() {
        let rule = mock!(aws_sdk_pricing::Client::get_products)
            .match_requests(|req| {
                filters(req).contains(&("volumeApiName".into(), "io1".into()))
                    && filters(req).contains(&("productFamily".into(), "Storage".into()))
            })
            .then_output(|| {
                GetProductsOutput::builder()
                    .price_list(IO1_SINGAPORE)
                    .build()
            });
        let dir = tempfile::tempdir().unwrap();
        let query = PriceQuery::EbsVolume {
            region: "ap-southeast-1".into(),
            volume_type: "io1".into(),
        };
        let usd = prices(&rule, dir.path())
            .on_demand_hourly(&query, t0())
            .await;
        assert_eq!(usd, Ok(Some(0.138 / 730.0)));
    }

    #[tokio::test]
    async fn later_pages_are_read_until_the_usage_type_is_found() {
        let rule = mock!(aws_sdk_pricing::Client::get_products)
            .sequence()
            .output(|| {
                GetProductsOutput::builder()
                    .price_list(item("USE1-AmazonEKS-Hours:extendedSupport", "Hours", "0.6"))
                    .next_token("page2")
                    .build()
            })
            .output(|| {
                GetProductsOutput::builder()
                    .price_list(item("USE1-AmazonEKS-Hours:perCluster", "Hours", "0.1"))
                    .build()
            })
            .build();
        let dir = tempfile::tempdir().unwrap();
        let query = PriceQuery::EksCluster {
            region: "us-east-1".into(),
        };
        let usd = prices(&rule, dir.path())
            .on_demand_hourly(&query, t0())
            .await;
        assert_eq!(usd, Ok(Some(0.1)));
        assert_eq!(rule.num_calls(), 2);
    }

    #[tokio::test]
    async fn no_matching_product_is_none_and_cached() {
        let rule = mock!(aws_sdk_pricing::Client::get_products).then_output(|| {
            GetProductsOutput::builder()
                .format_version("aws_v1")
                .build()
        });
        let dir = tempfile::tempdir().unwrap();
        let prices = prices(&rule, dir.path());
        let query = PriceQuery::Ec2Instance {
            region: "us-east-1".into(),
            instance_type: "x9.nonesuch".into(),
        };
        assert_eq!(prices.on_demand_hourly(&query, t0()).await, Ok(None));
        assert_eq!(prices.on_demand_hourly(&query, t0()).await, Ok(None));
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn access_denied_is_an_error_to_fall_back_on_and_is_not_cached() {
        let rule = mock!(aws_sdk_pricing::Client::get_products)
            .sequence()
            .http_status(
                400,
                Some(
                    r#"{"__type":"AccessDeniedException","Message":"not authorized to perform: pricing:GetProducts"}"#
                        .into(),
                ),
            )
            .output(|| GetProductsOutput::builder().price_list(T3_MICRO).build())
            .build();
        let dir = tempfile::tempdir().unwrap();
        let prices = prices(&rule, dir.path());
        let err = prices
            .on_demand_hourly(&t3_micro(), t0())
            .await
            .unwrap_err();
        assert!(matches!(err, PricingError::AccessDenied(_)), "{err:?}");
        assert!(err.to_string().contains("pricing:GetProducts"), "{err}");
        assert_eq!(rule.num_calls(), 1, "not retried");
        // Nothing was cached: the next lookup asks again.
        assert_eq!(
            prices.on_demand_hourly(&t3_micro(), t0()).await,
            Ok(Some(0.0104))
        );
    }

    #[tokio::test]
    async fn a_report_gets_the_price_list_s_price_or_falls_back_to_the_shipped_table() {
        let item = PriceItem::Instance {
            region: "us-east-1".into(),
            instance_type: "t3.micro".into(),
            os: "Linux".into(),
        };
        let ok = mock!(aws_sdk_pricing::Client::get_products)
            .then_output(|| GetProductsOutput::builder().price_list(T3_MICRO).build());
        let dir = tempfile::tempdir().unwrap();
        let list = prices(&ok, dir.path());
        list.fill(std::slice::from_ref(&item), t0()).await;
        let price = price_book(list.into_cache(), t0()).price(&item).unwrap();
        assert_eq!(
            (price.usd_per_hour, price.source),
            (0.0104, Source::PriceList)
        );

        let denied = mock!(aws_sdk_pricing::Client::get_products)
            .sequence()
            .http_status(
                400,
                Some(r#"{"__type":"AccessDeniedException","Message":"denied"}"#.into()),
            )
            .build();
        let other = PriceItem::EksControlPlane {
            region: "us-east-1".into(),
        };
        let dir = tempfile::tempdir().unwrap();
        let list = prices(&denied, dir.path());
        list.fill(&[item.clone(), other], t0()).await;
        assert_eq!(denied.num_calls(), 1, "the first failure ends the lookups");
        let price = price_book(list.into_cache(), t0()).price(&item).unwrap();
        assert_eq!(price.source, Source::Estimate, "the shipped table answers");
        assert!(price.usd_per_hour > 0.0);
    }

    #[test]
    fn the_price_book_reads_fresh_cached_answers_and_the_table_fills_the_gaps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prices.json");
        let instance = |instance_type: &str, os: &str| PriceItem::Instance {
            region: "us-east-1".into(),
            instance_type: instance_type.into(),
            os: os.into(),
        };
        let (micro, small) = (instance("t3.micro", "Linux"), instance("t3.small", "Linux"));
        let mut cache = PriceCache::load(&path);
        cache.put(&t3_micro().key(), Some(1.5), t0()).unwrap();
        assert_eq!(
            uncached(&cache, &[micro.clone(), small.clone()], t0()),
            std::slice::from_ref(&small)
        );

        let book = price_book(PriceCache::load(&path), t0());
        let price = book.price(&micro).unwrap();
        assert_eq!((price.usd_per_hour, price.source), (1.5, Source::PriceList));
        assert_eq!(book.price(&small).unwrap().source, Source::Estimate);
        // A Windows instance is not asked about: the table prices it.
        let windows = instance("t3.micro", "Windows");
        assert_eq!(book.price(&windows).unwrap().source, Source::Estimate);
        assert!(uncached(&cache, &[windows], t0()).is_empty());

        // An answer older than 30 days is not used.
        let expired = t0() + Duration::from_secs(31 * 24 * 3600);
        let price = price_book(PriceCache::load(&path), expired)
            .price(&micro)
            .unwrap();
        assert_eq!(price.source, Source::Estimate);
    }

    #[tokio::test]
    async fn a_persistent_500_is_an_error_after_retries() {
        let rule = mock!(aws_sdk_pricing::Client::get_products)
            .sequence()
            .http_status(500, None)
            .times(10)
            .build();
        let dir = tempfile::tempdir().unwrap();
        let err = prices(&rule, dir.path())
            .on_demand_hourly(&t3_micro(), t0())
            .await
            .unwrap_err();
        assert!(matches!(err, PricingError::Failed(_)), "{err:?}");
        assert_eq!(rule.num_calls(), 5);
    }

    #[tokio::test]
    async fn throttling_is_an_error_after_retries() {
        let rule = mock!(aws_sdk_pricing::Client::get_products)
            .sequence()
            .http_status(
                400,
                Some(r#"{"__type":"ThrottlingException","Message":"Rate exceeded"}"#.into()),
            )
            .times(10)
            .build();
        let dir = tempfile::tempdir().unwrap();
        let err = prices(&rule, dir.path())
            .on_demand_hourly(&t3_micro(), t0())
            .await
            .unwrap_err();
        assert!(matches!(err, PricingError::Throttled(_)), "{err:?}");
    }
}
