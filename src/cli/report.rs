//! `cloudnap report`, and the outcome lines of `sleep`/`wake`.

use crate::*;

/// The price book of a report over `events`: the Price List is asked first
/// for the prices it covers that are not cached yet (cached 30 days beside
/// the state), then [`pricing::price_book`], as the daemon prices.
pub(crate) fn price_book(
    paths: &Paths,
    events: &[HistoryEvent],
    since: f64,
    now: f64,
) -> PriceBook {
    let at = SystemTime::now();
    let cache = PriceCache::load(&price_cache::beside(&paths.state));
    let missing = pricing::uncached(&cache, &savings::items_to_price(events, since, now), at);
    if missing.is_empty() {
        return pricing::price_book(cache, at);
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::warn!("no runtime to ask the AWS Price List: {e}");
            return pricing::price_book(cache, at);
        }
    };
    let settings = paths.load_settings().map(|(s, _)| s).unwrap_or_default();
    let cache = rt.block_on(async {
        let list = PriceList::new(&settings.aws, cache).await;
        list.fill(&missing, at).await;
        list.into_cache()
    });
    pricing::price_book(cache, at)
}

/// `cloudnap report`: reads the history, prints the table (or JSON) and
/// writes the HTML page if asked. Skipped history lines are warnings.
pub(crate) fn savings_report(
    paths: &Paths,
    since: &str,
    json: bool,
    html: Option<&std::path::Path>,
) -> Result<ExitCode> {
    let now = now_seconds();
    let since = match parse_since(since, now) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    let report = HistoryFile::beside(&paths.state)
        .report(since, now, |events| price_book(paths, events, since, now))?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if let Some(file) = html {
        write_atomic(file, format_html(&report).as_bytes())
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        eprintln!("wrote {}", file.display());
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", format_text(&report));
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn report(json: bool, outcomes: Vec<Outcome>) -> Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(&outcomes)?);
    } else {
        print!("{}", format_outcomes(&outcomes));
    }
    let failed = outcomes.iter().filter(|o| o.action.is_failure()).count();
    if failed > 0 {
        eprintln!("{failed} resource(s) failed");
        return Ok(ExitCode::from(EXIT_FAILED));
    }
    Ok(ExitCode::SUCCESS)
}
