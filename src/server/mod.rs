//! The UDP command server. It takes its socket and a shutdown future (so
//! tests bind port 0), answers every datagram exactly once (a large reply in
//! numbered parts), lets only its owner command it (the same local user on
//! loopback, signed commands off it), and rate-limits AWS commands per source.

pub mod client;
pub mod peer;

use crate::core::protocol::auth::{AuthError, Policy, ReplayGuard};
use crate::core::protocol::commands::{self as protocol, Command, Format, Request};
use crate::core::protocol::reply::{CommandError, Reply};
use crate::core::protocol::status::Event;
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
    /// The token, and whether commands must be signed with it.
    pub auth: Policy,
    /// Loopback commands are taken only from the user running cloudnap (and
    /// root); `false` takes them from anyone (`udp_server.allow_other_users`).
    pub check_sender: bool,
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

/// Replies to a request of `format` with `result`: to `to` and the echo
/// address, split into parts if large.
async fn answer(
    socket: &UdpSocket,
    to: SocketAddr,
    echo: Option<SocketAddr>,
    format: &Format,
    result: Result<Reply, CommandError>,
) {
    let reply = protocol::reply(format, result, &reply_id(), SystemTime::now());
    let reply_to = match format {
        Format::Json { id, .. } => id.as_deref(),
        Format::Text { .. } => None,
    };
    for datagram in protocol::split(reply, reply_to, MAX_REPLY) {
        for dest in std::iter::once(to).chain(echo) {
            if let Err(e) = socket.send_to(datagram.as_bytes(), dest).await {
                tracing::debug!("reply to {dest}: {e}");
            }
        }
    }
}

/// A request refused before it ran, and how to reply to it.
type Refusal = Box<(Format, CommandError)>;

/// A request the gate let through.
#[derive(Debug)]
pub struct Admitted {
    pub request: Request,
    /// Whether its sender is known to be allowed. A `USER_ACTIVITY` whose
    /// loopback sender cannot be identified (its socket already gone, as
    /// `sendto` then `close` leaves it) is still counted, since it can
    /// only keep resources awake or wake them; its reply carries nothing
    /// but that (see [`Reply::Counted`]).
    pub identified: bool,
}

/// Decides which datagrams run: size, sender, credential, rate.
pub struct Gate {
    opts: Options,
    limiter: RateLimiter,
    replay: ReplayGuard,
    peers: Option<Box<dyn peer::PeerOwners>>,
    /// Refusals are logged at most once a second; the rest are counted.
    last_log: Option<Instant>,
    unlogged: u64,
}

impl Gate {
    /// A gate for `opts`, asking `peers` who sent loopback datagrams.
    pub fn new(opts: Options, peers: Option<Box<dyn peer::PeerOwners>>) -> Self {
        Gate {
            limiter: RateLimiter::new(opts.aws_rate),
            opts,
            replay: ReplayGuard::default(),
            peers,
            last_log: None,
            unlogged: 0,
        }
    }

    /// Parses and checks one datagram that came from `from` to our socket
    /// at `local`, at `now` (unix seconds, for signatures).
    pub fn admit(
        &mut self,
        datagram: &[u8],
        local: SocketAddr,
        from: SocketAddr,
        now: i64,
    ) -> Result<Admitted, Refusal> {
        if datagram.len() > self.opts.max_datagram {
            return Err(Box::new((
                Format::Text {
                    name: String::new(),
                },
                CommandError::Refused(format!(
                    "datagram too large: {} bytes (udp_server.buffer_size is {})",
                    datagram.len(),
                    self.opts.max_datagram
                )),
            )));
        }
        let parsed = protocol::parse(datagram);
        let refuse =
            |format: Format, e: AuthError| Box::new((format, CommandError::Refused(e.to_string())));
        let identified = match (self.check_sender(local, from), &parsed) {
            (Ok(()), _) => true,
            // Presence only: it can keep awake or wake, never stop or change.
            (Err(AuthError::UnknownSender(why)), Ok(r))
                if matches!(r.command, Command::UserActivity) =>
            {
                tracing::debug!("USER_ACTIVITY from {from}, sender unknown ({why}): counted");
                false
            }
            (Err(e), _) => {
                self.log_refusal(from, &e);
                let format = match parsed {
                    Ok(r) => r.format,
                    Err(e) => e.format,
                };
                return Err(refuse(format, e));
            }
        };
        let req = parsed.map_err(|e| Box::new((e.format, CommandError::Invalid(e.message))))?;
        if let Err(e) = self.replay.admit(&self.opts.auth, &req.credential, now) {
            self.log_refusal(from, &e);
            return Err(refuse(req.format, e));
        }
        if req.command.calls_aws() && !self.limiter.allow(from.ip(), Instant::now()) {
            return Err(Box::new((
                req.format,
                CommandError::Refused(format!(
                    "rate limited: at most {} AWS commands per second from one address",
                    self.opts.aws_rate
                )),
            )));
        }
        Ok(Admitted {
            request: req,
            identified,
        })
    }

