//! The busy veto, pure: which CloudWatch metrics show that a resource is at
//! work, how the reads of one sleep are batched, and whether the values read
//! (or an ECS deployment in progress) keep a resource running, with the
//! reason shown in the sleep report. Decisions take `now`; no I/O.

use crate::core::config::settings::BusySettings;
use crate::core::model::resource::{Kind, ResourceId};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// The most queries one `GetMetricData` call takes.
pub const MAX_QUERIES_PER_CALL: usize = 500;

/// The period of every datapoint read, in seconds.
pub const PERIOD_SECONDS: i32 = 60;

/// An ECS deployment in progress for longer than this is taken as stuck
/// (tasks that never start), not as work: it does not keep the service up.
pub const STUCK_DEPLOYMENT: Duration = Duration::from_secs(3600);

pub use crate::kinds::{Metric, Reduce};

/// One busy rule: a CloudWatch metric (or the sum of several) of one kind of
/// resource (its [`Metric`]), compared with a threshold under `busy` in
/// settings.json.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    pub kind: Kind,
    pub metric: &'static Metric,
}

impl std::ops::Deref for Rule {
    type Target = Metric;
    fn deref(&self) -> &Metric {
        self.metric
    }
}

/// Every rule: each kind's metrics (see [`crate::kinds::Spec::busy`]), in
/// the order of the kinds.
pub static RULES: std::sync::LazyLock<Vec<Rule>> = std::sync::LazyLock::new(|| {
    Kind::ALL
        .into_iter()
        .flat_map(|kind| {
            kind.spec()
                .busy
                .iter()
                .map(move |metric| Rule { kind, metric })
        })
        .collect()
});

/// The CloudWatch dimensions naming a resource's metrics (none: it has no
/// metrics, so it is never busy by them).
pub fn dimensions(id: &ResourceId) -> Vec<(&'static str, String)> {
    id.kind()
        .spec()
        .dimensions
        .iter()
        .map(|&(name, index)| (name, id.part(index).to_string()))
        .collect()
}

/// One metric read: a `MetricStat` query of `GetMetricData`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricQuery {
    pub namespace: &'static str,
    pub metric: &'static str,
    pub dimensions: Vec<(&'static str, String)>,
    pub stat: &'static str,
}

/// One datapoint read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Datapoint {
    pub at: SystemTime,
    pub value: f64,
}

/// The queries of one region and profile: one `GetMetricData` call.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub region: String,
    pub profile: Option<String>,
    pub queries: Vec<MetricQuery>,
    /// For each query, the candidate it is about and its rule in [`RULES`].
    owners: Vec<(usize, usize)>,
}

/// A query and who it is for: (candidate, rule).
type Owned = (MetricQuery, (usize, usize));

/// The metric reads for a sleep's candidates (resource and profile), by
/// the enabled rules, batched per region and profile and at most
/// [`MAX_QUERIES_PER_CALL`] queries a batch.
pub fn plan(candidates: &[(ResourceId, Option<String>)], settings: &BusySettings) -> Vec<Batch> {
    let mut groups: BTreeMap<(String, Option<String>), Vec<Owned>> = BTreeMap::new();
    for (i, (id, profile)) in candidates.iter().enumerate() {
        for (r, rule) in RULES.iter().enumerate() {
            if rule.kind != id.kind() || settings.threshold(rule.setting).is_none() {
                continue;
            }
            let group = groups
                .entry((id.region().to_string(), profile.clone()))
                .or_default();
            for metric in rule.metrics {
                let query = MetricQuery {
                    namespace: rule.namespace,
                    metric,
                    dimensions: dimensions(id),
                    stat: rule.reduce.stat(),
                };
                group.push((query, (i, r)));
            }
        }
    }
    let mut batches = Vec::new();
    for ((region, profile), queries) in groups {
        for chunk in queries.chunks(MAX_QUERIES_PER_CALL) {
            let (queries, owners) = chunk.iter().cloned().unzip();
            batches.push(Batch {
                region: region.clone(),
                profile: profile.clone(),
                queries,
                owners,
            });
        }
    }
    batches
}

/// The time range read: the window up to `now`.
pub fn range(now: SystemTime, settings: &BusySettings) -> (SystemTime, SystemTime) {
    (now.checked_sub(settings.window).unwrap_or(now), now)
}

/// What the busy check found about one candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Not at work (or no metrics): it may sleep.
    Idle,
    /// At work: left running, with the reason (`busy: CPU 63 % over 10 min`).
    Busy(String),
    /// Its metrics could not be read: it sleeps (the user's timeout is the
    /// contract), with this note in the report.
    Unread(String),
}

/// `m` minutes, without a fraction when whole.
fn minutes(d: Duration) -> String {
    let m = d.as_secs_f64() / 60.0;
    if m.fract() == 0.0 {
        format!("{m:.0}")
    } else {
        format!("{m:.1}")
    }
}

