//! The UDP command server. It takes its socket and a shutdown future (so
//! tests bind port 0), answers every datagram exactly once (a large reply in
//! numbered parts), checks the token, and rate-limits AWS commands per source.

pub mod client;

use crate::core::protocol::{self, Command, Format, Request};
use crate::core::reply::{CommandError, Reply};
use crate::core::status::Event;
use serde_json::Value;
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio::net::UdpSocket;
use tokio::sync::Semaphore;

/// Largest reply datagram; larger replies are split into parts.
pub const MAX_REPLY: usize = 60_000;
/// Commands handled at once; more are answered "busy".
const MAX_IN_FLIGHT: usize = 1024;

/// Carries out commands.
pub trait Handler: Send + Sync + 'static {
    /// Runs one command.
    fn handle(&self, command: Command) -> impl Future<Output = Result<Reply, CommandError>> + Send;
}

/// Server options from `udp_server`.
#[derive(Debug, Clone)]
pub struct Options {
    /// Every command must carry this token, if set.
    pub token: Option<String>,
    /// Largest datagram accepted.
    pub max_datagram: usize,
    /// AWS commands per second per source address (burst of the same size).
    pub aws_rate: f64,
    /// Where replies and events are echoed, if set.
    pub echo: Option<SocketAddr>,
}

/// A per-source token bucket. Pure: takes `now`.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    buckets: HashMap<IpAddr, (f64, Instant)>,
}

impl RateLimiter {
    /// `rate` commands per second, with a burst of `rate`.
    pub fn new(rate: f64) -> Self {
        RateLimiter {
            rate,
            buckets: HashMap::new(),
        }
    }

    /// Whether `source` may run one more command at `now`.
    pub fn allow(&mut self, source: IpAddr, now: Instant) -> bool {
        if self.buckets.len() > 10_000 {
            self.buckets.clear(); // a spoofed-source flood cannot grow memory
        }
        let (tokens, last) = self.buckets.entry(source).or_insert((self.rate, now));
        *tokens = (*tokens + now.saturating_duration_since(*last).as_secs_f64() * self.rate)
            .min(self.rate);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Reply ids: unique within the process.
fn reply_id() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let start = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!("{:x}-{}", start, N.fetch_add(1, Ordering::Relaxed))
}

/// Sends `reply` to `to` (and the echo address), split into parts if large.
async fn send_reply(socket: &UdpSocket, to: SocketAddr, echo: Option<SocketAddr>, reply: Value) {
    let reply_to = reply
        .get("reply_to")
        .and_then(Value::as_str)
        .map(String::from);
    let text = reply.to_string();
    for datagram in protocol::split(&text, reply_to.as_deref(), MAX_REPLY) {
        for dest in std::iter::once(to).chain(echo) {
            if let Err(e) = socket.send_to(datagram.as_bytes(), dest).await {
                tracing::debug!("reply to {dest}: {e}");
            }
        }
    }
}

fn shape(format: &Format, result: Result<Reply, CommandError>) -> Value {
    protocol::reply(format, result, &reply_id(), SystemTime::now())
}

/// A request refused before it ran, and how to reply to it.
type Refusal = Box<(Format, CommandError)>;

/// Parses and checks one datagram.
fn admit(
    datagram: &[u8],
    opts: &Options,
    limiter: &mut RateLimiter,
    from: SocketAddr,
) -> Result<Request, Refusal> {
    if datagram.len() > opts.max_datagram {
        return Err(Box::new((
            Format::Text {
                name: String::new(),
            },
            CommandError::Refused(format!(
                "datagram too large: {} bytes (udp_server.buffer_size is {})",
                datagram.len(),
                opts.max_datagram
            )),
        )));
    }
    let req = protocol::parse(datagram)
        .map_err(|e| Box::new((e.format, CommandError::Invalid(e.message))))?;
    if let Some(token) = &opts.token {
        if req.token.as_deref() != Some(token.as_str()) {
            tracing::warn!("rejected a command from {from}: missing or wrong token");
            return Err(Box::new((
                req.format,
                CommandError::Refused(
                    "missing or wrong token: send TOKEN:<token>:COMMAND or a JSON \"token\" field"
                        .into(),
                ),
            )));
        }
    }
    if req.command.calls_aws() && !limiter.allow(from.ip(), Instant::now()) {
        return Err(Box::new((
            req.format,
            CommandError::Refused(format!(
                "rate limited: at most {} AWS commands per second from one address",
                opts.aws_rate
            )),
        )));
    }
    Ok(req)
}

/// Binds the server socket with a 4 MiB receive buffer (capped by the OS),
/// so a burst of commands is queued rather than dropped.
pub fn bind(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let Err(e) = socket.set_recv_buffer_size(4 << 20) {
        tracing::debug!("receive buffer: {e}");
    }
    socket.bind(&addr.into())?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket.into())
}

