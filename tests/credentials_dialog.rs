//! The AWS credentials dialog driven like a user would, with egui_kittest:
//! keys typed, Check against a real moto STS, Save into AWS files in a temp
//! dir; the SSO tab's sign-in against a test SSO OIDC server. A snapshot
//! image of the dialog is kept in tests/snapshots.

mod common;
#[path = "common/sso.rs"]
mod sso_server;
use cloudnap::ui::credentials::{Dialog, Status};
use cloudnap::ui::sso_tab::SignIn;
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use std::path::Path;
use std::time::{Duration, Instant};

const OTHER_CREDENTIALS: &str =
    "# keep me\n[other]\naws_access_key_id = AKIAOTHEROTHEROTHER1\naws_secret_access_key = other\n";
const OTHER_CONFIG: &str = "[profile other]\nregion = us-west-2\n";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

fn dialog(dir: &Path, endpoint: String) -> Dialog {
    Dialog::new(
        dir.join("settings.json"),
        (dir.join("credentials"), dir.join("config")),
        Some(endpoint),
        "us-east-1",
        "cloudnap",
    )
}

fn harness(dir: &Path, endpoint: String) -> Harness<'static, Dialog> {
    harness_of(dialog(dir, endpoint))
}

fn harness_of(dialog: Dialog) -> Harness<'static, Dialog> {
    let mut h = Harness::builder()
        .with_size(eframe::egui::vec2(520.0, 380.0))
        .build_ui_state(|ui, dialog: &mut Dialog| dialog.ui(ui), dialog);
    h.run();
    h
}

fn type_into(h: &mut Harness<'_, Dialog>, label: &str, text: &str) {
    h.get_by_label(label).click();
    h.run();
    h.get_by_label(label).type_text(text);
    h.run();
}

/// Steps the UI until the check has an answer.
fn wait_for_check(h: &mut Harness<'_, Dialog>) {
    let t0 = Instant::now();
    loop {
        h.run_steps(1);
        if h.state().status != Status::Checking {
            h.run();
            return;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "no answer from STS");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("settings.json"),
        cloudnap::core::config::settings::DEFAULT_SETTINGS_JSON,
    )
    .unwrap();
    std::fs::write(dir.path().join("credentials"), OTHER_CREDENTIALS).unwrap();
    std::fs::write(dir.path().join("config"), OTHER_CONFIG).unwrap();
    dir
}

#[test]
fn check_shows_the_account_and_save_writes_a_private_profile() {
    let dir = setup();
    let mut h = harness(dir.path(), common::moto_url());
    type_into(&mut h, "Access key ID", "AKIAIOSFODNN7EXAMPLE");
    type_into(&mut h, "Secret access key", SECRET);
    h.get_by_label("Check").click();
    wait_for_check(&mut h);
    assert!(
        matches!(&h.state().status, Status::Valid(id) if id.account == "123456789012"),
        "{:?}",
        h.state().status
    );
    h.get_by_label_contains("account 123456789012");
    h.snapshot("credentials_dialog");

    h.get_by_label("Save").click();
    h.run();
    h.get_by_label_contains("Saved profile `cloudnap`");

    let creds = std::fs::read_to_string(dir.path().join("credentials")).unwrap();
    assert!(
        creds.starts_with(OTHER_CREDENTIALS),
        "other profiles unchanged:\n{creds}"
    );
    assert!(creds.ends_with(&format!(
        "[cloudnap]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = {SECRET}\n"
    )));
    let config = std::fs::read_to_string(dir.path().join("config")).unwrap();
    assert_eq!(
        config,
        format!("{OTHER_CONFIG}\n[profile cloudnap]\nregion = us-east-1\n")
    );
    // Owner-only files (on Windows that would be an ACL: not set, see docs/install.md).
    #[cfg(unix)]
    for f in ["credentials", "config"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    let settings = std::fs::read_to_string(dir.path().join("settings.json")).unwrap();
    let (parsed, _) = cloudnap::core::config::settings::Settings::parse(&settings).unwrap();
    assert_eq!(parsed.aws.profile.as_deref(), Some("cloudnap"));
    assert!(!settings.contains(SECRET), "no secret in settings.json");
}

#[test]
fn a_wrong_key_shows_the_aws_error_in_words() {
    let dir = setup();
    let mut h = harness(dir.path(), common::moto_auth_url());
    type_into(&mut h, "Access key ID", "AKIAWRONGWRONGWRONG1");
    type_into(&mut h, "Secret access key", "nope");
    h.get_by_label("Check").click();
    wait_for_check(&mut h);
    h.get_by_label_contains("AWS does not accept these keys");
    h.get_by_label_contains("InvalidClientTokenId");

    // A form error is caught before any call, and nothing is saved.
    type_into(&mut h, "Region", "x");
    h.get_by_label("Save").click();
    h.run();
    h.get_by_label_contains("is not a region name");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("credentials")).unwrap(),
        OTHER_CREDENTIALS
    );
}

/// Steps the UI until `done(state of the SSO tab)`.
fn wait_for_sign_in(h: &mut Harness<'_, Dialog>, what: &str, done: impl Fn(&SignIn) -> bool) {
    let t0 = Instant::now();
    loop {
        h.run_steps(1);
        if done(&h.state().sso.state) {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "not {what}: {:?}",
            h.state().sso.state
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_sso_tab_lists_the_sso_profiles_and_signs_one_in() {
    let dir = setup();
    let config = format!(
        "{OTHER_CONFIG}\n[profile work]\nsso_session = corp\nsso_account_id = 111122223333\nsso_role_name = Dev\n\n\
         [sso-session corp]\nsso_start_url = https://corp.test/start\nsso_region = us-east-1\n"
    );
    std::fs::write(dir.path().join("config"), &config).unwrap();
    let sso = sso_server::SsoServer::start(&["--pending", "1"]);
    let mut d = dialog(dir.path(), common::moto_url());
    d.sso.cache_dir = dir.path().join("sso-cache");
    d.sso.endpoint_url = Some(sso.url.clone());
    d.sso.open_browser = false;
    let mut h = harness_of(d);
    h.get_by_label("SSO").click();
    h.run();
    h.get_by_label("work (session corp)");
    h.get_by_label("https://corp.test/start");
    assert!(
        h.query_by_label("Sign in other").is_none(),
        "a profile with keys is no SSO profile"
    );
    h.get_by_label("Sign in work").click();
    wait_for_sign_in(
        &mut h,
        "showing the code",
        |s| matches!(s, SignIn::Waiting { prompt, .. } if prompt.user_code == "TEST-CODE"),
    );
    h.get_by_label_contains("enter the code TEST-CODE");
    wait_for_sign_in(&mut h, "signed in", |s| matches!(s, SignIn::Done(_)));
    h.run();
    h.get_by_label_contains("Signed in: work (session corp) until ");
    let file = dir
        .path()
        .join("sso-cache/ee0bfd2552fbd840c02cc48b6e823320543c450f.json");
    let token: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(token["accessToken"], "test-access-token-1", "{token}");
    assert_eq!(token["startUrl"], "https://corp.test/start");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("config")).unwrap(),
        config,
        "the AWS config is only read"
    );
}
