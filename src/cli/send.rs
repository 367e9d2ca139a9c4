//! `cloudnap send`.

use crate::*;

pub(crate) fn send(
    paths: &Paths,
    timeout: f64,
    to: Option<SocketAddr>,
    command: &str,
) -> Result<ExitCode> {
    let settings = paths.load_settings().map(|(s, _)| s).unwrap_or_default();
    let (default_to, datagram) = daemon_request(&settings, command);
    let to = to.unwrap_or(default_to);
    let timeout = Duration::from_secs_f64(timeout.clamp(0.1, 3600.0));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match rt.block_on(client::request(to, datagram.as_bytes(), timeout)) {
        Ok(reply) => {
            println!("{}", serde_json::to_string_pretty(&reply)?);
            Ok(ExitCode::from(if client::is_error(&reply) {
                EXIT_FAILED
            } else {
                0
            }))
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(EXIT_NO_REPLY))
        }
    }
}
