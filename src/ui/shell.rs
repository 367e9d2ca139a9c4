//! Small desktop actions: opening a file in the user's editor or a page in
//! the browser, and starting
//! the credentials dialog, which is its own binary so the daemon carries no
//! renderer (egui/wgpu) code.

use std::path::Path;
use std::process::Command;

/// The credentials dialog's binary, installed next to `cloudnap`.
pub const DIALOG_BIN: &str = "cloudnap-credentials";

/// The desktop's "open this" command (xdg-open, open, start).
fn opener() -> Command {
    #[cfg(target_os = "linux")]
    let cmd = Command::new("xdg-open");
    #[cfg(target_os = "macos")]
    let cmd = Command::new("open");
    #[cfg(windows)]
    let cmd = {
        let mut c = Command::new("cmd");
        c.args(["/C", "start", ""]);
        c
    };
    cmd
}

/// Opens `path` with the desktop's default application, without waiting.
pub fn open_path(path: &Path) -> std::io::Result<()> {
    reap(opener().arg(path).spawn()?);
    Ok(())
}

/// Opens `url` in the default browser, without waiting; the opener's
/// output goes nowhere (a text browser never takes over the terminal).
pub fn open_url(url: &str) -> std::io::Result<()> {
    use std::process::Stdio;
    let mut cmd = opener();
    cmd.arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    reap(cmd.spawn()?);
    Ok(())
}

/// The dialog binary (beside this executable) for the config dir of
/// `settings_file`.
pub fn dialog_command(settings_file: &Path) -> std::io::Result<Command> {
    let exe = std::env::current_exe()?
        .with_file_name(format!("{DIALOG_BIN}{}", std::env::consts::EXE_SUFFIX));
    let mut cmd = Command::new(exe);
    if let Some(dir) = settings_file.parent() {
        cmd.env("CLOUDNAP_CONFIG_DIR", dir);
    }
    Ok(cmd)
}

/// Starts the dialog without waiting for it.
pub fn spawn_dialog(settings_file: &Path) -> std::io::Result<()> {
    reap(dialog_command(settings_file)?.spawn()?);
    Ok(())
}

/// Waits for `child` on a small thread so it does not linger as a zombie.
fn reap(mut child: std::process::Child) {
    let _ = std::thread::Builder::new()
        .name("reap".into())
        .stack_size(64 * 1024)
        .spawn(move || child.wait());
}