/// Serves commands on `socket` until `shutdown` resolves.
pub async fn serve<H: Handler>(
    socket: UdpSocket,
    opts: Options,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()>,
) {
    let socket = Arc::new(socket);
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut limiter = RateLimiter::new(opts.aws_rate);
    let mut buf = vec![0u8; 65_536];
    tokio::pin!(shutdown);
    loop {
        let (n, from) = tokio::select! {
            _ = &mut shutdown => return,
            r = socket.recv_from(&mut buf) => match r {
                Ok(r) => r,
                Err(e) => {
                    // e.g. ICMP port unreachable from an earlier reply
                    tracing::debug!("recv: {e}");
                    continue;
                }
            },
        };
        let req = match admit(&buf[..n], &opts, &mut limiter, from) {
            Ok(req) => req,
            Err(refusal) => {
                let (format, error) = *refusal;
                send_reply(&socket, from, opts.echo, shape(&format, Err(error))).await;
                continue;
            }
        };
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            let busy = Err(CommandError::Refused(
                "busy: too many commands in flight, try again".into(),
            ));
            send_reply(&socket, from, opts.echo, shape(&req.format, busy)).await;
            continue;
        };
        let (socket, handler, echo) = (socket.clone(), handler.clone(), opts.echo);
        tokio::spawn(async move {
            let result = handler.handle(req.command).await;
            send_reply(&socket, from, echo, shape(&req.format, result)).await;
            drop(permit);
        });
    }
}

/// Logs app events (state changes), passes each to `also` and sends it to the
/// echo address, if any, as `{"type": "EVENT", "source": "cloudnap",
/// "timestamp", "content": {"event", "detail"}}`, until the channel closes.
pub async fn echo_events(
    mut events: tokio::sync::mpsc::UnboundedReceiver<Event>,
    echo: Option<SocketAddr>,
    mut also: impl FnMut(&Event),
) {
    let socket = match echo {
        Some(addr) => {
            let bind: SocketAddr = if addr.is_ipv4() {
                ([127, 0, 0, 1], 0).into()
            } else {
                (std::net::Ipv6Addr::LOCALHOST, 0).into()
            };
            UdpSocket::bind(bind).await.ok().map(|s| (s, addr))
        }
        None => None,
    };
    while let Some(event) = events.recv().await {
        tracing::debug!(target: "cloudnap::events", "{event:?}");
        also(&event);
        if let Some((s, addr)) = &socket {
            let timestamp = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
            let body = serde_json::json!({"type": "EVENT", "source": "cloudnap", "timestamp": timestamp, "content": event});
            for part in protocol::split(&body.to_string(), None, MAX_REPLY) {
                let _ = s.send_to(part.as_bytes(), addr).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rate_limiter_allows_a_burst_then_refills() {
        let mut l = RateLimiter::new(5.0);
        let ip: IpAddr = [127, 0, 0, 1].into();
        let t0 = Instant::now();
        assert_eq!((0..10).filter(|_| l.allow(ip, t0)).count(), 5);
        assert!(!l.allow(ip, t0 + Duration::from_millis(100)));
        assert!(l.allow(ip, t0 + Duration::from_millis(250)));
        assert!(l.allow([10, 0, 0, 1].into(), t0), "per source");
    }
}
