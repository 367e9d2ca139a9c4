//! IAM Identity Center (SSO) profiles of `~/.aws/config` and the token
//! cache file the AWS CLI v2 and the SDKs read
//! (`~/.aws/sso/cache/<sha1>.json`). Pure: texts in, values out.

use crate::core::config::ini::{sections, Section};
use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

/// The scope every SSO session gets when its config names none.
pub const DEFAULT_SCOPE: &str = "sso:account:access";

/// An SSO profile: one that signs in through IAM Identity Center, by an
/// `sso_session` (a `[sso-session NAME]` section) or the legacy
/// `sso_start_url`/`sso_region` on the profile itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoProfile {
    /// The profile's name (`default` for `[default]`).
    pub name: String,
    /// The `sso_session` it uses (`None`: legacy).
    pub session: Option<String>,
    pub start_url: String,
    /// The region of the SSO OIDC and portal endpoints.
    pub region: String,
    /// The OAuth scopes asked for (sso-session profiles only).
    pub scopes: Vec<String>,
    pub account_id: Option<String>,
    pub role_name: Option<String>,
}

impl SsoProfile {
    /// The name of its token cache file: the SHA-1 (hex) of the session
    /// name, or of the start URL for a legacy profile, then `.json`.
    pub fn cache_file_name(&self) -> String {
        let key = self.session.as_deref().unwrap_or(&self.start_url);
        format!("{}.json", hex::encode(Sha1::digest(key.as_bytes())))
    }

    /// "work (session corp)", "legacy".
    pub fn describe(&self) -> String {
        match &self.session {
            Some(s) => format!("{} (session {s})", self.name),
            None => self.name.clone(),
        }
    }
}

/// Why no SSO profile could be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    #[error("no SSO profile in the AWS config file (a profile with sso_session or sso_start_url)")]
    None,
    #[error("profile {0} is not an SSO profile; SSO profiles: {1}")]
    NotSso(String, String),
    #[error("profile {0} is not in the AWS config file; SSO profiles: {1}")]
    Unknown(String, String),
    #[error("profile {0} uses sso_session {1}, which has no [sso-session {1}] section with sso_start_url and sso_region")]
    NoSession(String, String),
    #[error("several SSO profiles ({0}): choose one with --profile")]
    Several(String),
}

/// The profile named by a section header of the config file.
fn profile_name(section: &str) -> Option<&str> {
    match section {
        "default" => Some("default"),
        s => s.strip_prefix("profile "),
    }
}

/// What the SSO fields of profile `name` make: a profile, `Ok(None)` when
/// it has none, or what is missing.
fn read_profile(
    name: &str,
    p: &Section,
    all: &[Section],
) -> Result<Option<SsoProfile>, ProfileError> {
    let base = |start_url: &str, region: &str, scopes: Vec<String>, session| SsoProfile {
        name: name.to_string(),
        session,
        start_url: start_url.to_string(),
        region: region.to_string(),
        scopes,
        account_id: p.get("sso_account_id").map(String::from),
        role_name: p.get("sso_role_name").map(String::from),
    };
    if let Some(session) = p.get("sso_session") {
        let header = format!("sso-session {session}");
        let s = all.iter().find(|s| s.name == header);
        let fields = s.and_then(|s| Some((s, s.get("sso_start_url")?, s.get("sso_region")?)));
        let Some((s, url, region)) = fields else {
            return Err(ProfileError::NoSession(name.into(), session.into()));
        };
        let scopes: Vec<String> = (s.get("sso_registration_scopes").unwrap_or(DEFAULT_SCOPE))
            .split(',')
            .map(|x| x.trim().to_string())
            .filter(|x| !x.is_empty())
            .collect();
        return Ok(Some(base(url, region, scopes, Some(session.to_string()))));
    }
    Ok(match (p.get("sso_start_url"), p.get("sso_region")) {
        (Some(url), Some(region)) => Some(base(url, region, Vec::new(), None)),
        _ => None,
    })
}

/// The SSO profiles of a config file's `text`, in order; a profile whose
/// session section is missing is left out (see [`choose`] for its error).
pub fn sso_profiles(text: &str) -> Vec<SsoProfile> {
    let all = sections(text);
    (all.iter())
        .filter_map(|s| read_profile(profile_name(&s.name)?, s, &all).ok().flatten())
        .collect()
}

