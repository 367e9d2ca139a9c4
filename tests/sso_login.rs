//! `cloudnap login`, as a user runs it, against a test IAM Identity Center
//! (tests/fixtures/sso_server.py: the SSO OIDC JSON API and the portal's
//! GetRoleCredentials): it prints the page and code, polls through
//! "authorization pending", and writes the token cache in the AWS CLI's
//! format, which the `aws` CLI (from PyPI) then signs in with. A denied or
//! expired sign-in fails clearly and writes nothing. And a wake waiting
//! for an expired SSO session is done within seconds of `cloudnap login`.
// The test server and the aws CLI run from the moto venv: Linux only.
#![cfg(target_os = "linux")]

mod common;
#[path = "common/sso.rs"]
mod sso_server;
use common::*;
use serde_json::{json, Value};
use sso_server::{cache_dir, end_sessions, login, sso_config, SsoServer, CORP_FILE};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The `aws` CLI of the moto venv (build/env.sh installs it there).
fn aws_cli() -> PathBuf {
    let aws = cache_dir_of_venv().join("bin/aws");
    assert!(
        aws.exists(),
        "no aws CLI at {}: run ./build/test.sh once (build/env.sh installs it)",
        aws.display()
    );
    aws
}

fn cache_dir_of_venv() -> PathBuf {
    common::cache_dir().join("venv")
}

