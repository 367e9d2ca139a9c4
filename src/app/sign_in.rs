//! The SSO sign-in from the daemon (the tray's "Sign in (SSO)…", the
//! notification's "Sign in"): which profile, the device authorization, and
//! the waiting wake tried again at once; and, while resources sleep, when
//! a sign-in will be needed to wake them.

use super::App;
use crate::cloud::aws::sso::{self, LoginError, Progress, SignedIn, Which};
use crate::cloud::CloudControl;
use crate::core::config::sso::sso_profiles;
use crate::core::policy::retry::Cause;
use crate::core::policy::sign_in::sign_in_line;
use crate::store::{aws_files, sso_cache};

/// Local time of `secs` since the Unix epoch.
fn local(secs: i64) -> Option<chrono::NaiveDateTime> {
    use chrono::TimeZone;
    (chrono::Local.timestamp_opt(secs, 0).single()).map(|t| t.naive_local())
}

impl<C: CloudControl> App<C> {
    /// Signs in the SSO profile a waiting wake needs (else the settings'
    /// profile, else the only SSO profile), telling `progress` the code;
    /// once signed in the wake is tried again at once.
    pub async fn sign_in(
        &self,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<SignedIn, LoginError> {
        let waiting = {
            let state = self.lock();
            (state.retry.as_ref()).and_then(|r| {
                (r.pending.iter())
                    .find(|p| matches!(p.cause, Cause::CredentialsExpired | Cause::Credentials))
                    .and_then(|p| p.profile.clone())
            })
        };
        let which = Which {
            wanted: None,
            default: waiting.or_else(|| self.settings().aws.profile.clone()),
            endpoint_url: None,
        };
        let io = |e| LoginError::Config("~/.aws".into(), e);
        let (_, config_file) = aws_files::files().map_err(io)?;
        let cache_dir = sso_cache::dir().map_err(io)?;
        let signed = sso::login(&config_file, &cache_dir, &which, progress).await?;
        tracing::info!(
            "signed in: profile {} ({})",
            signed.profile.describe(),
            signed.path.display()
        );
        self.aws_files_changed(&signed.path);
        Ok(signed)
    }

    /// While resources sleep: by when their SSO profiles must be signed
    /// in again for them to wake (the earliest session end), if any of
    /// their profiles is an SSO profile with a cached token.
    pub(super) fn sign_in_needed(&self, profiles: &[String]) -> Option<String> {
        if profiles.is_empty() {
            return None;
        }
        let (_, config_file) = aws_files::files().ok()?;
        let text = std::fs::read_to_string(config_file).ok()?;
        let dir = sso_cache::dir().ok()?;
        let (profile, ends) = sso_profiles(&text)
            .into_iter()
            .filter(|p| profiles.contains(&p.name))
            .filter_map(|p| Some((p.name.clone(), sso_cache::expires_at(&dir, &p)?)))
            .min_by_key(|(_, ends)| *ends)?;
        let wall = chrono::Local::now().naive_local();
        Some(sign_in_line(&profile, local(ends)?, wall))
    }
}
