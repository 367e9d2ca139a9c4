//! Drives a real `cloudnap run` over loopback UDP and prints what it measured:
//! STATUS throughput with several pipelined clients, round-trip latency
//! percentiles, idle CPU and memory of the daemon.
//!
//! Usage: cloudnap-bench PATH/TO/cloudnap [LOAD_SECONDS] [IDLE_SECONDS]
//! (run it under an X display and PulseAudio so every detector is on).

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn proc_field(pid: u32, file: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    f.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bin = args.get(1).expect("usage: cloudnap-bench PATH/TO/cloudnap [SECONDS]");
    let secs: f64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5.0);
    let idle_secs: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(60);
    let dir = std::env::temp_dir().join(format!("cloudnap-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("settings.json"),
        r#"{"aws":{"endpoint_url":"http://127.0.0.1:9"},"udp_server":{"port":0},
            "activity_monitor":{"inactivity_timeout_minutes":600}}"#,
    )
    .unwrap();
    std::fs::write(dir.join("services.yaml"), "ec2_instances: []\n").unwrap();

    let started = Instant::now();
    let mut child = Command::new(bin)
        .arg("--config-dir")
        .arg(&dir)
        .arg("run")
        .env("RUST_LOG", "warn,cloudnap=info,cloudnap::detect=debug")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start cloudnap");
    let pid = child.id();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr: SocketAddr = loop {
        let line = lines.next().expect("cloudnap exited").unwrap();
        if let Some(a) = line.split("listening on ").nth(1) {
            break a.trim().parse().unwrap();
        }
    };
    let ready = started.elapsed();
    let log = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });

    // Idle footprint: every detector on, no input, no commands.
    std::thread::sleep(Duration::from_secs(3)); // detectors start
    let t0 = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(idle_secs));
    let idle_cpu = (cpu_ticks(pid) - t0) as f64 / 100.0 / idle_secs as f64 * 100.0;
    let idle_rss = proc_field(pid, "status", "VmRSS:").unwrap_or(0);
    let idle_peak = proc_field(pid, "status", "VmHWM:").unwrap_or(0);
    let lines = log.lock().unwrap().clone();
    let checks: Vec<f64> = lines
        .iter()
        .filter_map(|l| l.split("screen check took ").nth(1))
        .filter_map(|r| r.split_whitespace().next()?.parse().ok())
        .collect();
    let started_detectors = lines.iter().filter(|l| l.contains("detector started")).count();
    let failed_detectors: Vec<&String> = lines.iter().filter(|l| l.contains(" detector: ")).collect();

    // Latency: one client, one command at a time.
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

    // Throughput: 4 clients, each with up to 64 commands in flight.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let lost = Arc::new(AtomicU64::new(0));
    let c0 = cpu_ticks(pid);
    let t = Instant::now();
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, done, lost) = (stop.clone(), done.clone(), lost.clone());
            std::thread::spawn(move || {
                let s = UdpSocket::bind("127.0.0.1:0").unwrap();
                s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
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
    let load_cpu = (cpu_ticks(pid) - c0) as f64 / 100.0 / elapsed * 100.0;
    let peak_rss = proc_field(pid, "status", "VmHWM:").unwrap_or(0);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);

    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!("| measure | value |");
    println!("| --- | --- |");
    println!("| startup to ready (listening) | {:.0} ms |", ready.as_secs_f64() * 1e3);
    println!("| detector threads started | {started_detectors} (failed: {failed_detectors:?}) |");
    println!("| idle CPU, all detectors on, {idle_secs} s | {idle_cpu:.2} % of one core |");
    println!(
        "| idle RSS / peak RSS | {:.1} MB / {:.1} MB |",
        idle_rss as f64 / 1024.0,
        idle_peak as f64 / 1024.0
    );
    let avg = checks.iter().sum::<f64>() / checks.len().max(1) as f64;
    println!("| screen check (capture + downscale + compare) | {:.1} ms average over {} checks |", avg / 1000.0, checks.len());
    println!("| STATUS round trip p50 / p99 / max (19k sequential) | {:.0} / {:.0} / {:.0} µs |", us(pct(0.5)), us(pct(0.99)), us(rtts[rtts.len() - 1]));
    println!(
        "| STATUS throughput, 4 clients x 64 in flight, {secs:.0} s | {:.0} replies/s ({} timed out) |",
        done.load(Ordering::Relaxed) as f64 / elapsed,
        lost.load(Ordering::Relaxed)
    );
    println!("| daemon CPU under that load | {load_cpu:.0} % of one core |");
    println!("| peak RSS after the load | {:.1} MB |", peak_rss as f64 / 1024.0);
}
