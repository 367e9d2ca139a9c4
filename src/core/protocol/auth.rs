//! Who may command cloudnap: tokens, signed commands (HMAC-SHA256 keyed
//! with `udp_server.token` over a timestamp, a nonce and the command) and
//! the replay guard. Pure: time is an argument.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

/// A signed command is accepted this many seconds either side of our clock.
pub const WINDOW_SECS: i64 = 60;
/// Nonces remembered at most (each for the window); past it the oldest are
/// dropped and nothing as old as them is accepted any more.
pub const REPLAY_CAPACITY: usize = 100_000;

/// How a datagram proves that it may command cloudnap.
#[derive(Debug, Clone, PartialEq)]
pub enum Credential {
    /// Nothing.
    None,
    /// The secret itself (`TOKEN:<t>:...` or a JSON `"token"`): loopback only.
    Token(String),
    /// `AUTH:<ts>:<nonce>:<mac>:...` or a JSON `auth` object.
    Signed(Signature),
}

/// A signed command's proof; the MAC covers `"<timestamp>:<nonce>:<payload>"`.
#[derive(Debug, Clone, PartialEq)]
pub struct Signature {
    /// Unix seconds when it was signed.
    pub timestamp: i64,
    /// Unique per command: 1 to 64 of `A-Z a-z 0-9 _ -`.
    pub nonce: String,
    /// HMAC-SHA256, decoded from hex.
    pub mac: Vec<u8>,
    /// The command exactly as signed (text or a JSON envelope).
    pub payload: String,
}

/// Why a credential is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AuthError {
    #[error("missing token: send AUTH:<unix-ts>:<nonce>:<hmac>:COMMAND (cloudnap send signs by itself) or TOKEN:<token>:COMMAND")]
    Missing,
    #[error("wrong token")]
    WrongToken,
    #[error("plain TOKEN is refused here: it carries the secret in clear text and can be replayed; sign the command instead: AUTH:<unix-ts>:<nonce>:<hmac>:COMMAND (see docs/protocol.md; cloudnap send signs by itself)")]
    PlainToken,
    #[error("missing signature: commands here must be signed: AUTH:<unix-ts>:<nonce>:<hmac>:COMMAND (see docs/protocol.md; cloudnap send signs by itself)")]
    Unsigned,
    #[error("signed commands need udp_server.token to be set in settings.json")]
    NoKey,
    #[error("wrong signature")]
    BadMac,
    #[error("timestamp {skew:+} s from this machine's clock (allowed ±{WINDOW_SECS} s): check the clocks")]
    Stale { skew: i64 },
    #[error("replayed: this timestamp and nonce were already used")]
    Replayed,
    #[error("permission denied: this cloudnap belongs to another user")]
    OtherUser,
    #[error("permission denied: could not tell which user sent this ({0})")]
    UnknownSender(String),
}

/// What the server requires of a datagram.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// `udp_server.token`.
    pub token: Option<String>,
    /// Commands must be signed (`TOKEN:` refused): always off loopback.
    pub require_signature: bool,
}

/// The string a signature covers.
fn message(timestamp: i64, nonce: &str, payload: &str) -> String {
    format!("{timestamp}:{nonce}:{payload}")
}

fn hmac(key: &str) -> Hmac<Sha256> {
    // HMAC takes keys of any length.
    Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC accepts any key length")
}

