//! The client side of the protocol, for `cloudnap send`: sends one command,
//! collects the reply (reassembling numbered parts) with a timeout.

use serde_json::Value;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

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

/// Adds `token` to a text command (`TOKEN:<t>:...`) or a JSON envelope.
pub fn with_token(command: &str, token: &str) -> String {
    let trimmed = command.trim();
    if trimmed.starts_with('{') {
        if let Ok(Value::Object(mut m)) = serde_json::from_str::<Value>(trimmed) {
            m.entry("token").or_insert_with(|| Value::from(token));
            return Value::Object(m).to_string();
        }
        return command.to_string();
    }
    if trimmed.len() >= 6 && trimmed[..6].eq_ignore_ascii_case("TOKEN:") {
        command.to_string()
    } else {
        format!("TOKEN:{token}:{trimmed}")
    }
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
    fn tokens_are_added_once_in_the_right_form() {
        assert_eq!(with_token("STATUS", "t0k3n-abc"), "TOKEN:t0k3n-abc:STATUS");
        assert_eq!(with_token("TOKEN:x:STATUS", "t0k3n-abc"), "TOKEN:x:STATUS");
        let j: Value =
            serde_json::from_str(&with_token(r#"{"type":"STATUS"}"#, "t0k3n-abc")).unwrap();
        assert_eq!(j["token"], "t0k3n-abc");
    }
}
