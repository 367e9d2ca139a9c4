//! The AWS credentials dialog driven like a user would, with egui_kittest:
//! keys typed, Check against a real moto STS, Save into AWS files in a temp
//! dir. A snapshot image of the dialog is kept in tests/snapshots.

mod common;
use cloudnap::ui::credentials::{Dialog, Status};
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use std::path::Path;
use std::time::{Duration, Instant};

const OTHER_CREDENTIALS: &str =
    "# keep me\n[other]\naws_access_key_id = AKIAOTHEROTHEROTHER1\naws_secret_access_key = other\n";
const OTHER_CONFIG: &str = "[profile other]\nregion = us-west-2\n";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

fn harness(dir: &Path, endpoint: String) -> Harness<'static, Dialog> {
    let dialog = Dialog::new(
        dir.join("settings.json"),
        (dir.join("credentials"), dir.join("config")),
        Some(endpoint),
        "us-east-1",
        "cloudnap",
    );
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
