//! `cloudnap-credentials`: the AWS credentials dialog window. Started by
//! `cloudnap credentials`, the tray menu, or `cloudnap run` when the
//! credentials do not work; saves into the config dir in `CLOUDNAP_CONFIG_DIR`
//! (or `--config-dir DIR`, or the platform's default).

use cloudnap::store::aws_files;
use cloudnap::store::config::Paths;
use cloudnap::ui::credentials::Dialog;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir: Option<std::path::PathBuf> = match args.as_slice() {
        [flag, dir] if flag == "--config-dir" => Some(dir.into()),
        [] => std::env::var_os("CLOUDNAP_CONFIG_DIR").map(Into::into),
        _ => {
            eprintln!("usage: cloudnap-credentials [--config-dir DIR]");
            return ExitCode::from(2);
        }
    };
    let paths = match dir {
        Some(dir) => Paths::in_dir(&dir),
        None => match Paths::platform() {
            Ok(p) => p,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let files = match aws_files::files() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let settings = paths.load_settings().map(|(s, _)| s).unwrap_or_default();
    let mut dialog = Dialog::new(
        paths.settings.clone(),
        files,
        settings.aws.endpoint_url.clone(),
        &settings.aws.regions[0],
        settings.aws.profile.as_deref().unwrap_or("cloudnap"),
    );
    let options = eframe::NativeOptions {
        viewport: eframe::egui::ViewportBuilder::default()
            .with_title("cloudnap: AWS credentials")
            .with_app_id("cloudnap")
            .with_inner_size([520.0, 380.0]),
        ..Default::default()
    };
    let shown = eframe::run_ui_native("cloudnap credentials", options, move |ui, _frame| {
        eframe::egui::Frame::central_panel(ui.style()).show(ui, |ui| dialog.ui(ui));
    });
    match shown {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot open the dialog: {e}");
            ExitCode::from(1)
        }
    }
}
