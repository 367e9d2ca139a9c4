//! A counting HTTP forwarder in front of moto: it counts requests by
//! operation (and region) as they cross the wire, and speaks CloudWatch's
//! Smithy RPC v2 CBOR protocol for moto, which only knows CloudWatch's JSON
//! and query protocols: a CBOR request (`/service/GraniteServiceVersion20100801/operation/Op`)
//! goes to moto as AWS JSON 1.0 (`X-Amz-Target: GraniteServiceVersion20100801.Op`)
//! and the JSON answer comes back as CBOR. Every other request passes through
//! unchanged, but for resources made slow on purpose ([`Forwarder::slow`]):
//! until their time, describes say they are not ready yet; and for calls
//! made slow on purpose ([`Forwarder::delay`]). Operations moto lacks can be
//! played over it by the test, with state of its own: answered by the
//! forwarder ([`Forwarder::overlay`]), that state showing in moto's other
//! answers ([`Forwarder::rewrite`]). For the bench it
//! also adds a round-trip time to each request ([`Forwarder::latency`]) and
//! counts the round trips deep ([`Forwarder::take_depth`]).

#![allow(dead_code)] // each test binary uses part of it

#[path = "cbor.rs"]
mod cbor;

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CBOR_PREFIX: &str = "/service/GraniteServiceVersion20100801/operation/";

/// The forwarder, running until the test process exits.
pub struct Forwarder {
    pub url: String,
    shared: Arc<Shared>,
    cut: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

/// What the forwarder's connection threads share with it.
#[derive(Default)]
struct Shared {
    counts: Mutex<BTreeMap<String, usize>>,
    held: Mutex<Option<String>>,
    refused: Mutex<Option<String>>,
    /// Resources that look not ready until their instant.
    slow: Mutex<Vec<(String, Instant)>>,
    /// Added before each request is forwarded: a round trip to a far region.
    latency: Mutex<Duration>,
    /// The deepest chain of requests each sent after the previous one was
    /// answered, among the answered ones: round trips deep.
    depth: Mutex<usize>,
    /// Each answered request's place in that chain and its operation.
    chain: Mutex<Vec<(usize, String)>>,
    /// Requests held back a while (operation, what the body contains, for
    /// how long), and how many were so far.
    delays: Mutex<(Vec<Delay>, usize)>,
    /// Requests answered by the forwarder itself, never reaching moto.
    answers: Mutex<Vec<Answer>>,
    /// JSON operations the test answers itself (see [`Forwarder::overlay`]).
    overlays: Mutex<Vec<(String, Arc<Play>)>>,
    /// JSON operations whose answers the test rewrites (see [`Forwarder::rewrite`]).
    rewrites: Mutex<Vec<(String, Arc<Rewrite>)>>,
}

/// The answer to a request's JSON body, for an operation moto lacks.
type Play = dyn Fn(&Value) -> Value + Send + Sync;

/// A JSON answer of moto's as the test makes it, given the request's body.
type Rewrite = dyn Fn(&Value, Value) -> Value + Send + Sync;

/// A request answered by the forwarder: its operation, what its body
/// contains, the HTTP status and the XML body of the answer.
type Answer = (String, String, u16, String);

/// A request held back: its operation, what its body contains, how long.
type Delay = (String, String, Duration);

impl Shared {
    /// How long to hold back a request of `operation` with `body`.
    fn delay_of(&self, operation: &str, body: &[u8]) -> Option<Duration> {
        let body = String::from_utf8_lossy(body);
        let mut delays = self.delays.lock().unwrap();
        let (_, _, by) = *(delays.0.iter())
            .find(|(op, needle, _)| op == operation && body.contains(needle.as_str()))?;
        delays.1 += 1;
        Some(by)
    }

    /// What the test plays for JSON operation `operation`, if it does.
    fn played(&self, operation: &str, json: bool) -> Option<Arc<Play>> {
        let overlays = self.overlays.lock().unwrap();
        let found = overlays.iter().find(|(op, _)| json && op == operation);
        found.map(|(_, play)| play.clone())
    }