/// The SSO profile to sign in: `wanted` if given (it must be one), else
/// the only one there is.
pub fn choose(text: &str, wanted: Option<&str>) -> Result<SsoProfile, ProfileError> {
    let all = sections(text);
    let found = sso_profiles(text);
    let names = || {
        let n: Vec<&str> = found.iter().map(|p| p.name.as_str()).collect();
        if n.is_empty() {
            "none".to_string()
        } else {
            n.join(", ")
        }
    };
    match wanted {
        Some(w) => {
            let section = all.iter().find(|s| profile_name(&s.name) == Some(w));
            let Some(section) = section else {
                return Err(ProfileError::Unknown(w.into(), names()));
            };
            read_profile(w, section, &all)?.ok_or_else(|| ProfileError::NotSso(w.into(), names()))
        }
        None => match found.as_slice() {
            [] => Err(ProfileError::None),
            [one] => Ok(one.clone()),
            _ => Err(ProfileError::Several(names())),
        },
    }
}

/// The profile to sign in when the user names none: `default` (the
/// settings' profile) if it is an SSO profile, else the only one there is;
/// `wanted` when given.
pub fn choose_or(
    text: &str,
    wanted: Option<&str>,
    default: Option<&str>,
) -> Result<SsoProfile, ProfileError> {
    if wanted.is_some() {
        return choose(text, wanted);
    }
    match default.map(|d| choose(text, Some(d))) {
        Some(Ok(p)) => Ok(p),
        _ => choose(text, None),
    }
}

/// A token cache file, as the AWS CLI v2 writes it and the SDKs read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedToken {
    pub start_url: String,
    pub region: String,
    pub access_token: String,
    /// UTC, `YYYY-MM-DDTHH:MM:SSZ`.
    pub expires_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// The registered client, kept in the cache file of sso-session profiles
/// (the SDKs refresh the token with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub client_id: String,
    pub client_secret: String,
    /// Seconds since the Unix epoch.
    pub expires_at: i64,
}

/// `secs` (since the Unix epoch) as UTC `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_text(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The seconds since the Unix epoch of an `expiresAt` text (RFC 3339, as
/// every writer of the cache uses).
pub fn parse_utc(text: &str) -> Option<i64> {
    let t = text.trim();
    // The AWS CLI v1 wrote "...UTC"; accept it too.
    let t = t
        .strip_suffix("UTC")
        .map_or(t.to_string(), |s| format!("{s}Z"));
    chrono::DateTime::parse_from_rfc3339(&t)
        .ok()
        .map(|d| d.timestamp())
}

