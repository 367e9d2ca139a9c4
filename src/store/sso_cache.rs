//! The SSO token cache (`~/.aws/sso/cache`), where the AWS CLI v2 and the
//! SDKs look for a signed-in session's token: written atomically, owner
//! only; read for when a session ends.

use crate::core::config::sso::{parse_utc, CachedToken, SsoProfile};
use std::io;
use std::path::{Path, PathBuf};

/// `~/.aws/sso/cache` (the home directory as the SDKs find it: `HOME`).
pub fn dir() -> io::Result<PathBuf> {
    directories::BaseDirs::new()
        .map(|d| d.home_dir().join(".aws").join("sso").join("cache"))
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no home directory"))
}

/// Writes `token` as `profile`'s cache file in `dir` (created, mode 0700,
/// if missing), atomically and mode 0600. Returns the file's path.
pub fn save(dir: &Path, profile: &SsoProfile, token: &CachedToken) -> io::Result<PathBuf> {
    if !dir.exists() {
        std::fs::create_dir_all(dir)?;
        #[cfg(unix)]
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    }
    let path = dir.join(profile.cache_file_name());
    let json = serde_json::to_vec_pretty(token).map_err(io::Error::other)?;
    crate::store::atomic::write_atomic_private(&path, &json)?;
    Ok(path)
}

/// When `profile`'s cached token ends (seconds since the Unix epoch), if it
/// has a readable cache file in `dir`.
pub fn expires_at(dir: &Path, profile: &SsoProfile) -> Option<i64> {
    let text = std::fs::read(dir.join(profile.cache_file_name())).ok()?;
    let token: CachedToken = serde_json::from_slice(&text).ok()?;
    parse_utc(&token.expires_at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::sso::{sso_profiles, utc_text};

    #[test]
    fn saved_owner_only_and_read_back() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("sso").join("cache");
        let profile = &sso_profiles("[profile p]\nsso_start_url = u\nsso_region = r\n")[0];
        let token = CachedToken {
            start_url: "u".into(),
            region: "r".into(),
            access_token: "t".into(),
            expires_at: utc_text(1_900_000_000),
            client_id: None,
            client_secret: None,
            registration_expires_at: None,
            refresh_token: None,
        };
        let path = save(&dir, profile, &token).unwrap();
        assert_eq!(path, dir.join(profile.cache_file_name()));
        assert_eq!(expires_at(&dir, profile), Some(1_900_000_000));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(&dir), 0o700);
        }
        std::fs::write(&path, "not json").unwrap();
        assert_eq!(expires_at(&dir, profile), None);
    }
}