/// A value as the report shows it: whole above 10, else one decimal.
fn shown(v: f64) -> String {
    if v.abs() >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// The value of `rule` from its metrics' datapoints within the window, or
/// `None` when there are none.
pub fn value(
    rule: &Rule,
    now: SystemTime,
    window: Duration,
    series: &[&[Datapoint]],
) -> Option<f64> {
    // A datapoint is stamped with the start of its period: allow one period
    // before the window (CloudWatch rounds the start down to the minute).
    let from = now.checked_sub(window + Duration::from_secs(PERIOD_SECONDS as u64));
    let points: Vec<f64> = series
        .iter()
        .flat_map(|s| s.iter())
        .filter(|p| from.is_none_or(|from| p.at >= from) && p.at <= now && p.value.is_finite())
        .map(|p| p.value)
        .collect();
    if points.is_empty() {
        return None;
    }
    let total: f64 = points.iter().sum();
    Some(match rule.reduce {
        Reduce::Mean => total / points.len() as f64,
        Reduce::KilobytesPerSecond => total / window.as_secs_f64().max(1.0) / 1000.0,
    })
}

/// The busy reason of `rule` at `value` against `threshold`, if at or above it.
pub fn verdict(rule: &Rule, value: f64, threshold: f64, window: Duration) -> Option<String> {
    (value >= threshold).then(|| {
        format!(
            "busy: {} {} {} over {} min",
            rule.label,
            shown(value),
            rule.unit,
            minutes(window)
        )
    })
}

/// The checks of `candidates` (as many as were planned) from the batches'
/// results (each the datapoints of its queries in order, or why the call
/// failed): the first rule over its threshold makes a candidate busy.
pub fn judge(
    candidates: usize,
    batches: &[Batch],
    results: Vec<Result<Vec<Vec<Datapoint>>, String>>,
    settings: &BusySettings,
    now: SystemTime,
) -> Vec<Check> {
    // Per candidate and rule: the series read for it.
    let mut read: BTreeMap<(usize, usize), Vec<&[Datapoint]>> = BTreeMap::new();
    let mut checks = vec![Check::Idle; candidates];
    for (batch, result) in batches.iter().zip(&results) {
        match result {
            Ok(series) => {
                for (owner, points) in batch.owners.iter().zip(series) {
                    read.entry(*owner).or_default().push(points);
                }
            }
            Err(why) => {
                for (i, _) in &batch.owners {
                    if let Some(c) = checks.get_mut(*i) {
                        *c = Check::Unread(format!("busy check skipped: CloudWatch: {why}"));
                    }
                }
            }
        }
    }
    for ((i, r), series) in read {
        let (Some(rule), Some(check)) = (RULES.get(r), checks.get_mut(i)) else {
            continue;
        };
        if matches!(check, Check::Busy(_)) {
            continue;
        }
        let (Some(threshold), Some(v)) = (
            settings.threshold(rule.setting),
            value(rule, now, settings.window, &series),
        ) else {
            continue;
        };
        if let Some(reason) = verdict(rule, v, threshold, settings.window) {
            *check = Check::Busy(reason);
        }
    }
    checks
}

pub use crate::core::model::resource::Deployment;

/// Whether an ECS service's deployments show a rollout under way (more than
/// one deployment, or one `IN_PROGRESS`), unless it started more than
/// [`STUCK_DEPLOYMENT`] ago; the reason if so.
pub fn deploying(now: SystemTime, deployments: &[Deployment]) -> Option<String> {
    let rolling = deployments.len() > 1 || deployments.iter().any(|d| d.in_progress);
    let newest = deployments.iter().filter_map(|d| d.created).max();
    let stuck = newest.is_some_and(|t| {
        now.duration_since(t)
            .is_ok_and(|age| age > STUCK_DEPLOYMENT)
    });
    (rolling && !stuck).then(|| match deployments.len() {
        n if n > 1 => format!("busy: ECS deployment in progress ({n} deployments)"),
        _ => "busy: ECS deployment in progress".to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::settings::Settings;

    fn settings(json: &str) -> BusySettings {
        Settings::parse(json).unwrap().0.busy
    }

    fn ec2(n: usize, region: &str) -> (ResourceId, Option<String>) {
        (
            ResourceId::new(Kind::Ec2, [format!("i-{n:017x}")], region),
            None,
        )
    }

    fn ecs(name: &str) -> (ResourceId, Option<String>) {
        (ResourceId::new(Kind::Ecs, ["dev", name], "eu-west-1"), None)
    }

    fn at(now: SystemTime, secs_ago: u64, value: f64) -> Datapoint {
        Datapoint {
            at: now - Duration::from_secs(secs_ago),
            value,
        }
    }

    #[test]
    fn thresholds_make_busy_with_the_reason() {
        let s = settings("{}");
        let now = SystemTime::now();
        let cpu = &RULES[0];
        let w = s.window;
        let points = [at(now, 60, 70.0), at(now, 120, 56.0)];
        let v = value(cpu, now, w, &[&points]).unwrap();
        assert_eq!(v, 63.0);
        assert_eq!(
            verdict(cpu, v, 10.0, w).as_deref(),
            Some("busy: CPU 63 % over 10 min")
        );
        assert_eq!(verdict(cpu, 9.9, 10.0, w), None, "below the threshold");
        assert!(verdict(cpu, 10.0, 10.0, w).is_some(), "at the threshold");
        // Old datapoints (before the window) do not count; none: no value.
        let old = [at(now, 3600, 90.0)];
        assert_eq!(value(cpu, now, w, &[&old]), None);
        assert_eq!(value(cpu, now, w, &[]), None);
        // Network: both directions' byte sums per second of the window.
        let net = &RULES[1];
        let (rx, tx) = ([at(now, 60, 40_000_000.0)], [at(now, 60, 20_000_000.0)]);
        let v = value(net, now, w, &[&rx, &tx]).unwrap();
        assert_eq!(v, 100.0, "60 MB over 600 s");
        assert_eq!(
            verdict(net, v, 100.0, w).as_deref(),
            Some("busy: network 100 kB/s over 10 min")
        );
        assert_eq!(
            verdict(cpu, 5.25, 5.0, Duration::from_secs(90)).as_deref(),
            Some("busy: CPU 5.2 % over 1.5 min")
        );
    }

    #[test]
    fn disabled_metrics_and_kinds_without_metrics_are_not_read() {
        let off = settings(r#"{"busy":{"ec2_cpu_percent":null,"ec2_network_kb_per_second":0}}"#);
        assert!(plan(&[ec2(1, "eu-west-1")], &off).is_empty());
        let eks = (ResourceId::new(Kind::Eks, ["c", "n"], "eu-west-1"), None);
        assert!(plan(&[eks], &settings("{}")).is_empty());
        let b = plan(&[ecs("api")], &settings("{}"));
        assert_eq!(b.len(), 1);
        assert_eq!(
            b[0].queries,
            vec![MetricQuery {
                namespace: "AWS/ECS",
                metric: "CPUUtilization",
                dimensions: vec![("ClusterName", "dev".into()), ("ServiceName", "api".into())],
                stat: "Average",
            }]
        );
    }

    #[test]
    fn reads_are_batched_per_region_in_calls_of_at_most_500_queries() {
        // 300 instances (3 queries each) in one region, 10 in another.
        let mut c: Vec<_> = (0..300).map(|n| ec2(n, "eu-west-1")).collect();
        c.extend((300..310).map(|n| ec2(n, "us-west-2")));
        let batches = plan(&c, &settings("{}"));
        let sizes: Vec<(&str, usize)> = batches
            .iter()
            .map(|b| (b.region.as_str(), b.queries.len()))
            .collect();
        assert_eq!(
            sizes,
            vec![("eu-west-1", 500), ("eu-west-1", 400), ("us-west-2", 30)]
        );
        // A profile is a group of its own (other credentials).
        let mut other = ec2(1, "eu-west-1");
        other.1 = Some("work".into());
        assert_eq!(
            plan(&[ec2(0, "eu-west-1"), other], &settings("{}")).len(),
            2
        );
    }

    #[test]
    fn judge_maps_results_back_and_a_failed_read_is_noted_not_busy() {
        let s = settings("{}");
        let now = SystemTime::now();
        let c = vec![
            ec2(0, "eu-west-1"),
            ec2(1, "eu-west-1"),
            ec2(2, "us-west-2"),
        ];
        let batches = plan(&c, &s);
        assert_eq!(batches.len(), 2);
        // eu-west-1: CPU, NetworkIn, NetworkOut of i-0 then of i-1.
        let busy = vec![at(now, 30, 80.0)];
        let results = vec![
            Ok(vec![
                busy,
                vec![],
                vec![],
                vec![at(now, 30, 1.0)],
                vec![],
                vec![],
            ]),
            Err("AccessDenied: no".to_string()),
        ];
        let checks = judge(3, &batches, results, &s, now);
        assert_eq!(
            checks,
            vec![
                Check::Busy("busy: CPU 80 % over 10 min".into()),
                Check::Idle,
                Check::Unread("busy check skipped: CloudWatch: AccessDenied: no".into()),
            ]
        );
        // Missing results (a short answer) leave a candidate idle; no panic.
        assert_eq!(judge(3, &batches, vec![], &s, now), vec![Check::Idle; 3]);
    }

    #[test]
    fn ecs_deployments_in_progress_are_busy_unless_stuck() {
        let now = SystemTime::now();
        let d = |in_progress, mins_ago: u64| Deployment {
            in_progress,
            created: Some(now - Duration::from_secs(mins_ago * 60)),
        };
        assert_eq!(deploying(now, &[d(false, 5)]), None, "steady");
        assert_eq!(deploying(now, &[]), None);
        assert_eq!(
            deploying(now, &[d(true, 5)]).as_deref(),
            Some("busy: ECS deployment in progress")
        );
        assert_eq!(
            deploying(now, &[d(false, 5), d(false, 30)]).as_deref(),
            Some("busy: ECS deployment in progress (2 deployments)")
        );
        assert_eq!(
            deploying(now, &[d(true, 61)]),
            None,
            "stuck for over an hour"
        );
        let unknown = Deployment {
            in_progress: true,
            created: None,
        };
        assert!(deploying(now, &[unknown]).is_some());
    }
}
