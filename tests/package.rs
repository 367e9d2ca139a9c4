//! The Debian package (build/deb.sh), from this build's debug binaries:
//! installed on this machine with `apt-get install ./cloudnap_*.deb`, used
//! (`--version`, `man`, a bash completion), then removed with `dpkg -r` and
//! purged. Needs root and a Debian system (build/test.sh's machine).
//!
//! While installed, /usr/bin/cloudnap exists; every other test runs the
//! target dir's binary (`CARGO_BIN_EXE_cloudnap`), never the one on PATH.
#![cfg(target_os = "linux")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const FILES: [&str; 9] = [
    "/usr/bin/cloudnap",
    "/usr/bin/cloudnap-credentials",
    "/usr/share/man/man1/cloudnap.1.gz",
    "/usr/share/bash-completion/completions/cloudnap",
    "/usr/share/zsh/vendor-completions/_cloudnap",
    "/usr/share/fish/vendor_completions.d/cloudnap.fish",
    "/usr/lib/systemd/user/cloudnap.service",
    "/usr/share/icons/hicolor/64x64/apps/cloudnap.png",
    AUTOSTART,
];
/// The one conffile: `dpkg -r` keeps it, `dpkg -P` removes it.
const AUTOSTART: &str = "/etc/xdg/autostart/cloudnap.desktop";

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?} did not start: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(cmd: &mut Command) -> String {
    String::from_utf8(run(cmd).stdout).unwrap()
}

/// Purges the package when dropped, so a failing test leaves nothing installed.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["-P", "cloudnap"]).output();
    }
}

fn build_deb(out: &Path) -> PathBuf {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_cloudnap")).parent().unwrap();
    assert_eq!(
        Path::new(env!("CARGO_BIN_EXE_cloudnap-credentials")).parent(),
        Some(bin_dir)
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("build/deb.sh");
    let printed = stdout(
        Command::new(script)
            .arg("--from")
            .arg(bin_dir)
            .arg("--out")
            .arg(out)
            .arg("--fast"),
    );
    let deb = PathBuf::from(printed.lines().last().unwrap());
    let name = format!("cloudnap_{}_amd64.deb", env!("CARGO_PKG_VERSION"));
    assert_eq!(deb.file_name().unwrap().to_str(), Some(name.as_str()));
    deb
}

/// What `bash` completes `cloudnap WORD` to, with the installed script.
fn bash_completes(word: &str) -> String {
    let script = format!(
        "source /usr/share/bash-completion/completions/cloudnap
         COMP_WORDS=(cloudnap {word}); COMP_CWORD=1; COMP_LINE='cloudnap {word}'; COMP_POINT=${{#COMP_LINE}}
         _cloudnap cloudnap {word} cloudnap; echo \"${{COMPREPLY[*]}}\""
    );
    stdout(Command::new("bash").args(["-c", &script]))
        .trim()
        .to_string()
}

#[test]
fn the_deb_installs_runs_and_removes_cleanly() {
    assert!(
        !Path::new("/usr/bin/cloudnap").exists() || dpkg_status().contains("installed"),
        "/usr/bin/cloudnap exists and is not from a cloudnap package"
    );
    let _installed = Installed;
    let _ = Command::new("dpkg").args(["-P", "cloudnap"]).output();
    let dir = tempfile::tempdir().unwrap();
    let deb = build_deb(dir.path());
    let depends = stdout(Command::new("dpkg-deb").arg("-f").arg(&deb).arg("Depends"));
    for lib in [
        "libc6",
        "libdbus-1-3",
        "libx11-6",
        "libxtst6",
        "libasound2",
        "libegl1",
    ] {
        assert!(depends.contains(lib), "Depends lacks {lib}: {depends}");
    }

    run(Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends"])
        .arg(format!("./{}", deb.file_name().unwrap().to_str().unwrap()))
        .current_dir(dir.path())
        .env("DEBIAN_FRONTEND", "noninteractive"));
    assert!(dpkg_status().starts_with("install ok installed"));
    for f in FILES {
        assert!(Path::new(f).is_file(), "{f} is not installed");
    }
    for bin in ["/usr/bin/cloudnap", "/usr/bin/cloudnap-credentials"] {
        let ldd = stdout(Command::new("ldd").arg(bin));
        assert!(!ldd.contains("not found"), "{bin}: {ldd}");
    }
    let version = stdout(Command::new("/usr/bin/cloudnap").arg("--version"));
    assert_eq!(version, format!("cloudnap {}\n", env!("CARGO_PKG_VERSION")));
    man_pages_are_found();
    assert_eq!(bash_completes("ho"), "hold");
    assert_eq!(bash_completes("s"), "sleep status send ssh-proxy");
    let unit = std::fs::read_to_string("/usr/lib/systemd/user/cloudnap.service").unwrap();
    assert!(
        unit.contains("\nExecStart=/usr/bin/cloudnap run\n"),
        "{unit}"
    );
    let entry = std::fs::read_to_string(AUTOSTART).unwrap();
    assert!(entry.contains("\nExec=cloudnap run\n"), "{entry}");

    removed_then_purged();
}

/// `man` finds the installed pages: the main one (without the hidden
/// subcommand) and the subcommands' it refers to.
fn man_pages_are_found() {
    let page = stdout(Command::new("man").args(["-w", "cloudnap"]));
    assert_eq!(page.trim(), "/usr/share/man/man1/cloudnap.1.gz");
    let man = |page: &str| {
        stdout(
            Command::new("man")
                .args(["-P", "cat", page])
                .env("MANWIDTH", "100"),
        )
    };
    let text = man("cloudnap");
    for expected in ["--config-dir", "hold", "report", "--version"] {
        assert!(
            text.contains(expected),
            "man cloudnap lacks {expected}:\n{text}"
        );
    }
    assert!(
        !text.contains("package-files"),
        "the hidden subcommand is in the man page"
    );
    let hold = man("cloudnap-hold");
    assert!(hold.contains("--reason"), "man cloudnap-hold:\n{hold}");
    let page = stdout(Command::new("man").args(["-w", "cloudnap-team-init"]));
    assert_eq!(page.trim(), "/usr/share/man/man1/cloudnap-team-init.1.gz");
}

/// `dpkg -r` removes every file but the conffile, `dpkg -P` that too.
fn removed_then_purged() {
    run(Command::new("dpkg").args(["-r", "cloudnap"]));
    for f in FILES.iter().filter(|f| **f != AUTOSTART) {
        assert!(!Path::new(f).exists(), "{f} is left after dpkg -r");
    }
    assert!(
        Path::new(AUTOSTART).exists(),
        "dpkg -r removed the conffile"
    );
    assert!(dpkg_status().contains("config-files"), "{}", dpkg_status());
    run(Command::new("dpkg").args(["-P", "cloudnap"]));
    assert!(
        !Path::new(AUTOSTART).exists(),
        "{AUTOSTART} is left after dpkg -P"
    );
    let status = dpkg_status();
    assert!(
        status.is_empty() || status.ends_with("not-installed"),
        "cloudnap is still known to dpkg: {status}"
    );
}

/// `dpkg-query`'s status line of the package ("" when dpkg does not know it).
fn dpkg_status() -> String {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${Status}", "cloudnap"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
