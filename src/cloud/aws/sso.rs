//! Signing in to IAM Identity Center (SSO) as the AWS CLI's `aws sso login`
//! does: the OAuth device authorization over the SSO OIDC API
//! (`RegisterClient`, `StartDeviceAuthorization`, then `CreateToken` polled
//! as [`crate::core::policy::sign_in`] decides), and the token saved in the
//! cache the CLI and the SDKs read. The OIDC endpoint follows the SDK's
//! usual overrides (`AWS_ENDPOINT_URL_SSO_OIDC`, `AWS_ENDPOINT_URL`).

use super::clients::{http_client, timeouts};
use crate::core::config::sso::{cached_token, choose_or, ProfileError, Registration, SsoProfile};
use crate::core::policy::sign_in::{after_poll, first_interval, PollError, SignInError};
use crate::store::sso_cache;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_ssooidc::error::DisplayErrorContext;
use aws_sdk_ssooidc::operation::create_token::CreateTokenError;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The device code grant of RFC 8628.
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// What the user must do to approve the sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    /// Where to enter the code.
    pub verification_uri: String,
    /// The same page with the code filled in, when the service gives one.
    pub verification_uri_complete: Option<String>,
    pub user_code: String,
}

impl Prompt {
    /// The page to open in the browser.
    pub fn url(&self) -> &str {
        (self.verification_uri_complete.as_deref()).unwrap_or(&self.verification_uri)
    }
}

/// How a sign-in goes, as it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Waiting for the user to approve in the browser.
    Prompt(Prompt),
    /// The service asked to poll more slowly: now every this long.
    SlowerPolling(Duration),
}

/// Why `cloudnap login` (or the tray's sign-in) did not sign in.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("cannot read the AWS config file {0}: {1}")]
    Config(PathBuf, std::io::Error),
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error(transparent)]
    SignIn(#[from] SignInError),
    #[error("cannot write the SSO token cache {0}: {1}")]
    Write(PathBuf, std::io::Error),
}

/// A finished sign-in.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub profile: SsoProfile,
    /// The token cache file written.
    pub path: PathBuf,
    /// When the token ends (seconds since the Unix epoch).
    pub expires_at: i64,
}

/// An SSO OIDC client for `region` (through `endpoint_url` if given),
/// sending no credentials.
pub async fn oidc_client(region: &str, endpoint_url: Option<&str>) -> aws_sdk_ssooidc::Client {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .http_client(http_client())
        .no_credentials()
        .timeout_config(timeouts(Duration::from_secs(30)));
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    let conf = loader.load().await;
    aws_sdk_ssooidc::Client::new(&conf)
}

/// What to sign in, and where.
#[derive(Debug, Clone, Default)]
pub struct Which {
    /// The profile named by the user, if any.
    pub wanted: Option<String>,
    /// Else this one (the settings' profile) if it is an SSO profile, else
    /// the only SSO profile.
    pub default: Option<String>,
    /// The SSO OIDC endpoint (a test's); `None`: the SDK's, which
    /// `AWS_ENDPOINT_URL_SSO_OIDC` overrides.
    pub endpoint_url: Option<String>,
}