/// The cache file's token for `profile`, signed in at `now` (seconds since
/// the epoch) with `access_token` valid `expires_in` seconds. The client
/// registration and refresh token are kept for sso-session profiles only,
/// as the AWS CLI does.
pub fn cached_token(
    profile: &SsoProfile,
    access_token: &str,
    expires_in: i64,
    refresh_token: Option<&str>,
    registration: &Registration,
    now: i64,
) -> CachedToken {
    let session = profile.session.is_some();
    CachedToken {
        start_url: profile.start_url.clone(),
        region: profile.region.clone(),
        access_token: access_token.to_string(),
        expires_at: utc_text(now + expires_in),
        client_id: session.then(|| registration.client_id.clone()),
        client_secret: session.then(|| registration.client_secret.clone()),
        registration_expires_at: session.then(|| utc_text(registration.expires_at)),
        refresh_token: refresh_token.filter(|_| session).map(String::from),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "\
[default]
region = us-east-1

[profile work]
sso_session = corp
sso_account_id = 111122223333
sso_role_name = Dev
region = eu-west-1

[sso-session corp]
sso_start_url = https://corp.awsapps.com/start
sso_region = eu-central-1
sso_registration_scopes = sso:account:access, openid

[profile legacy]
sso_start_url = https://old.awsapps.com/start
sso_region = us-west-2
sso_account_id = 444455556666
sso_role_name = Admin

[profile broken]
sso_session = missing
";

    #[test]
    fn session_and_legacy_profiles_are_read() {
        let found = sso_profiles(CONFIG);
        assert_eq!(found.len(), 2, "{found:?}");
        let work = &found[0];
        assert_eq!(work.name, "work");
        assert_eq!(work.session.as_deref(), Some("corp"));
        assert_eq!(work.start_url, "https://corp.awsapps.com/start");
        assert_eq!(work.region, "eu-central-1");
        assert_eq!(work.scopes, ["sso:account:access", "openid"]);
        assert_eq!(work.account_id.as_deref(), Some("111122223333"));
        let legacy = &found[1];
        assert_eq!(legacy.session, None);
        assert_eq!(legacy.region, "us-west-2");
        assert!(legacy.scopes.is_empty());
        assert_eq!(legacy.role_name.as_deref(), Some("Admin"));
    }

    #[test]
    fn the_cache_file_is_named_by_the_sha1_of_session_or_start_url() {
        let found = sso_profiles(CONFIG);
        // sha1("corp"), sha1("https://old.awsapps.com/start") (as `sha1sum` prints them).
        assert_eq!(
            found[0].cache_file_name(),
            "ee0bfd2552fbd840c02cc48b6e823320543c450f.json"
        );
        assert_eq!(
            found[1].cache_file_name(),
            format!(
                "{}.json",
                hex::encode(Sha1::digest(b"https://old.awsapps.com/start"))
            )
        );
    }

    #[test]
    fn choosing_names_what_is_wrong() {
        assert_eq!(choose(CONFIG, Some("legacy")).unwrap().name, "legacy");
        assert!(matches!(
            choose(CONFIG, None),
            Err(ProfileError::Several(n)) if n == "work, legacy"
        ));
        assert!(matches!(
            choose(CONFIG, Some("default")),
            Err(ProfileError::NotSso(..))
        ));
        assert!(matches!(
            choose(CONFIG, Some("nope")),
            Err(ProfileError::Unknown(..))
        ));
        assert_eq!(
            choose(CONFIG, Some("broken")).unwrap_err().to_string(),
            "profile broken uses sso_session missing, which has no [sso-session missing] section with sso_start_url and sso_region"
        );
        assert_eq!(choose("[default]\n", None), Err(ProfileError::None));
        let one = "[profile a]\nsso_start_url = u\nsso_region = r\n";
        assert_eq!(choose(one, None).unwrap().name, "a");
        // The settings' profile when it is an SSO one, else the only one.
        assert_eq!(
            choose_or(CONFIG, None, Some("legacy")).unwrap().name,
            "legacy"
        );
        assert_eq!(choose_or(one, None, Some("keys")).unwrap().name, "a");
        assert!(choose_or(one, Some("keys"), None).is_err());
    }

    #[test]
    fn the_cache_json_has_the_cli_keys_and_session_profiles_keep_the_client() {
        let found = sso_profiles(CONFIG);
        let reg = Registration {
            client_id: "cid".into(),
            client_secret: "csecret".into(),
            expires_at: 1_800_000_000,
        };
        let now = 1_764_000_000; // 2025-11-24T16:00:00Z
        let token = cached_token(&found[0], "tok", 3600, Some("rt"), &reg, now);
        let json = serde_json::to_value(&token).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "startUrl": "https://corp.awsapps.com/start",
                "region": "eu-central-1",
                "accessToken": "tok",
                "expiresAt": "2025-11-24T17:00:00Z",
                "clientId": "cid",
                "clientSecret": "csecret",
                "registrationExpiresAt": "2027-01-15T08:00:00Z",
                "refreshToken": "rt"
            })
        );
        let legacy = cached_token(&found[1], "tok", 60, Some("rt"), &reg, now);
        let keys: Vec<String> = serde_json::to_value(&legacy)
            .unwrap()
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(keys, ["startUrl", "region", "accessToken", "expiresAt"]);
        assert_eq!(parse_utc(&token.expires_at), Some(now + 3600));
        assert_eq!(parse_utc("2025-11-24T17:00:00UTC"), Some(now + 3600));
        assert_eq!(parse_utc("2025-11-24T17:00:00.123Z"), Some(now + 3600));
        assert_eq!(parse_utc("soon"), None);
    }
}