    /// Moto's answer `body` to a JSON request of `operation` with
    /// `request`, as the test rewrites it (if it does and moto said 200).
    fn rewritten(&self, operation: &str, request: &[u8], status: &str, body: Vec<u8>) -> Vec<u8> {
        let rewrites = self.rewrites.lock().unwrap();
        let Some((_, rewrite)) = rewrites.iter().find(|(op, _)| op == operation) else {
            return body;
        };
        let (Ok(request), Ok(answer)) = (
            serde_json::from_slice::<Value>(request),
            serde_json::from_slice::<Value>(&body),
        ) else {
            return body;
        };
        if !status.contains(" 200 ") {
            return body;
        }
        serde_json::to_vec(&rewrite(&request, answer)).unwrap()
    }
}

impl Forwarder {
    /// Starts one in front of `upstream` (`http://127.0.0.1:PORT`).
    pub fn start(upstream: &str) -> Forwarder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let url = format!("http://{addr}");
        let upstream = upstream.trim_start_matches("http://").to_string();
        let shared = Arc::new(Shared::default());
        let cut = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Mutex::new(Vec::new()));
        let (sh, k, o) = (shared.clone(), cut.clone(), open.clone());
        std::thread::spawn(move || {
            // Polled, so that a cut can close the port (connections refused).
            let mut listener = Some(listener);
            loop {
                if k.load(Ordering::SeqCst) {
                    listener = None;
                } else if listener.is_none() {
                    listener = TcpListener::bind(addr).ok();
                }
                let Some(l) = &listener else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                l.set_nonblocking(true).unwrap();
                match l.accept() {
                    Ok((conn, _)) if k.load(Ordering::SeqCst) => {
                        let _ = conn.shutdown(Shutdown::Both);
                    }
                    Ok((conn, _)) => {
                        conn.set_nonblocking(false).unwrap();
                        o.lock().unwrap().push(conn.try_clone().unwrap());
                        let (sh, upstream) = (sh.clone(), upstream.clone());
                        std::thread::spawn(move || serve(conn, &upstream, &sh));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Forwarder {
            url,
            shared,
            cut,
            open,
        }
    }

    /// From now on, a request of `operation` whose body contains `needle`
    /// (a cluster's name) waits `by` before it goes on to moto.
    pub fn delay(&self, operation: &str, needle: &str, by: Duration) {
        (self.shared.delays.lock().unwrap().0).push((operation.into(), needle.into(), by));
    }

    /// No request is held back from now on.
    pub fn undelay(&self) {
        (self.shared.delays.lock().unwrap().0).clear();
    }

    /// How many requests [`Self::delay`] held back so far.
    pub fn delayed(&self) -> usize {
        self.shared.delays.lock().unwrap().1
    }

    /// From now on, each request waits `rtt` before it is forwarded, as a
    /// far region's round trip would.
    pub fn latency(&self, rtt: Duration) {
        *self.shared.latency.lock().unwrap() = rtt;
    }

    /// Round trips deep since the last call: the longest chain of requests
    /// each sent after the one before it was answered (requests in flight
    /// together count once). Starts the next count from zero.
    pub fn take_depth(&self) -> usize {
        std::mem::take(&mut *self.shared.depth.lock().unwrap())
    }

    /// The operations at each round trip of that chain since the last
    /// call (`1: DescribeInstances, GetResources`), one line per round trip.
    pub fn take_chain(&self) -> Vec<String> {
        let chain = std::mem::take(&mut *self.shared.chain.lock().unwrap());
        let mut levels: BTreeMap<usize, BTreeMap<String, usize>> = BTreeMap::new();
        for (depth, op) in chain {
            *levels.entry(depth).or_default().entry(op).or_default() += 1;
        }
        (levels.into_iter())
            .map(|(depth, ops)| {
                let ops: Vec<String> = (ops.into_iter())
                    .map(|(op, n)| if n > 1 { format!("{op} ×{n}") } else { op })
                    .collect();
                format!("{depth}: {}", ops.join(", "))
            })
            .collect()
    }

    /// Until `until`, `resource` (an instance id, an ECS service name, a DB
    /// instance identifier) looks not ready: `DescribeInstanceStatus` says
    /// its checks are `initializing`, `DescribeServices` that one task
    /// fewer runs than desired, `DescribeDBInstances` that it is
    /// `starting`. Then moto's answers pass through again. Called again for
    /// the same resource, the new time replaces the old.
    pub fn slow(&self, resource: &str, until: Instant) {
        let mut slow = self.shared.slow.lock().unwrap();
        slow.retain(|(r, _)| r != resource);
        slow.push((resource.to_string(), until));
    }

    /// Cuts the network: its port refuses connections and the open ones
    /// are closed, until [`Self::restore`].
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for conn in self.open.lock().unwrap().drain(..) {
            let _ = conn.shutdown(Shutdown::Both);
        }
    }

    /// Brings the network back after [`Self::cut`]: the port accepts again
    /// (within a few milliseconds).
    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }

    /// From now on, requests of `operation` are counted but never forwarded
    /// nor answered: the caller hangs in it (to kill it mid-way).
    pub fn hold(&self, operation: &str) {
        *self.shared.held.lock().unwrap() = Some(operation.to_string());
    }

    /// From now on (until [`Self::accept`]), requests whose `X-Amz-Target`
    /// starts with `prefix` (`DynamoDB_20120810.`) are answered HTTP 503
    /// without reaching moto: that service is down, the others work.
    pub fn refuse(&self, prefix: &str) {
        *self.shared.refused.lock().unwrap() = Some(prefix.to_string());
    }

    /// Ends [`Self::refuse`].
    pub fn accept(&self) {
        *self.shared.refused.lock().unwrap() = None;
    }

    /// From now on, a request of `operation` whose body contains `needle`
    /// is answered HTTP `status` with the XML `body` (an AWS error moto
    /// never gives) without reaching moto.
    pub fn answer(&self, operation: &str, needle: &str, status: u16, body: &str) {
        let answer = (operation.into(), needle.into(), status, body.into());
        self.shared.answers.lock().unwrap().push(answer);
    }

    /// From now on, a JSON request of `operation` (an operation moto lacks)
    /// is answered HTTP 200 with what `play` makes of its body, without
    /// reaching moto.
    pub fn overlay(&self, operation: &str, play: impl Fn(&Value) -> Value + Send + Sync + 'static) {
        let mut overlays = self.shared.overlays.lock().unwrap();
        overlays.push((operation.into(), Arc::new(play)));
    }

    /// From now on, moto's JSON answer to `operation` goes back as
    /// `rewrite` makes it, given the request's body and the answer: what
    /// the test plays over moto ([`Self::overlay`]) shows in moto's answers.
    pub fn rewrite(
        &self,
        operation: &str,
        rewrite: impl Fn(&Value, Value) -> Value + Send + Sync + 'static,
    ) {
        let mut rewrites = self.shared.rewrites.lock().unwrap();
        rewrites.push((operation.into(), Arc::new(rewrite)));
    }

    /// Requests of `operation` seen so far, in any region.
    pub fn count(&self, operation: &str) -> usize {
        (self.shared.counts)
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.split(' ').next() == Some(operation))
            .map(|(_, n)| n)
            .sum()
    }

    /// Requests seen so far by "Operation region".
    pub fn counts(&self) -> BTreeMap<String, usize> {
        self.shared.counts.lock().unwrap().clone()
    }
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The region of the SigV4 credential scope.
    fn region(&self) -> String {
        self.header("authorization")
            .and_then(|a| a.split("Credential=").nth(1))
            .and_then(|c| c.split('/').nth(2))
            .unwrap_or("?")
            .to_string()
    }

    /// The operation: CBOR path, X-Amz-Target, or the query `Action`.
    fn operation(&self) -> String {
        if let Some(op) = self.path.strip_prefix(CBOR_PREFIX) {
            return op.to_string();
        }
        if let Some(t) = self.header("x-amz-target") {
            return t.rsplit('.').next().unwrap_or(t).to_string();
        }
        let body = String::from_utf8_lossy(&self.body);
        body.split('&')
            .find_map(|kv| kv.strip_prefix("Action="))
            .map(String::from)
            .unwrap_or_else(|| format!("{} {}", self.method, self.path))
    }
}

fn read_request(r: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let len = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

/// Sends one HTTP/1.0 request upstream; the status line, headers and body.
fn upstream_call(
    upstream: &str,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> (String, Vec<(String, String)>, Vec<u8>) {
    let mut s = TcpStream::connect(upstream).unwrap();
    let mut head = format!("{method} {path} HTTP/1.0\r\n");
    for (k, v) in headers {
        let skip = ["connection", "content-length", "transfer-encoding"];
        if !skip.iter().any(|n| k.eq_ignore_ascii_case(n)) {
            head += &format!("{k}: {v}\r\n");
        }
    }
    head += &format!("Content-Length: {}\r\n\r\n", body.len());
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP answer");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default().to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    (status, headers, raw[split + 4..].to_vec())
}

fn serve(conn: TcpStream, upstream: &str, shared: &Shared) {
    let mut w = conn.try_clone().unwrap();
    let mut r = BufReader::new(conn);
    while let Some(req) = read_request(&mut r) {
        let operation = req.operation();
        *(shared.counts.lock().unwrap())
            .entry(format!("{operation} {}", req.region()))
            .or_default() += 1;
        if shared.held.lock().unwrap().as_deref() == Some(operation.as_str()) {
            // Unanswered, the connection open: the caller waits.
            loop {
                std::thread::park();
            }
        }
        if let Some(by) = shared.delay_of(&operation, &req.body) {
            std::thread::sleep(by);
        }
        let depth = *shared.depth.lock().unwrap() + 1;
        let rtt = *shared.latency.lock().unwrap();
        std::thread::sleep(rtt);
        let refuse = shared.refused.lock().unwrap().clone();
        let target = req.header("x-amz-target").unwrap_or_default();
        let text = String::from_utf8_lossy(&req.body);
        let answer = (shared.answers.lock().unwrap().iter())
            .find(|(op, needle, _, _)| *op == operation && text.contains(needle.as_str()))
            .map(|(_, _, status, body)| (*status, body.clone()));
        let played = shared.played(&operation, !target.is_empty());
        let (status, mut headers, body) = match req.path.strip_prefix(CBOR_PREFIX) {
            _ if answer.is_some() => {
                let (status, body) = answer.unwrap_or_default();
                (
                    format!("HTTP/1.1 {status} Answered"),
                    vec![("Content-Type".into(), "text/xml".into())],
                    body.into_bytes(),
                )
            }
            _ if played.is_some() => {
                let request = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
                let answer = played.map(|play| play(&request)).unwrap_or_default();
                (
                    "HTTP/1.1 200 Played".to_string(),
                    vec![("Content-Type".into(), "application/x-amz-json-1.1".into())],
                    serde_json::to_vec(&answer).unwrap(),
                )
            }
            _ if refuse.is_some_and(|p| target.starts_with(&p)) => (
                "HTTP/1.1 503 Service Unavailable".to_string(),
                vec![("Content-Type".into(), "application/x-amz-json-1.0".into())],
                br#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"refused by the test"}"#.to_vec(),
            ),
            Some(op) => cbor::call(upstream, &req.headers, &req.body, op),
            None => {
                let (status, headers, body) =
                    upstream_call(upstream, &req.method, &req.path, &req.headers, &req.body);
                let body = shared.rewritten(&operation, &req.body, &status, body);
                (status, headers, body)
            }
        };
        let now = Instant::now();
        let slow_now: Vec<String> = (shared.slow.lock().unwrap().iter())
            .filter(|(_, until)| now < *until)
            .map(|(r, _)| r.clone())
            .collect();
        let body = not_ready(&operation, body, &slow_now);
        headers.retain(|(k, _)| {
            !["connection", "content-length", "transfer-encoding"]
                .iter()
                .any(|n| k.eq_ignore_ascii_case(n))
        });
        let status = status.replacen("HTTP/1.0", "HTTP/1.1", 1);
        let mut out = format!("{status}\r\n");
        for (k, v) in &headers {
            out += &format!("{k}: {v}\r\n");
        }
        out += &format!("Content-Length: {}\r\n\r\n", body.len());
        if w.write_all(out.as_bytes()).is_err() || w.write_all(&body).is_err() {
            return;
        }
        let mut deepest = shared.depth.lock().unwrap();
        *deepest = (*deepest).max(depth);
        shared.chain.lock().unwrap().push((depth, operation));
    }
}

/// `body`, an answer to `operation`, with each of `slow` not ready yet.
fn not_ready(operation: &str, body: Vec<u8>, slow: &[String]) -> Vec<u8> {
    if slow.is_empty() {
        return body;
    }
    let text = String::from_utf8_lossy(&body).into_owned();
    let xml = |key: &str, from: &str, to: &str| {
        let mut text = text.clone();
        for r in slow {
            text = in_item(&text, &format!("<{key}>{r}</{key}>"), from, to);
        }
        text.into_bytes()
    };
    match operation {
        "DescribeInstanceStatus" => xml(
            "instanceId",
            "<status>ok</status>",
            "<status>initializing</status>",
        ),
        "DescribeDBInstances" => xml(
            "DBInstanceIdentifier",
            "<DBInstanceStatus>available</DBInstanceStatus>",
            "<DBInstanceStatus>starting</DBInstanceStatus>",
        ),
        "DescribeServices" => {
            let Ok(mut v) = serde_json::from_slice::<Value>(&body) else {
                return body;
            };
            for s in v["services"].as_array_mut().into_iter().flatten() {
                if slow.iter().any(|r| s["serviceName"] == r.as_str()) {
                    let desired = s["desiredCount"].as_i64().unwrap_or(0);
                    s["runningCount"] = Value::from((desired - 1).max(0));
                }
            }
            serde_json::to_vec(&v).unwrap()
        }
        _ => body,
    }
}

/// `text` with `from` replaced by `to` in the part that follows `marker`
/// up to the next element of the same name (the rest of that item: the
/// fields after its id).
fn in_item(text: &str, marker: &str, from: &str, to: &str) -> String {
    let Some(start) = text.find(marker) else {
        return text.to_string();
    };
    let after = start + marker.len();
    let open = &marker[..marker.find('>').unwrap() + 1];
    let end = text[after..].find(open).map_or(text.len(), |i| after + i);
    format!(
        "{}{}{}",
        &text[..after],
        text[after..end].replace(from, to),
        &text[end..]
    )
}
