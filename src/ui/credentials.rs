//! The AWS credentials dialog (egui): enter keys, check them with STS
//! `GetCallerIdentity`, save them as a named profile in the standard AWS
//! files and point settings.json at that profile; or, in its "SSO" tab
//! ([`SsoTab`]), sign an SSO profile in.

use crate::cloud::aws::{whoami_with_keys, Keys};
use crate::cloud::{CloudError, Identity};
use crate::core::config::settings::is_valid_region;
use crate::core::config::settings_edit::set_aws_profile;
use crate::store::atomic::write_atomic;
use crate::store::aws_files::{self, Profile};
use crate::ui::sso_tab::SsoTab;
use eframe::egui;
use std::path::PathBuf;
use std::sync::mpsc;

/// What the user typed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    pub region: String,
    pub profile: String,
}

impl Form {
    /// The profile to save, or what is wrong with the form, in words.
    pub fn validate(&self) -> Result<Profile, String> {
        let key = self.access_key_id.trim();
        if key.len() < 16
            || key.len() > 128
            || !key
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            return Err(
                "The access key ID is 16 or more capital letters and digits, like AKIA… or ASIA…."
                    .into(),
            );
        }
        let secret = self.secret_access_key.trim();
        if secret.is_empty() || secret.contains(char::is_whitespace) {
            return Err("Enter the secret access key.".into());
        }
        let token = self.session_token.trim();
        if key.starts_with("ASIA") && token.is_empty() {
            return Err("Temporary (ASIA…) keys need their session token.".into());
        }
        let region = self.region.trim();
        if !is_valid_region(region) {
            return Err(format!("`{region}` is not a region name like us-east-1."));
        }
        let name = self.profile.trim();
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err("The profile name may use letters, digits, `-`, `_` and `.`.".into());
        }
        Ok(Profile {
            name: name.into(),
            access_key_id: key.into(),
            secret_access_key: secret.into(),
            session_token: (!token.is_empty()).then(|| token.into()),
            region: region.into(),
        })
    }
}

/// What the dialog shows under the buttons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Empty,
    Checking,
    Valid(Identity),
    Failed(String),
    Saved(String),
}

/// The dialog's tabs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    AccessKeys,
    Sso,
}

/// The dialog's state.
pub struct Dialog {
    pub tab: Tab,
    pub form: Form,
    pub status: Status,
    /// The "SSO" tab.
    pub sso: SsoTab,
    endpoint_url: Option<String>,
    settings_path: PathBuf,
    /// The AWS shared credentials and config files.
    aws_files: (PathBuf, PathBuf),
    pending: Option<mpsc::Receiver<Result<Identity, CloudError>>>,
}

impl Dialog {
    /// A dialog that saves profiles into `aws_files` (credentials, config),
    /// the profile name into `settings_path`, and checks keys through
    /// `endpoint_url` (a local emulator) when set.
    pub fn new(
        settings_path: PathBuf,
        aws_files: (PathBuf, PathBuf),
        endpoint_url: Option<String>,
        region: &str,
        profile: &str,
    ) -> Self {
        let sso_cache = crate::store::sso_cache::dir()
            .unwrap_or_else(|_| aws_files.1.with_file_name("sso").join("cache"));
        Dialog {
            tab: Tab::AccessKeys,
            sso: SsoTab::new(aws_files.1.clone(), sso_cache),
            form: Form {
                region: region.into(),
                profile: profile.into(),
                ..Form::default()
            },
            status: Status::Empty,
            endpoint_url,
            settings_path,
            aws_files,
            pending: None,
        }
    }