/// The hex MAC of `payload` signed at `timestamp` with `nonce`.
pub fn sign(key: &str, timestamp: i64, nonce: &str, payload: &str) -> String {
    let mut mac = hmac(key);
    mac.update(message(timestamp, nonce, payload).as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// `payload` as a signed text datagram: `AUTH:<ts>:<nonce>:<mac>:<payload>`.
pub fn signed_datagram(key: &str, timestamp: i64, nonce: &str, payload: &str) -> String {
    let payload = payload.trim();
    format!(
        "AUTH:{timestamp}:{nonce}:{}:{payload}",
        sign(key, timestamp, nonce, payload)
    )
}

/// Whether `nonce` has the allowed form.
pub fn valid_nonce(nonce: &str) -> bool {
    (1..=64).contains(&nonce.len())
        && nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Equality of two secrets that does not tell, by its timing, how much of
/// them matched: compares their SHA-256 digests.
fn same_secret(a: &str, b: &str) -> bool {
    Sha256::digest(a.as_bytes()) == Sha256::digest(b.as_bytes())
}

/// Remembers the signed commands seen within the window, so none runs twice.
#[derive(Debug, Default)]
pub struct ReplayGuard {
    seen: BTreeSet<(i64, String)>,
    /// Nothing signed at or before this is accepted (set when the cache
    /// overflowed and dropped its oldest entries).
    floor: Option<i64>,
}

impl ReplayGuard {
    /// Checks `credential` against `policy` at `now` (unix seconds) and
    /// remembers a signed one.
    pub fn admit(
        &mut self,
        policy: &Policy,
        credential: &Credential,
        now: i64,
    ) -> Result<(), AuthError> {
        match (credential, &policy.token) {
            (Credential::Signed(_), None) => Err(AuthError::NoKey),
            (Credential::Signed(sig), Some(key)) => self.check_signed(key, sig, now),
            (Credential::Token(_), _) if policy.require_signature => Err(AuthError::PlainToken),
            (Credential::None, _) if policy.require_signature => Err(AuthError::Unsigned),
            (_, None) => Ok(()),
            (Credential::Token(t), Some(key)) if same_secret(t, key) => Ok(()),
            (Credential::Token(_), Some(_)) => Err(AuthError::WrongToken),
            (Credential::None, Some(_)) => Err(AuthError::Missing),
        }
    }

    fn check_signed(&mut self, key: &str, sig: &Signature, now: i64) -> Result<(), AuthError> {
        let mut mac = hmac(key);
        mac.update(message(sig.timestamp, &sig.nonce, &sig.payload).as_bytes());
        mac.verify_slice(&sig.mac).map_err(|_| AuthError::BadMac)?;
        let skew = sig.timestamp.saturating_sub(now);
        if skew.abs() > WINDOW_SECS {
            return Err(AuthError::Stale { skew });
        }
        // Entries older than the window can never match again.
        let keep = self.seen.split_off(&(now - WINDOW_SECS, String::new()));
        self.seen = keep;
        if self.floor.is_some_and(|f| sig.timestamp <= f)
            || !self.seen.insert((sig.timestamp, sig.nonce.clone()))
        {
            return Err(AuthError::Replayed);
        }
        if self.seen.len() > REPLAY_CAPACITY {
            if let Some((oldest, _)) = self.seen.pop_first() {
                self.floor = Some(self.floor.map_or(oldest, |f| f.max(oldest)));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "s3cr3t-token";
    const NOW: i64 = 1_800_000_000;

    fn signed(ts: i64, nonce: &str, payload: &str) -> Credential {
        Credential::Signed(Signature {
            timestamp: ts,
            nonce: nonce.into(),
            mac: hex::decode(sign(KEY, ts, nonce, payload)).unwrap(),
            payload: payload.into(),
        })
    }

    fn network() -> Policy {
        Policy {
            token: Some(KEY.into()),
            require_signature: true,
        }
    }

    #[test]
    fn the_mac_is_hmac_sha256_over_timestamp_nonce_and_command() {
        // Computed independently: python3 -c 'import hmac; print(hmac.new(
        //   b"s3cr3t-token", b"1800000000:n1:STATUS", "sha256").hexdigest())'
        assert_eq!(
            sign(KEY, NOW, "n1", "STATUS"),
            "b5f8cf4f0bd70ea3aa620edda59dedd31a89f5db57cb57e8c97f01758ddeb669"
        );
        assert_ne!(
            sign(KEY, NOW, "n1", "STATUS"),
            sign(KEY, NOW, "n2", "STATUS")
        );
        assert_ne!(
            sign(KEY, NOW, "n1", "STATUS"),
            sign("other-key", NOW, "n1", "STATUS")
        );
        assert!(signed_datagram(KEY, NOW, "n1", " STATUS\n").ends_with(":STATUS"));
    }

    #[test]
    fn a_signed_command_runs_once_within_the_window() {
        let mut g = ReplayGuard::default();
        assert_eq!(
            g.admit(&network(), &signed(NOW, "a", "STATUS"), NOW),
            Ok(())
        );
        assert_eq!(
            g.admit(&network(), &signed(NOW, "a", "STATUS"), NOW + 1),
            Err(AuthError::Replayed)
        );
        assert_eq!(
            g.admit(&network(), &signed(NOW, "b", "STATUS"), NOW + 1),
            Ok(())
        );
        assert_eq!(
            g.admit(&network(), &signed(NOW - 120, "c", "STATUS"), NOW),
            Err(AuthError::Stale { skew: -120 })
        );
        assert_eq!(
            g.admit(&network(), &signed(NOW + 61, "d", "STATUS"), NOW),
            Err(AuthError::Stale { skew: 61 })
        );
        assert_eq!(
            g.admit(&network(), &signed(NOW + 60, "d", "STATUS"), NOW),
            Ok(())
        );
    }

    #[test]
    fn a_wrong_mac_or_an_altered_command_is_refused() {
        let mut g = ReplayGuard::default();
        let Credential::Signed(mut sig) = signed(NOW, "a", "STATUS") else {
            unreachable!()
        };
        sig.payload = "SLEEP_NOW".into();
        assert_eq!(
            g.admit(&network(), &Credential::Signed(sig.clone()), NOW),
            Err(AuthError::BadMac)
        );
        sig.mac.truncate(10);
        assert_eq!(
            g.admit(&network(), &Credential::Signed(sig), NOW),
            Err(AuthError::BadMac)
        );
        let no_key = Policy {
            token: None,
            require_signature: false,
        };
        assert_eq!(
            g.admit(&no_key, &signed(NOW, "b", "STATUS"), NOW),
            Err(AuthError::NoKey)
        );
    }

    #[test]
    fn plain_tokens_only_where_no_signature_is_required() {
        let mut g = ReplayGuard::default();
        let token = |t: &str| Credential::Token(t.into());
        assert_eq!(
            g.admit(&network(), &token(KEY), NOW),
            Err(AuthError::PlainToken)
        );
        assert_eq!(
            g.admit(&network(), &Credential::None, NOW),
            Err(AuthError::Unsigned)
        );
        let loopback = Policy {
            token: Some(KEY.into()),
            require_signature: false,
        };
        assert_eq!(g.admit(&loopback, &token(KEY), NOW), Ok(()));
        assert_eq!(
            g.admit(&loopback, &token("nope-nope"), NOW),
            Err(AuthError::WrongToken)
        );
        assert_eq!(
            g.admit(&loopback, &Credential::None, NOW),
            Err(AuthError::Missing)
        );
        assert_eq!(g.admit(&loopback, &signed(NOW, "x", "STATUS"), NOW), Ok(()));
        let open = Policy {
            token: None,
            require_signature: false,
        };
        assert_eq!(g.admit(&open, &Credential::None, NOW), Ok(()));
    }

    #[test]
    fn the_cache_stays_bounded_and_never_lets_a_replay_through() {
        let mut g = ReplayGuard::default();
        for i in 0..=REPLAY_CAPACITY {
            let ts = NOW - 30 + (i % 2) as i64;
            g.admit(&network(), &signed(ts, &format!("n{i}"), "S"), NOW)
                .unwrap();
        }
        assert!(g.seen.len() <= REPLAY_CAPACITY);
        // The dropped entries were the oldest: all of that second is closed.
        assert_eq!(
            g.admit(&network(), &signed(NOW - 30, "n0", "S"), NOW),
            Err(AuthError::Replayed)
        );
        assert_eq!(g.admit(&network(), &signed(NOW, "fresh", "S"), NOW), Ok(()));
        // Entries past the window are let go.
        g.admit(&network(), &signed(NOW + 100, "later", "S"), NOW + 100)
            .unwrap();
        assert!(g.seen.len() <= 2, "{}", g.seen.len());
    }

    #[test]
    fn nonces_have_a_bounded_plain_form() {
        assert!(valid_nonce("a-Z_9") && !valid_nonce("") && !valid_nonce("a:b"));
        assert!(!valid_nonce(&"x".repeat(65)));
    }
}
