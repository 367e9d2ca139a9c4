//! The client side of the protocol, for `cloudnap send`: sends one command,
//! collects the reply (reassembling numbered parts) with a timeout.

use crate::core::protocol::auth;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use std::time::{SystemTime, UNIX_EPOCH};

/// Why no reply could be had.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("no reply from {0} within {1:?}: is cloudnap running (cloudnap run)?")]
    Timeout(SocketAddr, Duration),
    #[error("the reply is not JSON: {0}")]
    BadReply(String),
}

/// `command` (a text command or a JSON envelope) signed with `token` at
/// `now`: `AUTH:<unix-ts>:<nonce>:<hmac>:<command>`, accepted on loopback
/// and off it, never replayable.
pub fn signed(command: &str, token: &str, now: SystemTime) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    // Unique per command: the clock, this process, a counter.
    let nonce = format!(
        "{:x}-{:x}-{}",
        since.as_nanos() as u64,
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    auth::signed_datagram(token, since.as_secs() as i64, &nonce, command)
}

/// Whether a reply reports an error.
pub fn is_error(reply: &Value) -> bool {
    reply["ok"] == Value::Bool(false) || reply["type"] == "ERROR"
}

/// Sends `datagram` to `to` and waits up to `timeout` for the whole reply.
pub async fn request(
    to: SocketAddr,
    datagram: &[u8],
    timeout: Duration,
) -> Result<Value, ClientError> {
    let local: SocketAddr = if to.is_ipv4() {
        (Ipv4Addr::LOCALHOST, 0).into()
    } else {
        (Ipv6Addr::LOCALHOST, 0).into()
    };
    // A large receive buffer: a multi-part reply arrives as one burst.
    let socket = super::bind(local)?;
    socket.send_to(datagram, to).await?;
    let mut buf = vec![0u8; 65_536];
    let mut parts: BTreeMap<u64, String> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let (n, _) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf))
            .await
            .map_err(|_| ClientError::Timeout(to, timeout))??;
        let v: Value = serde_json::from_slice(&buf[..n])
            .map_err(|_| ClientError::BadReply(String::from_utf8_lossy(&buf[..n]).into_owned()))?;
        let (Some(part), Some(total), Some(data)) =
            (v["part"].as_u64(), v["parts"].as_u64(), v["data"].as_str())
        else {
            return Ok(v);
        };
        parts.insert(part, data.to_string());
        if parts.len() as u64 == total {
            let whole: String = parts.into_values().collect();
            return serde_json::from_str(&whole).map_err(|_| ClientError::BadReply(whole));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_signed_command_has_its_own_nonce_and_the_current_time() {
        let now = UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        let (a, b) = (
            signed("STATUS", "t0k3n-abc", now),
            signed("STATUS", "t0k3n-abc", now),
        );
        assert_ne!(a, b);
        let r = crate::core::protocol::commands::parse(a.as_bytes()).unwrap();
        let auth::Credential::Signed(sig) = r.credential else {
            panic!("{a}")
        };
        assert_eq!(
            (sig.timestamp, sig.payload.as_str()),
            (1_800_000_000, "STATUS")
        );
        assert!(!a.contains("t0k3n-abc"));
    }
}
