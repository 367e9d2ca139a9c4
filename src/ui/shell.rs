//! Small desktop actions: opening a file in the user's editor, starting the
//! credentials dialog (as its own process, so the daemon stays small), and
//! running that dialog's window.

use crate::ui::credentials::Dialog;
use std::path::Path;
use std::process::Command;

/// Opens `path` with the desktop's default application, without waiting.
pub fn open_path(path: &Path) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    let mut cmd = Command::new("xdg-open");
    #[cfg(target_os = "macos")]
    let mut cmd = Command::new("open");
    #[cfg(windows)]
    let mut cmd = {
        let mut c = Command::new("cmd");
        c.args(["/C", "start", ""]);
        c
    };
    reap(cmd.arg(path).spawn()?);
    Ok(())
}

/// Starts `cloudnap credentials` for the config dir of `settings_file`.
pub fn spawn_dialog(settings_file: &Path) -> std::io::Result<()> {
    let mut cmd = Command::new(std::env::current_exe()?);
    if let Some(dir) = settings_file.parent() {
        cmd.env("CLOUDNAP_CONFIG_DIR", dir);
    }
    reap(cmd.arg("credentials").spawn()?);
    Ok(())
}

/// Waits for `child` on a small thread so it does not linger as a zombie.
fn reap(mut child: std::process::Child) {
    let _ = std::thread::Builder::new()
        .name("reap".into())
        .stack_size(64 * 1024)
        .spawn(move || child.wait());
}

/// Shows the credentials dialog window until the user closes it.
pub fn run_dialog(mut dialog: Dialog) -> Result<(), eframe::Error> {
    let options = eframe::NativeOptions {
        viewport: eframe::egui::ViewportBuilder::default()
            .with_title("cloudnap: AWS credentials")
            .with_app_id("cloudnap")
            .with_inner_size([520.0, 380.0]),
        ..Default::default()
    };
    eframe::run_ui_native("cloudnap credentials", options, move |ui, _frame| {
        eframe::egui::Frame::central_panel(ui.style()).show(ui, |ui| dialog.ui(ui));
    })
}