#[test]
fn login_prints_the_code_and_writes_the_cache_the_aws_cli_signs_in_with() {
    let sso = SsoServer::start(&["--pending", "2"]);
    let cfg = sso_config("{}", "");
    let out = login(&cfg, &sso, &["--profile", "work"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "open\n  {}/device\nand enter the code TEST-CODE",
            sso.url
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("Signed in: profile work (session corp)"),
        "{stdout}"
    );
    let log = sso.log();
    assert_eq!(
        log.matches("REQUEST POST /token").count(),
        3,
        "two pending, then the token: {log}"
    );
    assert!(log.contains(r#""scopes": ["sso:account:access"]"#), "{log}");

    let file = cache_dir(&cfg).join(CORP_FILE);
    let token: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(token["startUrl"], "https://corp.test/start", "{token}");
    assert_eq!(token["region"], "us-east-1");
    assert_eq!(token["accessToken"], "test-access-token-1");
    assert_eq!(token["clientId"], "test-client-id");
    assert_eq!(token["clientSecret"], "test-client-secret");
    assert_eq!(token["refreshToken"], "test-refresh-token");
    let expires = token["expiresAt"].as_str().unwrap();
    assert!(
        expires.len() == 20 && expires.ends_with('Z') && expires.as_bytes()[10] == b'T',
        "{expires}"
    );
    assert!(token["registrationExpiresAt"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // A legacy profile: the file is named by its start URL, no client kept.
    let out = login(&cfg, &sso, &["--profile", "old"]);
    assert!(out.status.success());
    let legacy = cache_dir(&cfg).join(format!("{}.json", sha1_hex("https://legacy.test/start")));
    let token: Value = serde_json::from_slice(&std::fs::read(&legacy).unwrap()).unwrap();
    assert_eq!(token["accessToken"], "test-access-token-2", "{token}");
    assert!(token.get("clientId").is_none(), "{token}");

    // The aws CLI signs in with both, through the portal, with the token.
    let moto = moto_url();
    for (profile, bearer) in [
        ("work", "test-access-token-1"),
        ("old", "test-access-token-2"),
    ] {
        let out = Command::new(aws_cli())
            .args([
                "sts",
                "get-caller-identity",
                "--output",
                "json",
                "--profile",
                profile,
            ])
            .args(["--endpoint-url", &moto])
            .env("HOME", cfg.file("home"))
            .env("AWS_CONFIG_FILE", cfg.file("aws-config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", cfg.file("aws-credentials"))
            .env("AWS_ENDPOINT_URL_SSO", &sso.url)
            .env("AWS_ENDPOINT_URL_SSO_OIDC", &sso.url)
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_ENDPOINT_URL")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "aws --profile {profile}: {text}");
        let who: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(who["Arn"].is_string(), "{who}");
        assert!(
            sso.log().contains(&format!(
                "REQUEST GET /federation/credentials bearer={bearer}"
            )),
            "{}",
            sso.log()
        );
    }
}

/// SHA-1 in hex, by `sha1sum` (independent of cloudnap's).
fn sha1_hex(text: &str) -> String {
    let mut child = Command::new("sha1sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)[..40].to_string()
}

#[test]
fn a_denied_or_expired_sign_in_fails_clearly_and_writes_nothing() {
    for (fin, words) in [
        ("denied", "the sign-in was denied in the browser"),
        ("expired", "the sign-in code expired before it was approved"),
    ] {
        let sso = SsoServer::start(&["--pending", "1", "--final", fin]);
        let cfg = sso_config("{}", "");
        let out = login(&cfg, &sso, &["--profile", "work"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(words), "{stderr}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("TEST-CODE"));
        assert!(
            !cache_dir(&cfg).exists()
                || std::fs::read_dir(cache_dir(&cfg)).unwrap().next().is_none(),
            "no token cache written"
        );
    }
    // Several SSO profiles and none named: which to choose is asked, nothing sent.
    let sso = SsoServer::start(&[]);
    let cfg = sso_config("{}", "");
    let out = login(&cfg, &sso, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("several SSO profiles (work, old): choose one with --profile"),
        "{stderr}"
    );
    assert_eq!(sso.log(), "", "nothing was asked of the server");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wake_waiting_for_an_expired_sso_session_is_done_at_once_after_login() {
    const R: &str = "us-west-1";
    // Role credentials of 5 s: the daemon asks the portal on every call,
    // as it would once the session's credentials have ended.
    let sso = SsoServer::start(&["--pending", "1", "--role-ttl", "5"]);
    let (id, cluster, yaml) = instance_and_service(R, "sso", 2).await;
    let settings = timeout_settings(
        R,
        Duration::from_secs(120),
        json!({"aws": {"profile": "work"}}),
    );
    let cfg = sso_config(&settings, &yaml);
    assert!(login(&cfg, &sso, &["--profile", "work"]).status.success());
    let mut run = cfg.command(&["run"]);
    run.env("HOME", cfg.file("home"))
        .env("AWS_ENDPOINT_URL_SSO", &sso.url)
        .env("AWS_ENDPOINT_URL_SSO_OIDC", &sso.url)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY");
    let d = Daemon::spawn(run);
    d.sleep_now().await;
    assert!(
        sso.log().contains("bearer=test-access-token-1"),
        "{}",
        sso.log()
    );
    let up = || async {
        (
            ec2_state(R, &id).await.0,
            ecs_desired(R, &cluster, "web").await.0,
        )
    };
    assert_eq!(up().await, ("stopped".into(), 0));
    // Asleep: STATUS and the tray say by when to sign in again.
    let file = cache_dir(&cfg).join(CORP_FILE);
    let token: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let ends = chrono::DateTime::parse_from_rfc3339(token["expiresAt"].as_str().unwrap()).unwrap();
    let hhmm = ends
        .with_timezone(&chrono::Local)
        .format("%H:%M")
        .to_string();
    let status = d.ok("STATUS").await;
    let line = status["sign_in"]
        .as_str()
        .unwrap_or_else(|| panic!("{status}"));
    assert!(
        line.starts_with("sign-in needed by ")
            && line.ends_with(&format!("{hhmm} to wake (profile work)")),
        "{status}"
    );
    let tray = status["tray"]["line"].as_str().unwrap();
    assert!(
        tray.starts_with("Asleep: 2 resources stopped; sign-in needed by "),
        "{status}"
    );

    // Overnight the session ends: the portal refuses the token, the cache
    // says it has expired, its refresh is refused. The user comes back.
    let mut token = token;
    token["expiresAt"] = json!("2020-01-01T00:00:00Z");
    std::fs::write(&file, token.to_string()).unwrap();
    end_sessions(&sso);
    assert_eq!(d.ok("USER_ACTIVITY").await["state"], "active");
    let status = d
        .wait_status(Duration::from_secs(20), "waiting for a sign-in", |s| {
            s["retrying"]["operation"] == "waking"
                && s["retrying"]["cause"]
                    .as_str()
                    .is_some_and(|c| c.starts_with("credentials"))
        })
        .await;
    let advice = status["retrying"]["advice"].as_str().unwrap();
    assert!(advice.contains("for profile work: sign in"), "{status}");
    let ended = status["sign_in"].as_str().unwrap();
    assert!(
        ended.starts_with("SSO session of profile work ended at ")
            && ended.ends_with(": sign in to wake"),
        "{status}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        up().await,
        ("stopped".into(), 0),
        "nothing wakes without a sign-in"
    );

    // `cloudnap login`: the resources are at their exact capacity within 10 s.
    let t0 = Instant::now();
    let addr = d.addr.to_string();
    let out = login(&cfg, &sso, &["--profile", "work", "--to", &addr]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("cloudnap tries its waiting wake again now")
    );
    let took = within(Duration::from_secs(10), "awake at its capacity", || async {
        up().await == ("running".into(), 2)
    })
    .await;
    eprintln!(
        "awake {took:?} after the sign-in was approved ({:?} after `cloudnap login` started)",
        t0.elapsed()
    );
    assert!(
        sso.log().contains("bearer=test-access-token-2"),
        "{}",
        sso.log()
    );
    let status = d
        .wait_status(Duration::from_secs(10), "awake", |s| {
            s["asleep"] == json!([]) && s["retrying"].is_null()
        })
        .await;
    assert_eq!(status["tray"]["icon"], "active", "{status}");
}
