//! `cloudnap status` and `cloudnap team`: resources, detectors, the team.

use crate::*;

/// `cloudnap status`: the resources, then the detectors and the team.
pub(crate) async fn status(
    settings: &Settings,
    rows: &[StatusRow],
    json: bool,
) -> Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(rows)?);
    } else {
        print!("{}", format_status(rows));
        print_detectors(settings).await;
        print_team(settings, rows).await;
    }
    let failed = rows.iter().any(|r| r.error.is_some());
    Ok(ExitCode::from(if failed { EXIT_FAILED } else { 0 }))
}

/// `cloudnap send`: one command to the running instance.
/// Where the running cloudnap of `settings` listens, and `command` as it
/// must be sent there (signed with the token, if one is set).
pub(crate) fn daemon_request(settings: &Settings, command: &str) -> (SocketAddr, String) {
    let ip = if settings.udp.ip.is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        settings.udp.ip
    };
    let datagram = match &settings.udp.token {
        Some(token) => client::signed(command, token, SystemTime::now()),
        None => command.to_string(),
    };
    (SocketAddr::new(ip, settings.udp.port), datagram)
}

/// The running daemon's detectors, holds, and why what is up while the
/// user is away is up (`cloudnap status`): it alone knows them.
pub(crate) async fn print_detectors(settings: &Settings) {
    let (to, datagram) = daemon_request(settings, "STATUS");
    let reply = client::request(to, datagram.as_bytes(), Duration::from_millis(500)).await;
    let status = match reply {
        Ok(reply) if !client::is_error(&reply) => reply["result"].clone(),
        _ => {
            println!("\ndetectors: cloudnap run is not answering on {to}");
            return;
        }
    };
    /// The part of `STATUS` about the detectors and the idle timeouts.
    #[derive(serde::Deserialize)]
    struct Seeing {
        inputs: Inputs,
        detectors: Vec<DetectorRow>,
        timeouts: Vec<TimeoutRow>,
    }
    match serde_json::from_value::<Seeing>(status.clone()) {
        Ok(seeing) => {
            println!(
                "\ndetectors (cloudnap run on {to}): inputs {}",
                seeing.inputs.words()
            );
            for row in &seeing.detectors {
                let why = (row.state.why())
                    .map(|w| format!(" ({w})"))
                    .unwrap_or_default();
                let (name, state) = (row.detector.name, row.state.words());
                println!("  {name:<16} {state}{why}");
            }
            print!("{}", timeout_lines(&seeing.timeouts));
        }
        Err(e) => println!("\ndetectors: cannot read the reply of cloudnap run on {to}: {e}"),
    }
    print_inhibitors(&status);
    let holds = status["holds"].as_array().cloned().unwrap_or_default();
    if !holds.is_empty() {
        println!("\nholds (nothing they cover sleeps):");
    }
    for h in &holds {
        let only = h["only"]
            .as_object()
            .map(|_| {
                let id: Option<cloudnap::core::model::resource::ResourceId> =
                    serde_json::from_value(h["only"].clone()).ok();
                id.map_or_else(|| " (one resource)".into(), |id| format!(" ({id} only)"))
            })
            .unwrap_or_default();
        let until = match h["ends_in_seconds"].as_f64() {
            Some(secs) => {
                let at = chrono::Local::now() + chrono::Duration::seconds(secs as i64);
                format!("until {}", at.format("%H:%M"))
            }
            None => "while it runs".into(),
        };
        println!(
            "  {:<4} {}{only}: {until}",
            h["id"],
            h["reason"].as_str().unwrap_or("?")
        );
    }
    if let Some(plan) = status["prewake"].as_str() {
        println!("\n{plan}");
    }
    let awake = status["awake"].as_array().cloned().unwrap_or_default();
    if !awake.is_empty() {
        println!("\nnot asleep while you are away:");
    }
    for row in &awake {
        let id: Option<cloudnap::core::model::resource::ResourceId> =
            serde_json::from_value(row["resource"].clone()).ok();
        let why: Vec<&str> = row["why"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|w| w.as_str())
            .collect();
        println!(
            "  {}: {}",
            id.map_or_else(|| row["resource"].to_string(), |id| id.to_string()),
            why.join("; ")
        );
    }
}

/// The idle timeouts of `STATUS`, when resources have their own
/// (services.yaml's `timeout_minutes`): each group, what it puts to sleep,
/// and whether it sleeps or when. Nothing with only the default one.
fn timeout_lines(rows: &[TimeoutRow]) -> String {
    if rows.len() < 2 {
        return String::new();
    }
    let mut out =
        String::from("\ntimeouts (each sleeps at its own time, any activity wakes all):\n");
    for row in rows {
        let secs = (row.timeout_minutes * 60.0).round() as u64;
        let default = if row.default { " (default)" } else { "" };
        let what: Vec<String> = row.resources.iter().map(|r| r.to_string()).collect();
        let what = match (what.is_empty(), row.default) {
            (true, true) => "the rest".to_string(),
            (true, false) => "nothing".to_string(),
            (false, true) => format!("{} and the rest", what.join(", ")),
            (false, false) => what.join(", "),
        };
        let when = match (row.asleep, row.sleep_in_seconds) {
            (true, _) => "asleep".to_string(),
            (false, Some(s)) => format!("sleeps in {}", human(s.max(0.0).round() as u64)),
            (false, None) => "not counting down".to_string(),
        };
        out += &format!("  {}{default}: {what}: {when}\n", human(secs));
    }
    out
}

