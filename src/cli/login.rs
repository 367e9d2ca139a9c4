//! `cloudnap login`: signs an SSO profile in (the device authorization of
//! `cloud::aws::sso`), then tells the running cloudnap, whose waiting wake
//! is tried again at once.

use crate::*;
use cloudnap::cloud::aws::sso::{self, Progress, Which};
use cloudnap::core::config::sso::utc_text;
use cloudnap::store::{aws_files, sso_cache};
use std::io::Write;

/// `cloudnap login [--profile P]`: prints the page and the code, opens the
/// page in the browser (unless `browser` is off), waits for the approval,
/// writes the token cache and sends `USER_ACTIVITY` to the daemon at `to`
/// (default: from settings.json), since the user is here.
pub(crate) fn login(
    paths: &Paths,
    profile: Option<String>,
    browser: bool,
    to: Option<SocketAddr>,
) -> Result<ExitCode> {
    let settings = paths.load_settings().map(|(s, _)| s).unwrap_or_default();
    let (_, config_file) = aws_files::files()?;
    let cache_dir = sso_cache::dir()?;
    let which = Which {
        wanted: profile,
        default: settings.aws.profile.clone(),
        endpoint_url: None,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut progress = |p: Progress| {
        match p {
            Progress::Prompt(prompt) => {
                println!(
                    "To sign in, open\n  {}\nand enter the code {}\nWaiting for the sign-in to be approved…",
                    prompt.verification_uri, prompt.user_code
                );
                if browser {
                    if let Err(e) = cloudnap::ui::shell::open_url(prompt.url()) {
                        println!("(no browser opened: {e})");
                    }
                }
            }
            Progress::SlowerPolling(every) => {
                tracing::info!("asked to poll more slowly: every {} s", every.as_secs())
            }
        }
        let _ = std::io::stdout().flush();
    };
    let signed = match rt.block_on(sso::login(&config_file, &cache_dir, &which, &mut progress)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_FAILED));
        }
    };
    println!(
        "Signed in: profile {} until {}; token saved in {}",
        signed.profile.describe(),
        utc_text(signed.expires_at),
        signed.path.display()
    );
    let (default_to, datagram) = daemon_request(&settings, "USER_ACTIVITY");
    let told = rt.block_on(client::request(
        to.unwrap_or(default_to),
        datagram.as_bytes(),
        Duration::from_secs(2),
    ));
    match told {
        Ok(_) => println!("cloudnap tries its waiting wake again now"),
        Err(e) => tracing::debug!("no running cloudnap told: {e}"),
    }
    Ok(ExitCode::SUCCESS)
}