/// Signs the profile of `which` (from `config_file`) in and saves the
/// token in `cache_dir`; `progress` hears the code to enter. Nothing is
/// written unless the sign-in succeeds.
pub async fn login(
    config_file: &Path,
    cache_dir: &Path,
    which: &Which,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<SignedIn, LoginError> {
    let text = match std::fs::read_to_string(config_file) {
        Ok(t) => t,
        // No config file: no SSO profile (said so by `choose_or`).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(LoginError::Config(config_file.to_path_buf(), e)),
    };
    let profile = choose_or(&text, which.wanted.as_deref(), which.default.as_deref())?;
    let oidc = oidc_client(&profile.region, which.endpoint_url.as_deref()).await;
    let token = sign_in(&oidc, &profile, progress).await?;
    let expires_at = crate::core::config::sso::parse_utc(&token.expires_at).unwrap_or_default();
    let path = sso_cache::save(cache_dir, &profile, &token)
        .map_err(|e| LoginError::Write(cache_dir.to_path_buf(), e))?;
    Ok(SignedIn {
        profile,
        path,
        expires_at,
    })
}

fn failed(what: &str, e: impl std::error::Error) -> SignInError {
    SignInError::Failed(format!("{what}: {}", DisplayErrorContext(e)))
}

/// Seconds since the Unix epoch.
fn epoch_now() -> i64 {
    (SystemTime::now().duration_since(SystemTime::UNIX_EPOCH)).map_or(0, |d| d.as_secs() as i64)
}

/// The device authorization for `profile` through `oidc`: registers a
/// client, starts the authorization, tells `progress` the code, and polls
/// for the token until approved, denied or expired.
pub async fn sign_in(
    oidc: &aws_sdk_ssooidc::Client,
    profile: &SsoProfile,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<crate::core::config::sso::CachedToken, SignInError> {
    let scopes = (!profile.scopes.is_empty()).then(|| profile.scopes.clone());
    let reg = (oidc.register_client())
        .client_name(format!("cloudnap-{}", epoch_now()))
        .client_type("public")
        .set_scopes(scopes)
        .send()
        .await
        .map_err(|e| failed("RegisterClient", e))?;
    let registration = Registration {
        client_id: reg.client_id().unwrap_or_default().to_string(),
        client_secret: reg.client_secret().unwrap_or_default().to_string(),
        expires_at: reg.client_secret_expires_at(),
    };
    let auth = (oidc.start_device_authorization())
        .client_id(&registration.client_id)
        .client_secret(&registration.client_secret)
        .start_url(&profile.start_url)
        .send()
        .await
        .map_err(|e| failed("StartDeviceAuthorization", e))?;
    progress(Progress::Prompt(Prompt {
        verification_uri: auth.verification_uri().unwrap_or_default().to_string(),
        verification_uri_complete: auth.verification_uri_complete().map(String::from),
        user_code: auth.user_code().unwrap_or_default().to_string(),
    }));
    let expires_in = Duration::from_secs(auth.expires_in().max(0) as u64);
    let deadline = tokio::time::Instant::now().into_std() + expires_in;
    let mut interval = first_interval(auth.interval());
    loop {
        tokio::time::sleep(interval).await;
        let polled = (oidc.create_token())
            .client_id(&registration.client_id)
            .client_secret(&registration.client_secret)
            .grant_type(DEVICE_GRANT)
            .device_code(auth.device_code().unwrap_or_default())
            .send()
            .await;
        let error = match polled {
            Ok(out) => {
                return Ok(cached_token(
                    profile,
                    out.access_token().unwrap_or_default(),
                    i64::from(out.expires_in()),
                    out.refresh_token(),
                    &registration,
                    epoch_now(),
                ))
            }
            Err(e) => poll_error(e),
        };
        let now = tokio::time::Instant::now().into_std();
        let next = after_poll(&error, interval, now, deadline)?;
        if next != interval {
            progress(Progress::SlowerPolling(next));
        }
        interval = next;
    }
}

/// What a failed `CreateToken` means for the polling.
fn poll_error(e: aws_sdk_ssooidc::error::SdkError<CreateTokenError>) -> PollError {
    match e.as_service_error() {
        Some(CreateTokenError::AuthorizationPendingException(_)) => PollError::Pending,
        Some(CreateTokenError::SlowDownException(_)) => PollError::SlowDown,
        Some(CreateTokenError::ExpiredTokenException(_)) => PollError::Expired,
        Some(CreateTokenError::AccessDeniedException(_)) => PollError::Denied,
        _ => PollError::Other(format!("CreateToken: {}", DisplayErrorContext(&e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::sso::sso_profiles;
    use aws_sdk_ssooidc::config::http::HttpResponse;
    use aws_sdk_ssooidc::operation::create_token::CreateTokenOutput;
    use aws_sdk_ssooidc::operation::register_client::RegisterClientOutput;
    use aws_sdk_ssooidc::operation::start_device_authorization::StartDeviceAuthorizationOutput;
    use aws_smithy_mocks::{mock, Rule, RuleMode};

    fn profile() -> SsoProfile {
        sso_profiles(
            "[profile p]\nsso_session = s\n[sso-session s]\nsso_start_url = https://x/start\nsso_region = us-east-1\n",
        )
        .remove(0)
    }

    /// A client answering RegisterClient and StartDeviceAuthorization (poll
    /// every second for 60 s), then `create_token` in order.
    fn client(create_token: Rule) -> aws_sdk_ssooidc::Client {
        let register = mock!(aws_sdk_ssooidc::Client::register_client).then_output(|| {
            RegisterClientOutput::builder()
                .client_id("cid")
                .client_secret("csecret")
                .client_secret_expires_at(1_900_000_000)
                .build()
        });
        let start = mock!(aws_sdk_ssooidc::Client::start_device_authorization).then_output(|| {
            StartDeviceAuthorizationOutput::builder()
                .device_code("dev")
                .user_code("ABCD-EFGH")
                .verification_uri("https://device.sso/")
                .verification_uri_complete("https://device.sso/?user_code=ABCD-EFGH")
                .expires_in(60)
                .interval(1)
                .build()
        });
        let mocks = aws_smithy_mocks::MockResponseInterceptor::new()
            .rule_mode(RuleMode::MatchAny)
            .with_rule(&register)
            .with_rule(&start)
            .with_rule(&create_token);
        aws_sdk_ssooidc::Client::from_conf(
            aws_sdk_ssooidc::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .http_client(aws_smithy_mocks::create_mock_http_client())
                .interceptor(mocks)
                .build(),
        )
    }

    /// A 400 answer as the SSO OIDC service sends it: the exception's name
    /// in `x-amzn-errortype`, the OAuth error in the JSON body.
    fn http(kind: &str, error: &str) -> HttpResponse {
        let body = format!(r#"{{"error":"{error}","error_description":"from the test"}}"#);
        let mut r = HttpResponse::new(400u16.try_into().unwrap(), body.into());
        r.headers_mut().insert("x-amzn-errortype", kind.to_string());
        r.headers_mut().insert("content-type", "application/json");
        r
    }

    fn token() -> CreateTokenOutput {
        CreateTokenOutput::builder()
            .access_token("the-token")
            .expires_in(3600)
            .refresh_token("rt")
            .build()
    }

    /// Runs the sign-in on a paused clock: its result, what progress heard,
    /// and how much (virtual) time the polling took.
    async fn run(
        rule: Rule,
    ) -> (
        Result<crate::core::config::sso::CachedToken, SignInError>,
        Vec<Progress>,
        Duration,
    ) {
        let oidc = client(rule);
        let mut heard = Vec::new();
        let t0 = tokio::time::Instant::now();
        let result = sign_in(&oidc, &profile(), &mut |p| heard.push(p)).await;
        (result, heard, t0.elapsed())
    }

    #[tokio::test(start_paused = true)]
    async fn pending_polls_go_on_until_the_token_comes() {
        let rule = mock!(aws_sdk_ssooidc::Client::create_token)
            .sequence()
            .http_response(|| http("AuthorizationPendingException", "authorization_pending"))
            .times(2)
            .output(token)
            .build();
        let (result, heard, took) = run(rule).await;
        let token = result.unwrap();
        assert_eq!(token.access_token, "the-token");
        assert_eq!(token.client_id.as_deref(), Some("cid"));
        assert_eq!(token.refresh_token.as_deref(), Some("rt"));
        assert_eq!(
            heard,
            [Progress::Prompt(Prompt {
                verification_uri: "https://device.sso/".into(),
                verification_uri_complete: Some("https://device.sso/?user_code=ABCD-EFGH".into()),
                user_code: "ABCD-EFGH".into(),
            })]
        );
        // Three polls, one second apart.
        assert!(
            took >= Duration::from_secs(3) && took < Duration::from_secs(4),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn slow_down_makes_the_interval_five_seconds_longer() {
        let rule = mock!(aws_sdk_ssooidc::Client::create_token)
            .sequence()
            .http_response(|| http("SlowDownException", "slow_down"))
            .http_response(|| http("AuthorizationPendingException", "authorization_pending"))
            .output(token)
            .build();
        let (result, heard, took) = run(rule).await;
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(heard[1], Progress::SlowerPolling(Duration::from_secs(6)));
        // 1 s, then 6 s twice.
        assert!(
            took >= Duration::from_secs(13) && took < Duration::from_secs(14),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_code_and_a_denial_end_the_sign_in_clearly() {
        for (kind, error, want) in [
            (
                "ExpiredTokenException",
                "expired_token",
                SignInError::Expired,
            ),
            (
                "AccessDeniedException",
                "access_denied",
                SignInError::Denied,
            ),
        ] {
            let rule = mock!(aws_sdk_ssooidc::Client::create_token)
                .sequence()
                .http_response(|| http("AuthorizationPendingException", "authorization_pending"))
                .http_response(move || http(kind, error))
                .build();
            let (result, _, _) = run(rule).await;
            assert_eq!(result.unwrap_err(), want);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_code_expiring_while_pending_ends_it() {
        let rule = mock!(aws_sdk_ssooidc::Client::create_token)
            .sequence()
            .http_response(|| http("AuthorizationPendingException", "authorization_pending"))
            .times(100)
            .build();
        let (result, _, took) = run(rule).await;
        assert_eq!(result.unwrap_err(), SignInError::Expired);
        assert!(took <= Duration::from_secs(60), "{took:?}");
    }
}
