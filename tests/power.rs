//! Suspend and resume in the real `cloudnap run`, against a fake logind
//! exported by the test on a private system bus and moto: cloudnap takes a
//! delay lock; on `PrepareForSleep(true)` it moves the AWS-side deadline to
//! now + `power.suspend_grace_minutes` before it releases the lock; the
//! deadline then fires (the test makes its calls, as EventBridge Scheduler
//! would, while the machine "sleeps"); `PrepareForSleep(false)` is the
//! user's return: the resources come back exactly and the deadline is armed
//! again at its normal time.
// D-Bus: Linux only (zbus is a Linux dependency).
#![cfg(target_os = "linux")]

mod common;
#[path = "common/desktop.rs"]
mod desktop;
#[path = "common/scheduler.rs"]
mod scheduler;

use common::*;
use desktop::*;
use scheduler::*;
use serde_json::json;
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const R: &str = "eu-north-1";
const TIMEOUT: Duration = Duration::from_secs(600);
const MARGIN: Duration = Duration::from_secs(6);
const GRACE: Duration = Duration::from_secs(6);

/// One `Inhibit` call: its arguments and the test's end of the lock.
struct Lock {
    args: (String, String, String, String),
    ours: UnixStream,
}

/// A fake logind manager: `Inhibit` hands out one end of a socket pair
/// and keeps the other, so the test sees when the lock is released.
#[derive(Clone, Default)]
struct FakeLogind {
    locks: Arc<Mutex<Vec<Lock>>>,
}

#[zbus::interface(name = "org.freedesktop.login1.Manager")]
impl FakeLogind {
    fn inhibit(
        &self,
        what: String,
        who: String,
        why: String,
        mode: String,
    ) -> zbus::fdo::Result<zbus::zvariant::OwnedFd> {
        let (ours, theirs) =
            UnixStream::pair().map_err(|e| zbus::fdo::Error::Failed(e.to_string()))?;
        self.locks.lock().unwrap().push(Lock {
            args: (what, who, why, mode),
            ours,
        });
        Ok(std::os::fd::OwnedFd::from(theirs).into())
    }
}

impl FakeLogind {
    fn count(&self) -> usize {
        self.locks.lock().unwrap().len()
    }

    /// Waits until the lock handed out `n`-th (from 0) is released: its
    /// other end reads end-of-file.
    fn wait_released(&self, n: usize, limit: Duration) {
        let mut ours = self.locks.lock().unwrap()[n].ours.try_clone().unwrap();
        ours.set_read_timeout(Some(limit)).unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(ours.read(&mut buf).unwrap(), 0, "lock {n} not released");
    }
}

/// Emits logind's `PrepareForSleep(start)` on `conn`.
fn prepare_for_sleep(conn: &zbus::blocking::Connection, start: bool) {
    conn.emit_signal(
        None::<()>,
        "/org/freedesktop/login1",
        "org.freedesktop.login1.Manager",
        "PrepareForSleep",
        &(start,),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn suspend_moves_the_deadline_before_the_lock_goes_and_resume_wakes_exactly() {
    let system = PrivateBus::start();
    let logind = FakeLogind::default();
    let conn = zbus::blocking::connection::Builder::address(system.address.as_str())
        .unwrap()
        .name("org.freedesktop.login1")
        .unwrap()
        .serve_at("/org/freedesktop/login1", logind.clone())
        .unwrap()
        .build()
        .unwrap();

    let (id, cluster, yaml) = instance_and_service(R, "power", 2).await;
    let settings = timeout_settings(
        R,
        TIMEOUT,
        json!({
            "power": {"suspend_grace_minutes": GRACE.as_secs_f64() / 60.0},
            "aws": {
                "deadline_role_arn": ROLE,
                "deadline_margin_minutes": MARGIN.as_secs_f64() / 60.0
            }
        }),
    );
    let cfg = ConfigDir::with_settings(&settings, &yaml);
    let mut command = cfg.command(&["run"]);
    command.env("DBUS_SYSTEM_BUS_ADDRESS", &system.address);
    let start = unix_now();
    let d = Daemon::spawn(command);

    // A delay lock on sleep and shutdown, and the deadline at its normal
    // time.
    wait_log(
        &d.log,
        "power: following logind's PrepareForSleep",
        Duration::from_secs(10),
    );
    assert_eq!(logind.count(), 1);
    let (what, who, _, mode) = logind.locks.lock().unwrap()[0].args.clone();
    assert_eq!(
        (what.as_str(), who.as_str(), mode.as_str()),
        ("sleep:shutdown", "cloudnap", "delay")
    );
    let normal = start + (TIMEOUT + MARGIN).as_secs();
    let ec2 = schedule_of(R, &id, Duration::from_secs(10), |a| a.at >= normal - 2).await;
    schedule_of(R, &cluster, Duration::from_secs(5), |a| a.at == ec2.at).await;

    // The lid closes: by the time the lock is released, the deadline is
    // now + grace.
    let closed = unix_now();
    let t0 = Instant::now();
    prepare_for_sleep(&conn, true);
    let waiting = logind.clone();
    tokio::task::spawn_blocking(move || waiting.wait_released(0, Duration::from_secs(6)))
        .await
        .unwrap();
    eprintln!(
        "lock released {:?} after PrepareForSleep(true)",
        t0.elapsed()
    );
    let soon = closed + GRACE.as_secs();
    let in_grace = |at: u64| (soon - 1..=soon + 2).contains(&at);
    let ec2 = schedules(R, &id).await.into_values().next().unwrap();
    let ecs = schedules(R, &cluster).await.into_values().next().unwrap();
    assert!(
        in_grace(ec2.at) && in_grace(ecs.at),
        "{closed}: {ec2:?} {ecs:?}"
    );

    // "Asleep": the deadline comes and AWS puts the resources to sleep.
    while unix_now() <= ec2.at {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    fire(R, &ec2).await;
    fire(R, &ecs).await;
    assert_eq!(ec2_state(R, &id).await.0, "stopped");
    assert_eq!(ecs_desired(R, &cluster, "web").await.0, 0);

    // The lid opens: the user is back, the resources too, exactly, and the
    // lock and the deadline are taken again.
    let opened = unix_now();
    prepare_for_sleep(&conn, false);
    let t0 = Instant::now();
    while ec2_state(R, &id).await.0 != "running" || ecs_desired(R, &cluster, "web").await.0 != 2 {
        assert!(t0.elapsed() < Duration::from_secs(15), "not woken");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("woken {:?} after PrepareForSleep(false)", t0.elapsed());
    wait_log(
        &d.log,
        "the AWS-side deadline came while suspended",
        Duration::from_secs(1),
    );
    let status = d.ok("STATUS").await;
    assert_eq!(status["last_activity"]["kind"], "resumed", "{status}");
    assert_eq!(logind.count(), 2, "the lock is taken again");
    let normal = opened + (TIMEOUT + MARGIN).as_secs();
    schedule_of(R, &id, Duration::from_secs(10), |a| a.at >= normal - 2).await;
    schedule_of(R, &cluster, Duration::from_secs(5), |a| a.at >= normal - 2).await;
}
