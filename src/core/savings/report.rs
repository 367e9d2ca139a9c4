//! Savings: from the sleep/wake history, per resource the time awake and
//! asleep over a period, the money sleeping saved and what kept costing while
//! asleep, with the source of every price; and the report's text and HTML
//! forms. Pure: takes the events, the period and a [`PriceBook`].

use crate::core::model::history::{Change, HistoryEvent};
use crate::core::model::resource::{Capacity, Desired, Facts, ResourceId, Running, Scaling};
use crate::core::savings::prices::{
    is_redshift_node, PriceBook, PriceItem, Source, Wanted, ASSUMPTIONS,
};
use crate::core::savings::waits::{waits, Waits};
use chrono::{NaiveDate, TimeZone, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// A `--since` that is neither `Nd`, `Nh` nor a date.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a period: use e.g. 7d, 30d, 12h or a date (2026-11-01)")]
pub struct BadSince(pub String);

/// The start of the period `since` (`7d`, `12h`, `2026-11-01` UTC) ending
/// at `now` (unix seconds).
pub fn parse_since(since: &str, now: f64) -> Result<f64, BadSince> {
    let bad = || BadSince(since.to_string());
    let s = since.trim();
    let count = |unit: char| -> Option<f64> {
        let n: f64 = s.strip_suffix(unit)?.parse().ok()?;
        (n.is_finite() && n >= 0.0).then_some(n)
    };
    if let Some(d) = count('d') {
        return Ok(now - d * 86_400.0);
    }
    if let Some(h) = count('h') {
        return Ok(now - h * 3_600.0);
    }
    let date = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| bad())?;
    let start = date.and_hms_opt(0, 0, 0).ok_or_else(bad)?;
    Ok(Utc.from_utc_datetime(&start).timestamp() as f64)
}

/// One resource over the period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResourceSavings {
    pub resource: ResourceId,
    pub kind: String,
    pub id: String,
    pub region: String,
    pub awake_seconds: f64,
    pub asleep_seconds: f64,
    /// Dollars not spent while asleep.
    pub saved_usd: f64,
    /// Dollars spent anyway while asleep (EBS, Elastic IPs, EKS control plane).
    pub still_costing_usd: f64,
    /// Whether it is asleep at the end of the period.
    pub asleep_now: bool,
    /// Where the prices came from (`price_list`, `estimate`).
    pub sources: Vec<Source>,
    /// What could not be priced, and other remarks.
    pub notes: Vec<String>,
    /// The asleep intervals inside the period, unix seconds.
    pub asleep: Vec<(f64, f64)>,
    /// When the period starts for it: the period's start, or its first
    /// history line if later (awake time is counted from here).
    pub tracked_since: f64,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SavingsReport {
    /// Start and end of the period, unix seconds.
    pub since: f64,
    pub until: f64,
    pub resources: Vec<ResourceSavings>,
    pub totals: Totals,
    pub assumptions: &'static str,
    /// Lines of the history that were skipped, and similar.
    pub warnings: Vec<String>,
    /// How long woken resources took to be usable, if any did in the period.
    pub waits: Option<Waits>,
}

/// Sums over every resource.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Totals {
    pub asleep_seconds: f64,
    pub saved_usd: f64,
    pub still_costing_usd: f64,
    pub sources: Vec<Source>,
}

/// What one sleep turns off and leaves costing, per hour.
#[derive(Debug, Default)]
struct Rates {
    saved: f64,
    still: f64,
    sources: BTreeSet<Source>,
    notes: Vec<String>,
}

impl Rates {
    fn add(&mut self, prices: &PriceBook, item: PriceItem, count: f64, still: bool, what: &str) {
        match prices.price(&item) {
            Some(p) => {
                let v = p.usd_per_hour * count;
                if still {
                    self.still += v;
                } else {
                    self.saved += v;
                }
                self.sources.insert(p.source);
            }
            None => self.notes.push(format!("no price for {what}")),
        }
    }
}