    /// Draws the dialog (its tabs, then the chosen one) and handles its
    /// buttons.
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.selectable_value(&mut self.tab, Tab::AccessKeys, "Access keys");
            ui.selectable_value(&mut self.tab, Tab::Sso, "SSO");
        });
        ui.separator();
        match self.tab {
            Tab::AccessKeys => self.keys_ui(ui),
            Tab::Sso => self.sso.ui(ui),
        }
    }

    /// The access keys tab.
    fn keys_ui(&mut self, ui: &mut egui::Ui) {
        if let Some(Ok(result)) = self.pending.as_ref().map(|rx| rx.try_recv()) {
            self.pending = None;
            self.status = match result {
                Ok(id) => Status::Valid(id),
                Err(e) => Status::Failed(describe(&e)),
            };
        }
        ui.heading("AWS credentials");
        ui.label("cloudnap stops and starts your resources with these keys.");
        ui.add_space(8.0);
        egui::Grid::new("fields")
            .num_columns(2)
            .spacing([12.0, 8.0])
            .show(ui, |ui| {
                field(ui, "Access key ID", &mut self.form.access_key_id, false);
                field(
                    ui,
                    "Secret access key",
                    &mut self.form.secret_access_key,
                    true,
                );
                field(
                    ui,
                    "Session token (optional)",
                    &mut self.form.session_token,
                    true,
                );
                field(ui, "Region", &mut self.form.region, false);
                field(ui, "Profile name", &mut self.form.profile, false);
            });
        ui.add_space(8.0);
        ui.horizontal(|ui| {
            let idle = self.pending.is_none();
            if ui.add_enabled(idle, egui::Button::new("Check")).clicked() {
                self.check(ui.ctx());
            }
            if ui.add_enabled(idle, egui::Button::new("Save")).clicked() {
                self.save();
            }
        });
        ui.add_space(8.0);
        match &self.status {
            Status::Empty => {}
            Status::Checking => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("Checking with AWS…");
                });
            }
            Status::Valid(id) => {
                ui.colored_label(
                    egui::Color32::DARK_GREEN,
                    format!("Valid: account {}", id.account),
                );
                ui.label(&id.arn);
            }
            Status::Failed(e) => {
                ui.colored_label(ui.visuals().error_fg_color, e);
            }
            Status::Saved(msg) => {
                ui.label(msg);
            }
        }
    }

    fn check(&mut self, ctx: &egui::Context) {
        let profile = match self.form.validate() {
            Ok(p) => p,
            Err(e) => {
                self.status = Status::Failed(e);
                return;
            }
        };
        let (tx, rx) = mpsc::channel();
        let endpoint = self.endpoint_url.clone();
        let ctx = ctx.clone();
        let spawned = std::thread::Builder::new()
            .name("credentials-check".into())
            .spawn(move || {
                let result = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| CloudError::new(crate::cloud::ErrorKind::Other, e.to_string()))
                    .and_then(|rt| {
                        rt.block_on(whoami_with_keys(
                            &Keys {
                                access_key_id: &profile.access_key_id,
                                secret_access_key: &profile.secret_access_key,
                                session_token: profile.session_token.as_deref(),
                                region: &profile.region,
                            },
                            endpoint.as_deref(),
                        ))
                    });
                let _ = tx.send(result);
                ctx.request_repaint();
            });
        match spawned {
            Ok(_) => {
                self.pending = Some(rx);
                self.status = Status::Checking;
            }
            Err(e) => self.status = Status::Failed(e.to_string()),
        }
    }

    fn save(&mut self) {
        self.status = match self.form.validate().and_then(|p| self.write(&p)) {
            Ok(msg) => Status::Saved(msg),
            Err(e) => Status::Failed(e),
        };
    }

    fn write(&self, profile: &Profile) -> Result<String, String> {
        let settings = std::fs::read_to_string(&self.settings_path)
            .map_err(|e| format!("{}: {e}", self.settings_path.display()))?;
        // Refuse before touching the AWS files if settings.json is broken.
        let updated = set_aws_profile(&settings, &profile.name).map_err(|e| e.to_string())?;
        let (credentials, config) = &self.aws_files;
        aws_files::save(profile, credentials, config)
            .map_err(|e| format!("saving the profile: {e}"))?;
        write_atomic(&self.settings_path, updated.as_bytes())
            .map_err(|e| format!("{}: {e}", self.settings_path.display()))?;
        tracing::info!("saved AWS profile `{}`", profile.name);
        Ok(format!(
            "Saved profile `{}` to {}. cloudnap uses it now.",
            profile.name,
            credentials.display()
        ))
    }
}

/// One labelled text field; the label names the field for screen readers.
fn field(ui: &mut egui::Ui, label: &str, value: &mut String, secret: bool) {
    let label = ui.label(label);
    ui.add(
        egui::TextEdit::singleline(value)
            .password(secret)
            .desired_width(320.0),
    )
    .labelled_by(label.id);
    ui.end_row();
}

/// An AWS error in words a user can act on.
fn describe(e: &CloudError) -> String {
    use crate::cloud::ErrorKind;
    let hint = match e.kind {
        ErrorKind::Credentials => "AWS does not accept these keys. Check the key ID and secret (and the session token for ASIA… keys).",
        ErrorKind::AccessDenied => "The keys work but may not call sts:GetCallerIdentity.",
        ErrorKind::Network => "AWS could not be reached. Check the network.",
        _ => "AWS refused the check.",
    };
    format!("{hint}\n{e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> Form {
        Form {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            session_token: String::new(),
            region: "eu-west-1".into(),
            profile: "cloudnap".into(),
        }
    }

    #[test]
    fn a_complete_form_becomes_a_profile() {
        let p = form().validate().unwrap();
        assert_eq!(p.name, "cloudnap");
        assert_eq!(p.session_token, None);
    }

    #[test]
    fn each_bad_field_is_named() {
        let bad = |f: fn(&mut Form), needle: &str| {
            let mut x = form();
            f(&mut x);
            let e = x.validate().unwrap_err();
            assert!(e.contains(needle), "{e}");
        };
        bad(|f| f.access_key_id = "akia".into(), "access key ID");
        bad(|f| f.secret_access_key = " ".into(), "secret");
        bad(
            |f| f.access_key_id = "ASIAIOSFODNN7EXAMPLE".into(),
            "session token",
        );
        bad(|f| f.region = "mars".into(), "region");
        bad(|f| f.profile = "my profile".into(), "profile name");
        let mut temp = form();
        temp.access_key_id = "ASIAIOSFODNN7EXAMPLE".into();
        temp.session_token = "FwoGZXIvYXdzEJr".into();
        assert_eq!(
            temp.validate().unwrap().session_token.as_deref(),
            Some("FwoGZXIvYXdzEJr")
        );
    }
}
