//! CloudWatch metrics for the busy veto: `GetMetricData`, one call per batch
//! of queries (the core batches them per region, at most 500 a call).

use super::error::aws_err;
use crate::cloud::CloudError;
use crate::core::policy::busy::{Datapoint, MetricQuery, PERIOD_SECONDS};
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};
use aws_sdk_cloudwatch::Client;
use std::time::SystemTime;

/// The `MetricDataQuery` of query number `n`.
fn query(n: usize, q: &MetricQuery) -> MetricDataQuery {
    let mut metric = Metric::builder()
        .namespace(q.namespace)
        .metric_name(q.metric);
    for (name, value) in &q.dimensions {
        metric = metric.dimensions(Dimension::builder().name(*name).value(value).build());
    }
    MetricDataQuery::builder()
        .id(format!("q{n}"))
        .metric_stat(
            MetricStat::builder()
                .metric(metric.build())
                .period(PERIOD_SECONDS)
                .stat(q.stat)
                .build(),
        )
        .return_data(true)
        .build()
}

/// The datapoints of each of `queries`, in order, from `start` to `end`:
/// one `GetMetricData` call, and one more per further page of results.
pub(super) async fn metric_data(
    cw: &Client,
    queries: &[MetricQuery],
    (start, end): (SystemTime, SystemTime),
) -> Result<Vec<Vec<Datapoint>>, CloudError> {
    let mut out = vec![Vec::new(); queries.len()];
    if queries.is_empty() {
        return Ok(out);
    }
    let mut token: Option<String> = None;
    loop {
        let page = cw
            .get_metric_data()
            .set_metric_data_queries(Some(
                queries
                    .iter()
                    .enumerate()
                    .map(|(n, q)| query(n, q))
                    .collect(),
            ))
            .start_time(DateTime::from(start))
            .end_time(DateTime::from(end))
            .set_next_token(token.take())
            .send()
            .await
            .map_err(aws_err)?;
        for result in page.metric_data_results() {
            let slot = result
                .id()
                .and_then(|id| id.strip_prefix('q'))
                .and_then(|n| n.parse::<usize>().ok())
                .and_then(|n| out.get_mut(n));
            let Some(slot) = slot else { continue };
            slot.extend(
                result
                    .timestamps()
                    .iter()
                    .zip(result.values())
                    .filter_map(|(t, v)| {
                        Some(Datapoint {
                            at: SystemTime::try_from(*t).ok()?,
                            value: *v,
                        })
                    }),
            );
        }
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => return Ok(out),
        }
    }
}