    /// A loopback sender must be our user (or root), when we check.
    fn check_sender(&mut self, local: SocketAddr, from: SocketAddr) -> Result<(), AuthError> {
        let Some(peers) = self.peers.as_mut().filter(|_| self.opts.check_sender) else {
            return Ok(());
        };
        let loopback = match from.ip() {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map_or(v6.is_loopback(), |v4| v4.is_loopback()),
            ip => ip.is_loopback(),
        };
        if !loopback {
            return Ok(()); // off loopback the signature decides
        }
        match peers.sender(local, from) {
            Ok(sender) if sender.may_command() => Ok(()),
            Ok(sender) => {
                tracing::debug!("datagram from {from} sent by {sender:?}");
                Err(AuthError::OtherUser)
            }
            Err(e) => Err(AuthError::UnknownSender(e.to_string())),
        }
    }

    fn log_refusal(&mut self, from: SocketAddr, e: &AuthError) {
        let now = Instant::now();
        if self
            .last_log
            .is_some_and(|t| now.saturating_duration_since(t) < std::time::Duration::from_secs(1))
        {
            self.unlogged += 1;
            return;
        }
        let more = std::mem::take(&mut self.unlogged);
        let more = if more > 0 {
            format!(" ({more} more refused since the last line)")
        } else {
            String::new()
        };
        tracing::warn!("refused a command from {from}: {e}{more}");
        self.last_log = Some(now);
    }
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
    let local = socket
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
    let peers = match (opts.check_sender, peer::system()) {
        (false, _) => None,
        (true, Some(Ok(peers))) => Some(peers),
        (true, Some(Err(e))) => {
            // Fail safe: with no way to tell who sent a loopback datagram,
            // every one of them is refused.
            tracing::error!("cannot tell which user sends commands ({e}): loopback commands will be refused (udp_server.allow_other_users: true accepts them)");
            Some(Box::new(Unknown(e.to_string())) as Box<dyn peer::PeerOwners>)
        }
        (true, None) => {
            tracing::warn!("this platform has no check of which local user sends a command: any local user can command this cloudnap (set udp_server.token and require_signature)");
            None
        }
    };
    let echo = opts.echo;
    let mut gate = Gate::new(opts, peers);
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
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let Admitted {
            request: req,
            identified,
        } = match gate.admit(&buf[..n], local, from, now) {
            Ok(admitted) => admitted,
            Err(refusal) => {
                let (format, error) = *refusal;
                answer(&socket, from, echo, &format, Err(error)).await;
                continue;
            }
        };
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            let busy = Err(CommandError::Refused(
                "busy: too many commands in flight, try again".into(),
            ));
            answer(&socket, from, echo, &req.format, busy).await;
            continue;
        };
        let (socket, handler) = (socket.clone(), handler.clone());
        tokio::spawn(async move {
            let result = handler.handle(req.command).await;
            // An unknown sender learns nothing but that it was counted.
            let result = result.map(|r| if identified { r } else { Reply::counted() });
            answer(&socket, from, echo, &req.format, result).await;
            drop(permit);
        });
    }
}

/// The lookup when the platform's failed to start: every answer is "unknown".
struct Unknown(String);

