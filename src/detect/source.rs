//! What every activity source shares: the [`Sink`] it sends activity
//! into, the [`ActivitySource`] it implements, and its [`DetectError`].

use crate::core::model::activity::{Activity, ActivityKind};
use crate::core::policy::inhibitors::Inhibitor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::watch;

/// Where sources send what they see, and when any of them last saw
/// something: a costly check (screen capture, audio capture) is skipped
/// while cheaper signals already show activity.
#[derive(Clone)]
pub struct Sink {
    tx: UnboundedSender<Activity>,
    base: Instant,
    /// Milliseconds after `base` of the latest activity, plus one (0: none).
    last: Arc<AtomicU64>,
    /// Whether [`ActivityKind::Locked`] goes into the channel too.
    forward_locks: bool,
    /// The idle inhibitors other programs hold, as last seen.
    inhibitors: Arc<watch::Sender<Vec<Inhibitor>>>,
}

impl Sink {
    /// A sink sending into `tx`.
    pub fn new(tx: UnboundedSender<Activity>) -> Self {
        Sink {
            tx,
            base: Instant::now(),
            last: Arc::new(AtomicU64::new(0)),
            forward_locks: false,
            inhibitors: Arc::new(watch::Sender::new(Vec::new())),
        }
    }

    /// Also sends [`ActivityKind::Locked`] into the channel, for an
    /// orchestrator that starts its lock grace countdown on it. Without
    /// this it is dropped (the lock source logs it): an orchestrator that
    /// takes everything it receives for activity must never see it.
    pub fn forwarding_locks(mut self) -> Self {
        self.forward_locks = true;
        self
    }

    /// Reports `kind` now: activity, or for [`ActivityKind::Locked`] (which
    /// is not activity) only what [`Sink::forwarding_locks`] asks for.
    pub fn emit(&self, kind: ActivityKind) {
        let at = Instant::now();
        if !kind.is_activity() {
            if self.forward_locks {
                let _ = self.tx.send(Activity { kind, at });
            }
            return;
        }
        let ms = at.saturating_duration_since(self.base).as_millis() as u64 + 1;
        self.last.fetch_max(ms, Ordering::Relaxed);
        let _ = self.tx.send(Activity { kind, at });
    }

    /// Whether any source saw activity within `window`.
    pub fn active_within(&self, window: Duration) -> bool {
        let last = self.last.load(Ordering::Relaxed);
        last > 0 && {
            let now = Instant::now()
                .saturating_duration_since(self.base)
                .as_millis() as u64
                + 1;
            now.saturating_sub(last) <= window.as_millis() as u64
        }
    }

    /// Reports the idle inhibitors other programs hold now (every one:
    /// it replaces what was reported before), if they changed.
    pub fn set_inhibitors(&self, mut now: Vec<Inhibitor>) {
        now.sort();
        now.dedup();
        self.inhibitors.send_if_modified(|held| {
            let changed = *held != now;
            *held = std::mem::take(&mut now);
            changed
        });
    }

    /// Follows what [`Sink::set_inhibitors`] reports.
    pub fn inhibitors(&self) -> watch::Receiver<Vec<Inhibitor>> {
        self.inhibitors.subscribe()
    }

    /// Whether nobody listens any more.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// Why a source could not run.
#[derive(Debug, thiserror::Error)]
#[error("{source_name} detector: {message}")]
pub struct DetectError {
    pub source_name: &'static str,
    pub message: String,
}

impl DetectError {
    /// An error of the source `source_name`.
    pub fn new(source_name: &'static str, message: impl std::fmt::Display) -> Self {
        DetectError {
            source_name,
            message: message.to_string(),
        }
    }
}

/// One kind of activity detection.
pub trait ActivitySource: Send + 'static {
    /// Runs until the sink closes or the source fails; blocks its thread.
    fn run(self: Box<Self>, sink: Sink) -> Result<(), DetectError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_reaches_the_channel_only_when_asked_for() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let sink = Sink::new(tx);
        sink.emit(ActivityKind::Locked);
        assert!(rx.try_recv().is_err(), "dropped by default");
        assert!(!sink.active_within(Duration::from_secs(60)), "not activity");
        sink.emit(ActivityKind::Unlocked);
        assert_eq!(rx.try_recv().unwrap().kind, ActivityKind::Unlocked);
        assert!(sink.active_within(Duration::from_secs(60)));

        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let sink = Sink::new(tx).forwarding_locks();
        sink.emit(ActivityKind::Locked);
        assert_eq!(rx.try_recv().unwrap().kind, ActivityKind::Locked);
        assert!(!sink.active_within(Duration::from_secs(60)));
    }
}
