//! A test IAM Identity Center for the integration tests:
//! tests/fixtures/sso_server.py (the SSO OIDC JSON API and the portal's
//! GetRoleCredentials) on a loopback port, killed on drop.
#![allow(dead_code)] // each test binary uses a different subset

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
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