/// The idle inhibitors of other programs in a `STATUS` reply: the line
/// saying what keeps resources awake, then each with its verdict.
fn print_inhibitors(status: &serde_json::Value) {
    let rows = status["inhibitors"].as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        return;
    }
    match status["kept_awake_by"].as_str() {
        Some(kept) => println!("\n{kept}"),
        None => println!("\nidle inhibitors (none keeps resources awake now):"),
    }
    for row in &rows {
        let text = |key: &str| row[key].as_str().unwrap_or_default().to_string();
        let verdict = match text("verdict").as_str() {
            "counts" => "counts",
            "ignored" => "ignored (inhibitors.ignore)",
            _ => "no input for inhibitors.max_minutes: not counted",
        };
        let why = text("reason");
        let why = match why.as_str() {
            "" => why,
            w => format!(": \"{w}\""),
        };
        println!("  {}{why} ({}): {verdict}", text("app"), text("via"));
    }
}

/// The team's lines of `cloudnap status`: who is present, and the lock of
/// each shared resource (read from the team table).
pub(crate) async fn print_team(
    settings: &Settings,
    rows: &[cloudnap::core::model::outcome::StatusRow],
) {
    let Some(team) = &settings.team else {
        return;
    };
    let table = TeamTable::connect(team, &settings.aws).await;
    match team_view(&table).await {
        Ok((members, locks)) => {
            println!(
                "team:      {}",
                team::presence_line(&members, table.now(), &wall)
            );
            for l in locks
                .iter()
                .filter(|l| rows.iter().any(|r| r.resource == l.resource))
            {
                println!(
                    "  {} (shared): {}, last by {}",
                    l.resource,
                    l.phase.as_str(),
                    team::display_name(&l.owner)
                );
            }
        }
        Err(e) => println!(
            "team:      table {} unreachable: {e} (shared resources stay up)",
            team.table
        ),
    }
}

/// Every presence item and every lock item of `table`.
pub(crate) async fn team_view(
    table: &TeamTable,
) -> Result<(Vec<team::Presence>, Vec<team::Lock>), cloudnap::cloud::CloudError> {
    Ok((table.presence().await?, table.locks().await?))
}

/// A table time as a local wall-clock time: "14:05".
pub(crate) fn wall(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Local>::from(t)
        .format("%H:%M")
        .to_string()
}

/// `cloudnap team init|status`.
pub(crate) async fn team_command(
    settings: &Settings,
    action: TeamAction,
    json: bool,
) -> Result<ExitCode> {
    let Some(team) = &settings.team else {
        eprintln!("error: team mode is off: set team.table and team.region in settings.json");
        return Ok(ExitCode::from(EXIT_CONFIG));
    };
    let table = TeamTable::connect(team, &settings.aws).await;
    match action {
        TeamAction::Init => match table.init().await {
            Ok(Init::Created) => {
                println!(
                    "table {} created in {} (on-demand billing, TTL on `ttl`)",
                    team.table, team.region
                );
                Ok(ExitCode::SUCCESS)
            }
            Ok(Init::Existed) => {
                println!(
                    "table {} in {}: key schema ok, TTL on",
                    team.table, team.region
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                println!("table {}: FAILED: {e}", team.table);
                Ok(ExitCode::from(EXIT_FAILED))
            }
        },
        TeamAction::Status => {
            let (members, locks) = match team_view(&table).await {
                Ok(found) => found,
                Err(e) => {
                    println!("table {}: FAILED: {e}", team.table);
                    return Ok(ExitCode::from(EXIT_FAILED));
                }
            };
            let now = table.now();
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&team::table_json(&members, &locks, now))?
                );
            } else {
                print!("{}", team::format_table(&members, &locks, now, &wall));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudnap::core::model::resource::ResourceId;

    fn row(
        minutes: f64,
        default: bool,
        ids: &[&str],
        asleep: bool,
        left: Option<f64>,
    ) -> TimeoutRow {
        TimeoutRow {
            timeout_minutes: minutes,
            default,
            resources: (ids.iter())
                .map(|i| ResourceId::new(Kind::Ec2, [*i], "ap-south-1"))
                .collect(),
            asleep,
            warned: false,
            sleep_in_seconds: left,
        }
    }

    #[test]
    fn each_timeout_group_is_a_line_only_when_resources_have_their_own() {
        assert_eq!(
            timeout_lines(&[row(30.0, true, &[], false, Some(60.0))]),
            ""
        );
        let text = timeout_lines(&[
            row(0.1, false, &["i-1"], true, None),
            row(0.34, false, &["i-2"], false, Some(13.6)),
            row(30.0, true, &[], false, Some(1790.0)),
        ]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[2], "  6 s: EC2 i-1 (ap-south-1): asleep", "{text}");
        assert_eq!(
            lines[3], "  20 s: EC2 i-2 (ap-south-1): sleeps in 14 s",
            "{text}"
        );
        assert_eq!(
            lines[4], "  30 min (default): the rest: sleeps in 30 min",
            "{text}"
        );
    }
}