/// The hourly rates of a sleep of `id` that saved `saved`, made of `facts`;
/// `control_plane`: this nodegroup carries its cluster's control plane.
fn rates(
    prices: &PriceBook,
    id: &ResourceId,
    saved: Option<Capacity>,
    facts: Option<&Facts>,
    control_plane: bool,
) -> Rates {
    let mut r = Rates::default();
    let region = id.region();
    let Some(facts) = facts else {
        r.notes.push("no facts recorded: not priced".into());
        return r;
    };
    match saved.map(|c| c.level) {
        Some(Running(_)) => r.instance(prices, region, facts),
        Some(Desired(desired)) => r.service(prices, region, facts, desired),
        Some(Scaling { desired, .. }) => {
            match facts.instance_types.first() {
                Some(t) => r.add(
                    prices,
                    instance_item(region, t, None),
                    f64::from(desired.max(0)),
                    false,
                    t,
                ),
                None => r.notes.push("instance type unknown".into()),
            }
            if control_plane {
                let item = PriceItem::EksControlPlane {
                    region: region.to_string(),
                };
                r.add(prices, item, 1.0, true, "EKS control plane");
            }
        }
        None => r.notes.push("no saved capacity: not priced".into()),
    }
    r
}

/// An instance of type `t` running `os` (Linux unless it says Windows); a
/// SageMaker ML instance for an `ml.` type; a Redshift node for a node type.
fn instance_item(region: &str, t: &str, os: Option<&str>) -> PriceItem {
    if is_redshift_node(t) {
        return PriceItem::RedshiftNode {
            region: region.to_string(),
            node_type: t.to_string(),
        };
    }
    if t.starts_with("ml.") {
        return PriceItem::MlInstance {
            region: region.to_string(),
            instance_type: t.to_string(),
        };
    }
    PriceItem::Instance {
        region: region.to_string(),
        instance_type: t.to_string(),
        os: match os {
            Some(os) if os.to_ascii_lowercase().starts_with("windows") => "Windows".into(),
            _ => "Linux".into(),
        },
    }
}

impl Rates {
    /// A stopped instance: its compute is saved, its volumes and public
    /// addresses still cost.
    fn instance(&mut self, prices: &PriceBook, region: &str, facts: &Facts) {
        match &facts.instance_type {
            Some(t) => {
                let item = instance_item(region, t, facts.os.as_deref());
                let count = f64::from(facts.nodes.max(1));
                self.add(prices, item, count, false, t)
            }
            None => self.notes.push("instance type unknown".into()),
        }
        for v in &facts.volumes {
            let item = PriceItem::EbsGb {
                region: region.to_string(),
                volume_type: v.volume_type.clone(),
            };
            let what = format!("EBS {}", v.volume_type);
            self.add(prices, item, f64::from(v.gb), true, &what);
        }
        if facts.public_ipv4 > 0 {
            let item = PriceItem::PublicIpv4 {
                region: region.to_string(),
            };
            let count = f64::from(facts.public_ipv4);
            self.add(prices, item, count, true, "public IPv4");
        }
    }

    /// A service at 0 of `desired` tasks: Fargate tasks are saved; tasks on
    /// EC2 capacity are counted on their instances.
    fn service(&mut self, prices: &PriceBook, region: &str, facts: &Facts, desired: i32) {
        match facts.launch_type.as_deref() {
            Some("FARGATE") => match (facts.task_cpu_units, facts.task_memory_mib) {
                (Some(cpu), Some(mib)) => {
                    let tasks = f64::from(desired.max(0));
                    let vcpu = PriceItem::FargateVcpu {
                        region: region.to_string(),
                    };
                    let gb = PriceItem::FargateGb {
                        region: region.to_string(),
                    };
                    let vcpus = tasks * f64::from(cpu) / 1024.0;
                    self.add(prices, vcpu, vcpus, false, "Fargate vCPU");
                    let gibs = tasks * f64::from(mib) / 1024.0;
                    self.add(prices, gb, gibs, false, "Fargate memory");
                }
                _ => self.notes.push("task size unknown".into()),
            },
            Some(_) => (self.notes).push("runs on EC2 capacity: counted on its instances".into()),
            None => self.notes.push("launch type unknown".into()),
        }
    }
}

/// The nodegroup of each EKS cluster that carries the cluster's control plane
/// (the first by name), so it is counted once per cluster.
fn control_plane_carriers(events: &[HistoryEvent]) -> BTreeSet<ResourceId> {
    let mut first: BTreeMap<(String, String), ResourceId> = BTreeMap::new();
    for e in events {
        if e.resource.kind().spec().control_plane {
            let cluster = e.resource.part(0).to_string();
            let slot = first
                .entry((e.resource.region().to_string(), cluster))
                .or_insert_with(|| e.resource.clone());
            if e.resource < *slot {
                *slot = e.resource.clone();
            }
        }
    }
    first.into_values().collect()
}