impl peer::PeerOwners for Unknown {
    fn sender(&mut self, _: SocketAddr, _: SocketAddr) -> Result<peer::Sender, peer::PeerError> {
        Err(peer::PeerError::Io(std::io::Error::other(self.0.clone())))
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
            for part in protocol::split(body.to_string(), None, MAX_REPLY) {
                let _ = s.send_to(part.as_bytes(), addr).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::protocol::auth;
    use std::time::Duration;

    const NOW: i64 = 1_800_000_000;

    /// Answers every lookup with one uid (or "socket gone"), for owner 1000.
    struct Uid(Option<u32>);

    impl peer::PeerOwners for Uid {
        fn sender(
            &mut self,
            _: SocketAddr,
            _: SocketAddr,
        ) -> Result<peer::Sender, peer::PeerError> {
            let uid = self.0.ok_or(peer::PeerError::NotFound)?;
            Ok(peer::Sender::of_uid(uid, 1000))
        }
    }

    fn gate(auth: Policy, owner: Option<u32>, sender: Option<u32>) -> Gate {
        let opts = Options {
            auth,
            check_sender: owner.is_some(),
            max_datagram: 65_535,
            aws_rate: 1000.0,
            echo: None,
        };
        Gate::new(opts, Some(Box::new(Uid(sender))))
    }

    fn open() -> Policy {
        Policy {
            token: None,
            require_signature: false,
        }
    }

    fn refusal(r: Result<Admitted, Refusal>) -> (Format, String) {
        let (format, e) = *r.unwrap_err();
        (format, e.to_string())
    }

    #[test]
    fn loopback_commands_come_from_the_owner_or_root_only() {
        let (local, lo) = (
            SocketAddr::from(([127, 0, 0, 1], 20200)),
            SocketAddr::from(([127, 0, 0, 1], 40000)),
        );
        assert!(gate(open(), Some(1000), Some(1000))
            .admit(b"STATUS", local, lo, NOW)
            .is_ok());
        assert!(gate(open(), Some(1000), Some(0))
            .admit(b"STATUS", local, lo, NOW)
            .is_ok());
        let (_, e) =
            refusal(gate(open(), Some(1000), Some(1001)).admit(b"SLEEP_NOW", local, lo, NOW));
        assert!(
            e.contains("permission denied: this cloudnap belongs to another user"),
            "{e}"
        );
        let (format, _) = refusal(gate(open(), Some(1000), Some(1001)).admit(
            br#"{"type":"STATUS","id":"9"}"#,
            local,
            lo,
            NOW,
        ));
        assert!(matches!(format, Format::Json { id: Some(id), .. } if id == "9"));
        let (_, e) = refusal(gate(open(), Some(1000), None).admit(b"STATUS", local, lo, NOW));
        assert!(e.contains("could not tell which user sent this"), "{e}");
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:40000".parse().unwrap();
        assert!(gate(open(), Some(1000), Some(7))
            .admit(b"STATUS", local, mapped, NOW)
            .is_err());
        // allow_other_users: nobody is asked.
        assert!(gate(open(), None, Some(1001))
            .admit(b"STATUS", local, lo, NOW)
            .is_ok());
        // Off loopback the signature decides, not the (unknowable) user.
        let lan = SocketAddr::from(([192, 168, 1, 9], 40000));
        assert!(gate(open(), Some(1000), None)
            .admit(b"STATUS", local, lan, NOW)
            .is_ok());
    }

    #[test]
    fn an_unidentified_sender_is_counted_as_present_and_nothing_more() {
        let (local, lo) = (
            SocketAddr::from(([127, 0, 0, 1], 20200)),
            SocketAddr::from(([127, 0, 0, 1], 40000)),
        );
        // Its socket is gone: USER_ACTIVITY counts, in text and JSON.
        let mut gone = gate(open(), Some(1000), None);
        for datagram in [
            &b"USER_ACTIVITY"[..],
            br#"{"type":"USER_ACTIVITY","id":"1"}"#,
        ] {
            let admitted = gone.admit(datagram, local, lo, NOW).unwrap();
            assert!(matches!(admitted.request.command, Command::UserActivity));
            assert!(!admitted.identified);
        }
        // Every other command stays refused.
        for datagram in [
            "STOP_EC2:i-0123456789abcdef0:us-east-1",
            "STATUS",
            "SLEEP_NOW",
            "PAUSE:60",
        ] {
            let (_, e) = refusal(gone.admit(datagram.as_bytes(), local, lo, NOW));
            assert!(
                e.contains("could not tell which user sent this"),
                "{datagram}: {e}"
            );
        }
        // Another user, identified, is refused even its activity.
        let (_, e) =
            refusal(gate(open(), Some(1000), Some(1001)).admit(b"USER_ACTIVITY", local, lo, NOW));
        assert!(e.contains("belongs to another user"), "{e}");
        // The token still applies to it.
        let tokened = Policy {
            token: Some("t".into()),
            require_signature: false,
        };
        let (_, e) =
            refusal(gate(tokened, Some(1000), None).admit(b"USER_ACTIVITY", local, lo, NOW));
        assert!(e.contains("missing token"), "{e}");
        // The owner's is identified.
        let owner = gate(open(), Some(1000), Some(1000)).admit(b"USER_ACTIVITY", local, lo, NOW);
        assert!(owner.unwrap().identified);
        assert_eq!(
            serde_json::to_value(Reply::counted()).unwrap(),
            serde_json::json!({"activity": "counted"})
        );
    }

    #[test]
    fn signed_commands_run_once_and_plain_tokens_are_refused_where_signing_is_required() {
        let key = "s3cr3t-token";
        let network = Policy {
            token: Some(key.into()),
            require_signature: true,
        };
        let (local, lan) = (
            SocketAddr::from(([0, 0, 0, 0], 20200)),
            SocketAddr::from(([192, 168, 1, 9], 40000)),
        );
        let mut g = gate(network, Some(1000), None);
        let d = auth::signed_datagram(key, NOW, "n1", "STATUS");
        assert!(g.admit(d.as_bytes(), local, lan, NOW + 5).is_ok());
        let (_, e) = refusal(g.admit(d.as_bytes(), local, lan, NOW + 6));
        assert!(e.contains("replayed"), "{e}");
        let (_, e) = refusal(g.admit(format!("TOKEN:{key}:STATUS").as_bytes(), local, lan, NOW));
        assert!(e.contains("plain TOKEN is refused"), "{e}");
        let (_, e) = refusal(g.admit(b"STATUS", local, lan, NOW));
        assert!(e.contains("must be signed"), "{e}");
        let old = auth::signed_datagram(key, NOW - 120, "n2", "STATUS");
        let (_, e) = refusal(g.admit(old.as_bytes(), local, lan, NOW));
        assert!(e.contains("-120 s"), "{e}");
        let forged = auth::signed_datagram("guessed-key", NOW, "n3", "STATUS");
        let (_, e) = refusal(g.admit(forged.as_bytes(), local, lan, NOW));
        assert!(e.contains("wrong signature"), "{e}");
        assert!(!e.contains(key));
    }

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
