//! A test IAM Identity Center for the integration tests:
//! tests/fixtures/sso_server.py (the SSO OIDC JSON API and the portal's
//! GetRoleCredentials) on a loopback port, killed on drop.
#![allow(dead_code)] // each test binary uses a different subset

use crate::common::ConfigDir;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};

/// The test SSO server, killed on drop; its request log kept.
pub struct SsoServer {
    child: Child,
    /// Its base URL (`http://127.0.0.1:PORT`).
    pub url: String,
    log: Arc<Mutex<String>>,
}

impl SsoServer {
    /// Starts it with `args` (`--pending N`, `--final token|denied|expired`,
    /// `--role-ttl SECONDS`).
    pub fn start(args: &[&str]) -> SsoServer {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sso_server.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap()
            .to_string();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let mut s = sink.lock().unwrap();
                s.push_str(&l);
                s.push('\n');
            }
        });
        SsoServer {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    /// Its requests so far, one `REQUEST ...` line each.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for SsoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// sha1("corp"): the name of the token cache file of the session `corp`.
pub const CORP_FILE: &str = "ee0bfd2552fbd840c02cc48b6e823320543c450f.json";

/// A config dir whose AWS config has the SSO profile `work` (session
/// `corp`) and the legacy SSO profile `old`, with a home of its own.
pub fn sso_config(settings: &str, services: &str) -> ConfigDir {
    let cfg = ConfigDir::with_settings(settings, services);
    std::fs::create_dir_all(cfg.file("home/.aws")).unwrap();
    std::fs::write(
        cfg.file("aws-config"),
        "[profile work]\nsso_session = corp\nsso_account_id = 111122223333\nsso_role_name = Dev\nregion = us-east-1\n\n\
         [sso-session corp]\nsso_start_url = https://corp.test/start\nsso_region = us-east-1\nsso_registration_scopes = sso:account:access\n\n\
         [profile old]\nsso_start_url = https://legacy.test/start\nsso_region = us-east-1\nsso_account_id = 444455556666\nsso_role_name = Admin\nregion = us-east-1\n",
    )
    .unwrap();
    cfg
}

/// The SSO token cache directory of `cfg`'s home.
pub fn cache_dir(cfg: &ConfigDir) -> PathBuf {
    cfg.file("home/.aws/sso/cache")
}

/// `cloudnap login args` in `cfg` against `sso`, with no browser.
pub fn login(cfg: &ConfigDir, sso: &SsoServer, args: &[&str]) -> Output {
    let mut all = vec!["login", "--no-browser"];
    all.extend_from_slice(args);
    let out = cfg
        .command(&all)
        .env("HOME", cfg.file("home"))
        .env("AWS_ENDPOINT_URL_SSO_OIDC", &sso.url)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .output()
        .unwrap();
    eprintln!(
        "$ cloudnap {}\n{}{}",
        all.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Ends every session of `sso` (its portal refuses their tokens from now).
pub fn end_sessions(sso: &SsoServer) {
    let ok = Command::new("curl")
        .args(["-sf", "-o", "/dev/null", "-X", "POST"])
        .arg(format!("{}/test/end-sessions", sso.url))
        .status()
        .unwrap()
        .success();
    assert!(ok, "end the test server's sessions");
}