/// The items a report over `[since, now]` from `events` prices, each once
/// (so their prices can be looked up beforehand).
pub fn items_to_price(events: &[HistoryEvent], since: f64, now: f64) -> Vec<PriceItem> {
    let wanted = Wanted::default();
    compute(
        events,
        since,
        now,
        &PriceBook::with_first(Box::new(wanted.clone())),
    );
    wanted.items()
}

/// The report over `[since, now]` from `events` (any order), priced by
/// `prices`. A sleep with no wake is asleep until `now`; a second sleep
/// while asleep continues the first; a wake with no sleep is ignored. Only
/// resources that slept or woke in the period, or slept through part of
/// it, are listed.
pub fn compute(events: &[HistoryEvent], since: f64, now: f64, prices: &PriceBook) -> SavingsReport {
    let since = since.min(now);
    let carriers = control_plane_carriers(events);
    let mut by_resource: BTreeMap<&ResourceId, Vec<&HistoryEvent>> = BTreeMap::new();
    for e in events.iter().filter(|e| e.change != Change::Ready) {
        by_resource.entry(&e.resource).or_default().push(e);
    }
    let period = Period { since, now, prices };
    let resources: Vec<ResourceSavings> = (by_resource.into_iter())
        .filter_map(|(id, evs)| period.resource(id, evs, carriers.contains(id)))
        .collect();
    let mut totals = Totals::default();
    let mut sources = BTreeSet::new();
    for r in &resources {
        totals.asleep_seconds += r.asleep_seconds;
        totals.saved_usd += r.saved_usd;
        totals.still_costing_usd += r.still_costing_usd;
        sources.extend(r.sources.iter().copied());
    }
    totals.sources = sources.into_iter().collect();
    SavingsReport {
        since,
        until: now,
        resources,
        totals,
        assumptions: ASSUMPTIONS,
        warnings: Vec::new(),
        waits: waits(events, since, now),
    }
}

/// A report's period and prices.
struct Period<'a> {
    since: f64,
    now: f64,
    prices: &'a PriceBook,
}

impl Period<'_> {
    /// The savings of `id` from its events; `None` when it neither slept
    /// nor woke in the period, nor slept through part of it (so a report
    /// never needs the history files of months that ended before it).
    fn resource(
        &self,
        id: &ResourceId,
        mut evs: Vec<&HistoryEvent>,
        carrier: bool,
    ) -> Option<ResourceSavings> {
        let Period { since, now, .. } = *self;
        evs.sort_by(|a, b| a.at.total_cmp(&b.at));
        let mut out = ResourceSavings {
            resource: id.clone(),
            kind: id.kind().to_string(),
            id: id.name(),
            region: id.region().to_string(),
            awake_seconds: 0.0,
            asleep_seconds: 0.0,
            saved_usd: 0.0,
            still_costing_usd: 0.0,
            asleep_now: false,
            sources: Vec::new(),
            notes: Vec::new(),
            asleep: Vec::new(),
            tracked_since: since,
        };
        let (mut sources, mut notes) = (BTreeSet::new(), BTreeSet::new());
        let mut close = |start: &HistoryEvent, end: f64, out: &mut ResourceSavings| {
            let (a, b) = (start.at.max(since), end.min(now));
            if b <= a {
                return;
            }
            let r = rates(self.prices, id, start.saved, start.facts.as_ref(), carrier);
            let hours = (b - a) / 3600.0;
            out.asleep_seconds += b - a;
            out.saved_usd += r.saved * hours;
            out.still_costing_usd += r.still * hours;
            out.asleep.push((a, b));
            sources.extend(r.sources);
            notes.extend(r.notes);
        };
        let mut open: Option<&HistoryEvent> = None;
        for e in &evs {
            match (e.change, open) {
                (Change::Sleep, None) => open = Some(e),
                (Change::Wake, Some(start)) => {
                    close(start, e.at, &mut out);
                    open = None;
                }
                // Asleep already, or awake already: nothing changes.
                (Change::Sleep, Some(_)) | (Change::Wake, None) | (Change::Ready, _) => {}
            }
        }
        if let Some(start) = open {
            close(start, now, &mut out);
            out.asleep_now = start.at <= now;
        }
        let in_period = evs.iter().any(|e| (since..=now).contains(&e.at));
        if !in_period && out.asleep.is_empty() && !out.asleep_now {
            return None;
        }
        let first = evs.first().map_or(since, |e| e.at).max(since);
        out.awake_seconds = ((now - first) - out.asleep_seconds).max(0.0);
        out.tracked_since = first.min(now);
        out.sources = sources.into_iter().collect();
        out.notes = notes.into_iter().collect();
        Some(out)
    }
}

