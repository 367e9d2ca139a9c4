//! The daemon's idle footprint and its UDP latency and throughput under
//! load.

use super::{cpu_secs, cpu_ticks, owner_lookup_micros, proc_field, Daemon, SETTLED};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Idle footprint: every detector on, no input, no commands, from once
/// startup has settled (its memory given back); then the RSS again after
/// a STATUS.
pub(super) fn idle_footprint(d: &Daemon, idle_secs: u64, row: &mut impl FnMut(String, String)) {
    let pid = d.child.id();
    std::thread::sleep(SETTLED.saturating_sub(d.started.elapsed()));
    let t0 = cpu_secs(pid);
    std::thread::sleep(Duration::from_secs(idle_secs));
    let idle_cpu = (cpu_secs(pid) - t0) / idle_secs as f64 * 100.0;
    let idle_rss = proc_field(pid, "status", "VmRSS:").unwrap_or(0);
    let idle_peak = proc_field(pid, "status", "VmHWM:").unwrap_or(0);
    // PSS divides shared pages (libc, libX11, ...) among the processes using them.
    let idle_pss = proc_field(pid, "smaps_rollup", "Pss:").unwrap_or(0);
    let private = proc_field(pid, "smaps_rollup", "Private_Clean:").unwrap_or(0)
        + proc_field(pid, "smaps_rollup", "Private_Dirty:").unwrap_or(0);
    let lines = d.log.lock().unwrap().clone();
    let checks: Vec<f64> = lines
        .iter()
        .filter_map(|l| l.split("screen check took ").nth(1))
        .filter_map(|r| r.split_whitespace().next()?.parse().ok())
        .collect();
    let started_detectors = lines
        .iter()
        .filter(|l| l.contains("detector running"))
        .count();
    let failed_detectors: Vec<&String> =
        lines.iter().filter(|l| l.contains(" detector: ")).collect();
    row(
        "detectors running".into(),
        format!("{started_detectors} (failed: {failed_detectors:?})"),
    );
    row(
        format!("idle CPU, all detectors on, {idle_secs} s"),
        format!("{idle_cpu:.3} % of one core (target ≤ 0.02 %)"),
    );
    row(
        "idle RSS / peak RSS, tray on (target ≤ 16 MB)".into(),
        format!("{:.1} MB / {:.1} MB", mb(idle_rss), mb(idle_peak)),
    );
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    sock.send_to(b"STATUS", d.addr).unwrap();
    sock.recv_from(&mut [0u8; 65536]).expect("a STATUS reply");
    row(
        "idle RSS just after a STATUS, tray on".into(),
        format!(
            "{:.1} MB",
            mb(proc_field(pid, "status", "VmRSS:").unwrap_or(0))
        ),
    );
    row(
        "idle PSS / private memory, tray on".into(),
        format!("{:.1} MB / {:.1} MB", mb(idle_pss), mb(private)),
    );
    let avg = checks.iter().sum::<f64>() / checks.len().max(1) as f64;
    row(
        "screen check (row-sampled frame + compare)".into(),
        format!(
            "{:.1} ms average over {} checks",
            avg / 1000.0,
            checks.len()
        ),
    );
}

/// Kilobytes in megabytes.
pub(super) fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// Latency: one client, one command at a time.
pub(super) fn status_latency(addr: SocketAddr, row: &mut impl FnMut(String, String)) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 65536];
    let mut rtts = Vec::new();
    for i in 0..20_000 {
        let t = Instant::now();
        sock.send_to(b"STATUS", addr).unwrap();
        sock.recv_from(&mut buf).expect("reply");
        if i >= 1000 {
            rtts.push(t.elapsed());
        }
    }
    rtts.sort();
    let pct = |p: f64| rtts[((rtts.len() as f64 * p) as usize).min(rtts.len() - 1)];
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    row(
        "STATUS round trip p50 / p99 / max (19k sequential)".into(),
        format!(
            "{:.0} / {:.0} / {:.0} µs",
            us(pct(0.5)),
            us(pct(0.99)),
            us(rtts[rtts.len() - 1])
        ),
    );
    row(
        "sender check: one sock_diag lookup per loopback datagram".into(),
        format!("{:.1} µs (100k lookups)", owner_lookup_micros()),
    );
}

/// STATUS replies a second from 4 clients, each with up to 64 commands in
/// flight, for `secs`; and how many timed out.
fn status_rate(addr: SocketAddr, secs: f64) -> (f64, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let lost = Arc::new(AtomicU64::new(0));
    let t = Instant::now();
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, done, lost) = (stop.clone(), done.clone(), lost.clone());
            std::thread::spawn(move || {
                let s = UdpSocket::bind("127.0.0.1:0").unwrap();
                s.set_read_timeout(Some(Duration::from_millis(200)))
                    .unwrap();
                let mut buf = [0u8; 65536];
                let mut in_flight = 0;
                while !stop.load(Ordering::Relaxed) {
                    while in_flight < 64 {
                        s.send_to(b"STATUS", addr).unwrap();
                        in_flight += 1;
                    }
                    match s.recv_from(&mut buf) {
                        Ok(_) => {
                            in_flight -= 1;
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => {
                            lost.fetch_add(in_flight, Ordering::Relaxed);
                            in_flight = 0;
                        }
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    let elapsed = t.elapsed().as_secs_f64();
    for c in clients {
        c.join().unwrap();
    }
    let done = done.load(Ordering::Relaxed) as f64 / elapsed;
    (done, lost.load(Ordering::Relaxed))
}

/// Throughput (see [`status_rate`]) and the daemon's CPU and peak memory
/// under it.
pub(super) fn status_throughput(d: &Daemon, secs: f64, row: &mut impl FnMut(String, String)) {
    let (addr, pid) = (d.addr, d.child.id());
    let c0 = cpu_ticks(pid);
    let t = Instant::now();
    let (rate, lost) = status_rate(addr, secs);
    let elapsed = t.elapsed().as_secs_f64();
    let load_cpu = (cpu_ticks(pid) - c0) as f64 / 100.0 / elapsed * 100.0;
    let peak_rss = proc_field(pid, "status", "VmHWM:").unwrap_or(0);
    row(
        format!("STATUS throughput, 4 clients x 64 in flight, {secs:.0} s"),
        format!("{rate:.0} replies/s ({lost} timed out)"),
    );
    row(
        "daemon CPU under that load".into(),
        format!("{load_cpu:.0} % of one core"),
    );
    row(
        "peak RSS after the load".into(),
        format!("{:.1} MB", mb(peak_rss)),
    );
}

/// STATUS throughput of this build against `baseline`'s (another release
/// binary), in `rounds` alternating runs of `secs` each on the same config
/// dir, so that the machine's load falls on both alike: the medians.
pub(super) fn status_against(
    bin: &str,
    baseline: &str,
    dir: &Path,
    secs: f64,
    rounds: usize,
    row: &mut impl FnMut(String, String),
) {
    let mut rates = [Vec::new(), Vec::new()];
    for _ in 0..rounds {
        for (rate, b) in rates.iter_mut().zip([bin, baseline]) {
            let d = Daemon::start(b, dir, "warn,cloudnap=info");
            std::thread::sleep(Duration::from_secs(2));
            rate.push(status_rate(d.addr, secs).0);
        }
    }
    let [mut this, mut base] = rates;
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    row(
        format!(
            "STATUS throughput against the baseline build, median of {rounds} alternating runs"
        ),
        format!(
            "{:.0} replies/s, baseline {:.0} (runs: {this:.0?} / {base:.0?})",
            median(&mut this),
            median(&mut base)
        ),
    );
}
