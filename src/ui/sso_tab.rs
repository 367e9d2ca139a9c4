//! The credentials dialog's "SSO" tab: the SSO profiles of `~/.aws/config`,
//! each with a Sign-in button that runs the device authorization
//! (`cloud::aws::sso`) on a thread of its own and shows the page, the code
//! and how it goes.

use crate::cloud::aws::sso::{self, Progress, Prompt, Which};
use crate::core::config::sso::{sso_profiles, utc_text, SsoProfile};
use eframe::egui;
use std::path::PathBuf;
use std::sync::mpsc;

/// How the tab's sign-in goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignIn {
    Idle,
    /// Asking the service for a code, for this profile.
    Starting(String),
    /// Waiting for the user to approve `prompt` in the browser.
    Waiting {
        profile: String,
        prompt: Prompt,
    },
    /// Signed in; what to tell the user.
    Done(String),
    Failed(String),
}

/// What the sign-in thread reports.
enum Message {
    Prompt(Prompt),
    Done(Result<String, String>),
}

/// The tab's state.
pub struct SsoTab {
    pub state: SignIn,
    /// The AWS config file the profiles come from.
    config_file: PathBuf,
    /// Where the token is saved (`~/.aws/sso/cache`).
    pub cache_dir: PathBuf,
    /// The SSO OIDC endpoint (tests); `None`: the SDK's.
    pub endpoint_url: Option<String>,
    /// Whether the page is opened in the browser.
    pub open_browser: bool,
    profiles: Result<Vec<SsoProfile>, String>,
    pending: Option<mpsc::Receiver<Message>>,
}

impl SsoTab {
    /// The tab for the SSO profiles of `config_file`, saving tokens in
    /// `cache_dir`.
    pub fn new(config_file: PathBuf, cache_dir: PathBuf) -> Self {
        let profiles = match std::fs::read_to_string(&config_file) {
            Ok(text) => Ok(sso_profiles(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(format!("{}: {e}", config_file.display())),
        };
        SsoTab {
            state: SignIn::Idle,
            config_file,
            cache_dir,
            endpoint_url: None,
            open_browser: true,
            profiles,
            pending: None,
        }
    }

    /// Draws the tab and handles its buttons.
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        self.receive();
        ui.heading("Sign in with IAM Identity Center (SSO)");
        ui.label("Signs the profile in as `aws sso login` does; the AWS CLI uses the session too.");
        ui.add_space(8.0);
        let profiles = match &self.profiles {
            Ok(p) if p.is_empty() => {
                ui.label(format!(
                    "No SSO profile in {} (add one with `aws configure sso`).",
                    self.config_file.display()
                ));
                return;
            }
            Ok(p) => p.clone(),
            Err(e) => {
                ui.colored_label(ui.visuals().error_fg_color, e);
                return;
            }
        };
        let idle = self.pending.is_none();
        let mut chosen = None;
        egui::Grid::new("sso-profiles")
            .num_columns(3)
            .spacing([12.0, 8.0])
            .show(ui, |ui| {
                for p in &profiles {
                    ui.label(p.describe());
                    ui.label(&p.start_url);
                    let button = egui::Button::new(format!("Sign in {}", p.name));
                    if ui.add_enabled(idle, button).clicked() {
                        chosen = Some(p.name.clone());
                    }
                    ui.end_row();
                }
            });
        if let Some(name) = chosen {
            self.start(name, ui.ctx());
        }
        ui.add_space(8.0);
        self.show_state(ui);
    }

    fn show_state(&self, ui: &mut egui::Ui) {
        match &self.state {
            SignIn::Idle => {}
            SignIn::Starting(p) => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label(format!("Signing in {p}…"));
                });
            }
            SignIn::Waiting { profile, prompt } => {
                ui.label(format!(
                    "To sign in {profile}, open {} and enter the code {}",
                    prompt.verification_uri, prompt.user_code
                ));
                ui.hyperlink_to("Open the sign-in page", prompt.url());
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("Waiting for the approval…");
                });
            }
            SignIn::Done(msg) => {
                ui.colored_label(egui::Color32::DARK_GREEN, msg);
            }
            SignIn::Failed(e) => {
                ui.colored_label(ui.visuals().error_fg_color, e);
            }
        }
    }

    /// Takes what the sign-in thread said since the last frame.
    fn receive(&mut self) {
        let Some(rx) = &self.pending else { return };
        while let Ok(message) = rx.try_recv() {
            match message {
                Message::Prompt(prompt) => {
                    let profile = match &self.state {
                        SignIn::Starting(p) => p.clone(),
                        _ => String::new(),
                    };
                    self.state = SignIn::Waiting { profile, prompt };
                }
                Message::Done(result) => {
                    self.pending = None;
                    self.state = match result {
                        Ok(msg) => SignIn::Done(msg),
                        Err(e) => SignIn::Failed(e),
                    };
                    return;
                }
            }
        }
    }

    /// Starts the sign-in of profile `name` on a thread of its own.
    fn start(&mut self, name: String, ctx: &egui::Context) {
        let (tx, rx) = mpsc::channel();
        let (config, cache) = (self.config_file.clone(), self.cache_dir.clone());
        let which = Which {
            wanted: Some(name.clone()),
            default: None,
            endpoint_url: self.endpoint_url.clone(),
        };
        let (ctx, browser) = (ctx.clone(), self.open_browser);
        let spawned = std::thread::Builder::new()
            .name("sso-sign-in".into())
            .spawn(move || {
                let prompts = tx.clone();
                let repaint = ctx.clone();
                let mut progress = move |p: Progress| {
                    if let Progress::Prompt(prompt) = p {
                        if browser {
                            let _ = crate::ui::shell::open_url(prompt.url());
                        }
                        let _ = prompts.send(Message::Prompt(prompt));
                        repaint.request_repaint();
                    }
                };
                let result = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())
                    .and_then(|rt| {
                        rt.block_on(sso::login(&config, &cache, &which, &mut progress))
                            .map_err(|e| e.to_string())
                    })
                    .map(|s| {
                        format!(
                            "Signed in: {} until {}. cloudnap and the AWS CLI use it now.",
                            s.profile.describe(),
                            utc_text(s.expires_at)
                        )
                    });
                let _ = tx.send(Message::Done(result));
                ctx.request_repaint();
            });
        match spawned {
            Ok(_) => {
                self.pending = Some(rx);
                self.state = SignIn::Starting(name);
            }
            Err(e) => self.state = SignIn::Failed(e.to_string()),
        }
    }
}