fn sources_text(sources: &[Source]) -> String {
    if sources.is_empty() {
        return "-".into();
    }
    sources
        .iter()
        .map(|s| s.name())
        .collect::<Vec<_>>()
        .join("+")
}

fn date(at: f64) -> String {
    Utc.timestamp_opt(at as i64, 0)
        .single()
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

/// Cuts `s` to at most `n` characters, marking the cut with `…`.
fn fit(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The HTML page's end: how long the user waited, and the warnings.
fn notes_html(r: &SavingsReport) -> String {
    let waits = (r.waits.as_ref())
        .map(|w| format!("<p id=\"waits\">{}</p>", esc(&w.text())))
        .unwrap_or_default();
    let warnings: String = (r.warnings.iter())
        .map(|w| format!("<li>{}</li>", esc(w)))
        .collect();
    format!("{waits}<ul>{warnings}</ul>")
}

/// The report as a plain-text table (at most 100 columns), rounded.
pub fn format_text(r: &SavingsReport) -> String {
    let mut s = format!("Savings from {} to {}\n\n", date(r.since), date(r.until));
    let row = |kind: &str,
               region: &str,
               name: &str,
               awake: &str,
               asleep: &str,
               saved: &str,
               still: &str,
               src: &str| {
        format!("{kind:<4} {region:<14} {name:<22} {awake:>8} {asleep:>8} {saved:>9} {still:>8} {src}\n")
    };
    s.push_str(&row(
        "KIND", "REGION", "RESOURCE", "AWAKE h", "ASLEEP h", "SAVED $", "STILL $", "PRICES",
    ));
    for x in &r.resources {
        s.push_str(&row(
            &x.kind,
            &fit(&x.region, 14),
            &fit(&x.id, 22),
            &format!("{:.1}", x.awake_seconds / 3600.0),
            &format!("{:.1}", x.asleep_seconds / 3600.0),
            &format!("{:.2}", x.saved_usd),
            &format!("{:.2}", x.still_costing_usd),
            &fit(&sources_text(&x.sources), 20),
        ));
    }
    s.push_str(&row(
        "",
        "TOTAL",
        "",
        "",
        &format!("{:.1}", r.totals.asleep_seconds / 3600.0),
        &format!("{:.2}", r.totals.saved_usd),
        &format!("{:.2}", r.totals.still_costing_usd),
        &sources_text(&r.totals.sources),
    ));
    for x in &r.resources {
        for n in &x.notes {
            let _ = writeln!(
                s,
                "{}",
                fit(&format!("note: {} {}: {n}", x.kind, x.id), 100)
            );
        }
    }
    if let Some(w) = &r.waits {
        let _ = writeln!(s, "\n{}", w.text());
    }
    s.push('\n');
    s.push_str(&wrap(&format!("Assumptions: {}.", r.assumptions), 100));
    if r.totals.sources.contains(&Source::Estimate) {
        s.push_str(&wrap(
            "`estimate`: the price table shipped with cloudnap (the Price List API was not used).",
            100,
        ));
    }
    s
}

/// `text` broken into lines of at most `width` characters at spaces.
fn wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            out.push_str(&line);
            out.push('\n');
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The report as one self-contained HTML page: totals, a table and an SVG
/// timeline per resource (awake/asleep bars over the period). No scripts,
/// no network.
pub fn format_html(r: &SavingsReport) -> String {
    const W: f64 = 900.0;
    let span = (r.until - r.since).max(1.0);
    let x = |t: f64| (t - r.since) / span * W;
    let mut rows = String::new();
    let mut bars = String::new();
    for (i, res) in r.resources.iter().enumerate() {
        let y = 28.0 * i as f64;
        let _ = write!(
            bars,
            "<g class=\"timeline-row\" data-resource=\"{}\" transform=\"translate(0,{y})\">\
             <text x=\"0\" y=\"15\">{}</text>\
             <rect class=\"awake\" x=\"{:.2}\" y=\"2\" width=\"{:.2}\" height=\"18\"/>",
            esc(&res.id),
            esc(&fit(&format!("{} {}", res.kind, res.id), 34)),
            260.0 + x(res.tracked_since),
            W - x(res.tracked_since),
        );
        for (a, b) in &res.asleep {
            let _ = write!(
                bars,
                "<rect class=\"asleep\" x=\"{:.2}\" y=\"2\" width=\"{:.2}\" height=\"18\"><title>asleep {} – {}</title></rect>",
                260.0 + x(*a),
                (x(*b) - x(*a)).max(0.5),
                date(*a),
                date(*b)
            );
        }
        bars.push_str("</g>");
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>${:.2}</td><td>${:.2}</td><td>{}</td><td>{}</td></tr>",
            esc(&res.kind),
            esc(&res.region),
            esc(&res.id),
            res.awake_seconds / 3600.0,
            res.asleep_seconds / 3600.0,
            res.saved_usd,
            res.still_costing_usd,
            sources_text(&res.sources),
            esc(&res.notes.join("; "))
        );
    }
    let height = 28.0 * r.resources.len() as f64 + 30.0;
    let notes = notes_html(r);
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>cloudnap savings</title>\
<style>body{{font-family:sans-serif;margin:24px;color:#222}}table{{border-collapse:collapse}}\
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:nth-child(-n+3),th:nth-child(-n+3){{text-align:left}}\
.awake{{fill:#e8a33d}}.asleep{{fill:#3d7be8}}.totals{{font-size:1.3em}}svg text{{font-size:12px}}</style></head><body>\
<h1>cloudnap savings</h1><p>{} to {}</p>\
<p class=\"totals\">Saved <b>${:.2}</b> · still costing while asleep ${:.2} · asleep {:.1} h in all · prices: {}</p>\
<h2>Timeline</h2><p><span style=\"color:#e8a33d\">■</span> awake <span style=\"color:#3d7be8\">■</span> asleep</p>\
<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" id=\"timeline\">{bars}\
<text x=\"260\" y=\"{}\">{}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text></svg>\
<h2>Per resource</h2><table><tr><th>kind</th><th>region</th><th>resource</th><th>awake h</th><th>asleep h</th>\
<th>saved</th><th>still costing</th><th>prices</th><th>notes</th></tr>{rows}</table>\
<p>Assumptions: {}. <code>estimate</code>: the price table shipped with cloudnap; <code>price_list</code>: the AWS Price List API.</p>\
{notes}</body></html>\n",
        date(r.since),
        date(r.until),
        r.totals.saved_usd,
        r.totals.still_costing_usd,
        r.totals.asleep_seconds / 3600.0,
        sources_text(&r.totals.sources),
        W + 270.0,
        height - 4.0,
        date(r.since),
        W + 260.0,
        height - 4.0,
        date(r.until),
        esc(r.assumptions),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::history::Trigger;
    use crate::core::model::resource::Volume;
    use crate::kinds::Kind;

    const H: f64 = 3600.0;
    const T0: f64 = 1_762_000_000.0;

    fn ec2(n: &str) -> ResourceId {
        ResourceId::new(Kind::Ec2, [n], "us-east-1")
    }

    fn t3_micro() -> Facts {
        Facts {
            instance_type: Some("t3.micro".into()),
            os: Some("Linux/UNIX".into()),
            ..Facts::default()
        }
    }

    fn sleep(id: &ResourceId, at: f64, saved: Capacity, facts: Facts) -> HistoryEvent {
        HistoryEvent {
            at,
            change: Change::Sleep,
            resource: id.clone(),
            saved: Some(saved),
            trigger: Trigger::Idle,
            facts: Some(facts),
            ready_after_seconds: None,
        }
    }

    fn wake(id: &ResourceId, at: f64) -> HistoryEvent {
        HistoryEvent {
            at,
            change: Change::Wake,
            resource: id.clone(),
            saved: None,
            trigger: Trigger::Idle,
            facts: None,
            ready_after_seconds: None,
        }
    }

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-9, "{a} != {b}");
    }

    const UP: Capacity = Capacity::of(Kind::Ec2, Running(true));

    #[test]
    fn ten_hours_of_a_t3_micro_save_ten_cents_and_four_tenths() {
        let a = ec2("i-a");
        let events = [sleep(&a, T0, UP, t3_micro()), wake(&a, T0 + 10.0 * H)];
        let r = compute(&events, T0 - 2.0 * H, T0 + 12.0 * H, &PriceBook::default());
        let x = &r.resources[0];
        close(x.asleep_seconds, 10.0 * H);
        close(x.awake_seconds, 2.0 * H);
        close(x.tracked_since, T0);
        close(x.saved_usd, 0.104);
        close(x.still_costing_usd, 0.0);
        assert_eq!(x.sources, [Source::Estimate]);
        assert!(!x.asleep_now);
        close(r.totals.saved_usd, 0.104);
    }

    #[test]
    fn a_paused_redshift_cluster_saves_each_of_its_nodes() {
        let dw = ResourceId::new(Kind::RedshiftCluster, ["dw"], "us-east-1");
        let facts = Facts {
            instance_type: Some("ra3.xlplus".into()),
            nodes: 2,
            ..Facts::default()
        };
        let up = Capacity::of(Kind::RedshiftCluster, Running(true));
        let events = [sleep(&dw, T0, up, facts), wake(&dw, T0 + 10.0 * H)];
        let r = compute(&events, T0, T0 + 10.0 * H, &PriceBook::default());
        close(r.resources[0].saved_usd, 2.0 * 1.086 * 10.0);
        assert_eq!(
            items_to_price(&events, T0, T0 + 10.0 * H),
            [PriceItem::RedshiftNode {
                region: "us-east-1".into(),
                node_type: "ra3.xlplus".into()
            }]
        );
    }

    #[test]
    fn a_wake_that_never_came_counts_to_now_and_volumes_keep_costing() {
        let a = ec2("i-a");
        let mut facts = t3_micro();
        facts.volumes = vec![Volume {
            gb: 730,
            volume_type: "gp3".into(),
        }];
        facts.public_ipv4 = 2;
        let events = [sleep(&a, T0, UP, facts)];
        let r = compute(&events, T0 - H, T0 + 5.0 * H, &PriceBook::default());
        let x = &r.resources[0];
        assert!(x.asleep_now);
        close(x.asleep_seconds, 5.0 * H);
        close(x.saved_usd, 0.052);
        // 730 GB of gp3 at $0.08/GB-month is $0.08/h; two IPv4 $0.01/h.
        close(x.still_costing_usd, 5.0 * 0.09);
    }

    #[test]
    fn the_items_to_price_are_what_the_period_s_sleeps_are_made_of() {
        let (a, b) = (ec2("i-a"), ec2("i-b"));
        let mut facts = t3_micro();
        facts.volumes = vec![Volume {
            gb: 8,
            volume_type: "gp3".into(),
        }];
        let events = [
            sleep(&a, T0, UP, facts),
            wake(&a, T0 + H),
            // Slept and woke before the period: not priced.
            sleep(&b, T0 - 3.0 * H, UP, t3_micro()),
            wake(&b, T0 - 2.0 * H),
        ];
        let mut items = items_to_price(&events, T0 - H, T0 + 2.0 * H);
        items.sort_by_key(|i| format!("{i:?}"));
        let region = || "us-east-1".to_string();
        assert_eq!(
            items,
            [
                PriceItem::EbsGb {
                    region: region(),
                    volume_type: "gp3".into()
                },
                PriceItem::Instance {
                    region: region(),
                    instance_type: "t3.micro".into(),
                    os: "Linux".into()
                },
            ]
        );
    }

    #[test]
    fn only_resources_that_slept_or_woke_in_the_period_are_listed() {
        let (a, b, c) = (ec2("i-a"), ec2("i-b"), ec2("i-c"));
        let events = [
            // Awake since before the period: not listed.
            sleep(&a, T0, UP, t3_micro()),
            wake(&a, T0 + H),
            // Asleep through the start of the period: listed.
            sleep(&b, T0, UP, t3_micro()),
            wake(&b, T0 + 3.0 * H),
            // Woke in the period: listed.
            wake(&c, T0 + 4.0 * H),
        ];
        let r = compute(&events, T0 + 2.0 * H, T0 + 5.0 * H, &PriceBook::default());
        let listed: Vec<_> = r.resources.iter().map(|x| x.id.as_str()).collect();
        assert_eq!(listed, ["i-b", "i-c"]);
        close(r.resources[0].asleep_seconds, H);
        close(r.resources[1].awake_seconds, H);
    }

    #[test]
    fn overlapping_sleeps_count_once_and_the_period_clips() {
        let a = ec2("i-a");
        let events = [
            sleep(&a, T0, UP, t3_micro()),
            sleep(&a, T0 + H, UP, t3_micro()),
            wake(&a, T0 + 4.0 * H),
            wake(&a, T0 + 5.0 * H),
            sleep(&a, T0 + 6.0 * H, UP, t3_micro()),
            wake(&a, T0 + 8.0 * H),
        ];
        let r = compute(&events, T0 + 2.0 * H, T0 + 7.0 * H, &PriceBook::default());
        let x = &r.resources[0];
        // [T0+2h, T0+4h] and [T0+6h, T0+7h].
        close(x.asleep_seconds, 3.0 * H);
        assert_eq!(x.asleep.len(), 2);
        close(x.awake_seconds, 2.0 * H);
        close(x.saved_usd, 3.0 * 0.0104);
    }

    #[test]
    fn each_sleep_is_priced_at_the_capacity_it_saved() {
        let ng = ResourceId::new(Kind::Eks, ["c", "n"], "us-east-1");
        let facts = Facts {
            instance_types: vec!["m5.large".into()],
            ..Facts::default()
        };
        let eks = |d| {
            Capacity::of(
                Kind::Eks,
                Scaling {
                    min: 0,
                    desired: d,
                    max: 5,
                },
            )
        };
        let events = [
            sleep(&ng, T0, eks(2), facts.clone()),
            wake(&ng, T0 + H),
            sleep(&ng, T0 + 2.0 * H, eks(5), facts),
            wake(&ng, T0 + 3.0 * H),
        ];
        let r = compute(&events, T0, T0 + 3.0 * H, &PriceBook::default());
        let x = &r.resources[0];
        close(x.saved_usd, 2.0 * 0.096 + 5.0 * 0.096);
        // The control plane keeps costing $0.10/h while asleep.
        close(x.still_costing_usd, 0.2);
    }

    #[test]
    fn fargate_is_priced_by_task_size_and_ecs_on_ec2_is_not_counted_twice() {
        let svc = |n: &str| ResourceId::new(Kind::Ecs, ["c", n], "us-east-1");
        let fargate = Facts {
            launch_type: Some("FARGATE".into()),
            task_cpu_units: Some(512),
            task_memory_mib: Some(1024),
            ..Facts::default()
        };
        let on_ec2 = Facts {
            launch_type: Some("EC2".into()),
            ..Facts::default()
        };
        let two = Capacity::of(Kind::Ecs, Desired(2));
        let events = [
            sleep(&svc("f"), T0, two, fargate),
            sleep(&svc("e"), T0, two, on_ec2),
        ];
        let r = compute(&events, T0, T0 + H, &PriceBook::default());
        let by = |n: &str| {
            r.resources
                .iter()
                .find(|x| x.id == format!("c/{n}"))
                .unwrap()
        };
        close(by("f").saved_usd, 2.0 * (0.5 * 0.04048 + 0.004445));
        close(by("e").saved_usd, 0.0);
        assert!(by("e").notes[0].contains("counted on its instances"));
    }

    #[test]
    fn since_parses_days_hours_and_dates() {
        assert_eq!(parse_since("7d", 1e6).unwrap(), 1e6 - 7.0 * 86_400.0);
        assert_eq!(parse_since("12h", 1e6).unwrap(), 1e6 - 12.0 * 3600.0);
        assert_eq!(parse_since("1970-01-02", 1e6).unwrap(), 86_400.0);
        assert!(parse_since("soon", 1e6).is_err());
        assert!(parse_since("-3d", 1e6).is_err());
    }

    #[test]
    fn text_fits_100_columns_and_html_has_a_row_per_resource() {
        let events: Vec<HistoryEvent> = (0..3)
            .map(|i| sleep(&ec2(&format!("i-{i:0>40}")), T0, UP, t3_micro()))
            .collect();
        let r = compute(&events, T0, T0 + H, &PriceBook::default());
        let text = format_text(&r);
        assert!(text.lines().all(|l| l.chars().count() <= 100), "{text}");
        let html = format_html(&r);
        assert_eq!(html.matches("class=\"timeline-row\"").count(), 3);
        assert!(!html.contains("<script") && !html.contains("src="));
    }
}
