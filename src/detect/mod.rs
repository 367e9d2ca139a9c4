//! Activity sources: each runs on its own thread, turns what the OS reports
//! into [`Activity`] through the pure filters in [`crate::core::model::activity`],
//! and sends it into one channel. A disabled source is never started.

mod audio;
#[cfg(target_os = "linux")]
mod gnome;
#[cfg(target_os = "linux")]
mod heartbeat;
mod input;
#[cfg(target_os = "linux")]
mod lock;
#[cfg(target_os = "linux")]
mod microphone;
pub mod power;
mod screen;
pub mod session;
#[cfg(any(target_os = "linux", windows))]
mod system_idle;
#[cfg(target_os = "linux")]
mod wayland;
mod window;

use crate::core::config::settings::Settings;
use crate::core::model::activity::{Activity, ActivityKind};
use crate::core::protocol::status::{DetectorRow, DetectorState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

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
}

impl Sink {
    /// A sink sending into `tx`.
    pub fn new(tx: UnboundedSender<Activity>) -> Self {
        Sink {
            tx,
            base: Instant::now(),
            last: Arc::new(AtomicU64::new(0)),
            forward_locks: false,
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
    /// The source's name, as in settings.json.
    fn name(&self) -> &'static str;
    /// Runs until the sink closes or the source fails; blocks its thread.
    fn run(self: Box<Self>, sink: Sink) -> Result<(), DetectError>;
}

/// A detector chosen for this session, and how to make its source (again,
/// after a failure).
pub struct Planned {
    detector: session::Detector,
    make: MakeSource,
}

/// Makes a detector's source, once per (re)start.
type MakeSource = Box<dyn Fn() -> Box<dyn ActivitySource> + Send>;

/// Every detector with its state before any starts (planned ones
/// `Starting`, the rest `Disabled` or `NotAvailable`), and the ones to
/// start, for `settings` in the session described by `env`. Logs the
/// session and the choice.
pub fn plan(settings: &Settings, env: &session::SessionEnv) -> (Vec<DetectorRow>, Vec<Planned>) {
    use session::Detector::*;
    let plan = session::plan(env);
    tracing::info!("{plan}");
    let linux = cfg!(target_os = "linux");
    let (k, m, sc, a, w) = (
        settings.keyboard.clone(),
        settings.mouse.clone(),
        settings.screen.clone(),
        settings.audio.clone(),
        settings.window.clone(),
    );
    #[cfg(any(target_os = "linux", windows))]
    let si = &settings.system_idle;
    let all: Vec<(session::Detector, bool, MakeSource)> = vec![
        (
            Input,
            k.enabled || m.enabled,
            Box::new(move || Box::new(input::InputSource::new(k.clone(), m.clone()))),
        ),
        (
            Screen,
            sc.enabled,
            Box::new(move || Box::new(screen::ScreenSource::new(&sc))),
        ),
        (
            Audio,
            a.enabled,
            Box::new(move || Box::new(audio::AudioSource::new(&a))),
        ),
        (
            Window,
            w.enabled,
            Box::new(move || Box::new(window::WindowSource::new(&w))),
        ),
        #[cfg(target_os = "linux")]
        (Microphone, settings.microphone.enabled, {
            let mic = settings.microphone.clone();
            Box::new(move || Box::new(microphone::MicrophoneSource::new(&mic)))
        }),
        #[cfg(any(target_os = "linux", windows))]
        (SystemIdle, si.enabled, {
            let si = si.clone();
            Box::new(move || Box::new(system_idle::SystemIdleSource::new(&si)))
        }),
        #[cfg(target_os = "linux")]
        (
            WaylandIdle,
            si.enabled,
            Box::new(|| Box::new(wayland::WaylandIdleSource)),
        ),
        #[cfg(target_os = "linux")]
        (GnomeIdle, si.enabled, {
            let si = si.clone();
            Box::new(move || Box::new(gnome::GnomeIdleSource::new(&si)))
        }),
        #[cfg(target_os = "linux")]
        (
            ScreenLock,
            settings.screen_lock.enabled,
            Box::new(|| Box::new(lock::LockSource)),
        ),
    ];
    let mut rows = Vec::new();
    let mut start = Vec::new();
    for (detector, enabled, make) in all {
        let wanted = !linux || plan.start.contains(&detector);
        let input = matches!(detector, Input | SystemIdle | WaylandIdle | GnomeIdle)
            && !plan.not_input_truth.contains(&detector);
        let state = if !enabled {
            DetectorState::Disabled
        } else if !wanted {
            DetectorState::NotAvailable(format!("not used in {}", plan.session_name()))
        } else {
            start.push(Planned { detector, make });
            DetectorState::Starting
        };
        rows.push(DetectorRow {
            name: detector.name(),
            input,
            state,
        });
    }
    (rows, start)
}

/// The detectors' states, shared by their threads; `changed` is called
/// with all of them after each change.
pub struct Health {
    rows: Mutex<Vec<DetectorRow>>,
    changed: Box<dyn Fn(Vec<DetectorRow>) + Send + Sync>,
}

impl Health {
    /// Starts from `rows`.
    pub fn new(
        rows: Vec<DetectorRow>,
        changed: impl Fn(Vec<DetectorRow>) + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Health {
            rows: Mutex::new(rows),
            changed: Box::new(changed),
        })
    }

    fn set(&self, name: &str, state: DetectorState) {
        let rows = {
            let mut rows = self.rows.lock().unwrap_or_else(PoisonError::into_inner);
            match rows.iter_mut().find(|r| r.name == name) {
                Some(r) if r.state != state => r.state = state,
                _ => return,
            }
            rows.clone()
        };
        (self.changed)(rows);
    }
}

/// How long a source must run before it counts as running.
const SETTLE: Duration = Duration::from_secs(2);
/// The first and the longest wait before restarting a failed source.
const RESTART: (Duration, Duration) = (Duration::from_secs(5), Duration::from_secs(300));

/// Runs one detector on this thread until the sink closes: a source that
/// fails (or stops) is restarted with backoff; its state goes to `health`.
fn supervise(planned: Planned, sink: Sink, health: Arc<Health>) {
    let name = planned.detector.name();
    let mut delay = RESTART.0;
    let mut first = true;
    loop {
        let began = Instant::now();
        let result = std::thread::scope(|scope| {
            let sink = sink.clone();
            let source = (planned.make)();
            let run = scope.spawn(move || source.run(sink));
            while !run.is_finished() && began.elapsed() < SETTLE {
                std::thread::sleep(Duration::from_millis(100));
            }
            if !run.is_finished() {
                tracing::info!("{name} detector running");
                health.set(name, DetectorState::Running);
                delay = RESTART.0;
            }
            run.join()
        });
        if sink.is_closed() {
            return;
        }
        let why = match result {
            Ok(Ok(())) => "stopped".to_string(),
            Ok(Err(e)) => e.message,
            Err(_) => "panicked".to_string(),
        };
        let state = if first && began.elapsed() < SETTLE {
            DetectorState::NotAvailable(why.clone())
        } else {
            DetectorState::Failed(why.clone())
        };
        if first || began.elapsed() >= SETTLE {
            tracing::warn!("{name} detector: {why}; trying again in {delay:?}");
        } else {
            tracing::debug!("{name} detector: {why}; trying again in {delay:?}");
        }
        health.set(name, state);
        first = false;
        std::thread::sleep(delay);
        delay = (delay * 2).min(RESTART.1);
    }
}

/// Starts each planned detector on its own thread, supervised.
pub fn start(planned: Vec<Planned>, sink: &Sink, health: &Arc<Health>) {
    for p in planned {
        let name = p.detector.name();
        let (sink, health) = (sink.clone(), health.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("detect-{name}"))
            .spawn(move || supervise(p, sink, health));
        if let Err(e) = spawned {
            tracing::warn!("{name} detector: cannot start a thread: {e}");
        }
    }
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
