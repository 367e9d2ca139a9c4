//! Activity sources: each runs on its own thread, turns what the OS reports
//! into [`crate::core::model::activity::Activity`] through the pure filters in [`crate::core::model::activity`],
//! and sends it into one channel. A disabled source is never started.

mod audio;
pub mod definition;
#[cfg(target_os = "linux")]
mod gnome;
#[cfg(target_os = "linux")]
mod heartbeat;
pub mod inhibitors;
mod input;
pub mod list;
pub mod lock;
mod microphone;
pub mod power;
#[cfg(target_os = "linux")]
mod pulse;
mod screen;
pub mod session;
mod source;
mod system_idle;
#[cfg(target_os = "linux")]
mod wayland;
mod window;

pub use definition::{Detector, DetectorSettings};
pub use source::{ActivitySource, DetectError, Sink};

use crate::core::config::settings::Settings;
use crate::core::protocol::status::{DetectorRow, DetectorState};
use definition::Make;
use list::DETECTORS;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A detector chosen for this session, and how to make its source (again,
/// after a failure).
pub struct Planned {
    detector: &'static Detector,
    make: Make,
    settings: DetectorSettings,
}

/// Every detector with a source, with its state before any starts (planned
/// ones `Starting`, the rest `Disabled` or `NotAvailable`), and the ones to
/// start, for `settings` in the session described by `env`. Logs the
/// session and the choice.
pub fn plan(settings: &Settings, env: &session::SessionEnv) -> (Vec<DetectorRow>, Vec<Planned>) {
    let plan = session::plan(env);
    tracing::info!("{plan}");
    let linux = cfg!(target_os = "linux");
    let mut rows = Vec::new();
    let mut start = Vec::new();
    for &detector in DETECTORS {
        let Some(make) = detector.make else { continue };
        let wanted = !linux || plan.start.contains(&detector);
        let partly = plan.not_input_truth.contains(&detector);
        let state = if !detector.enabled(&settings.detectors) {
            DetectorState::Disabled
        } else if !wanted {
            DetectorState::NotAvailable(format!("not used in {}", plan.session_name()))
        } else {
            start.push(Planned {
                detector,
                make,
                settings: settings.detectors.clone(),
            });
            DetectorState::Starting
        };
        rows.push(DetectorRow {
            detector,
            input: detector.input && !partly,
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

    fn set(&self, detector: &'static Detector, state: DetectorState) {
        let rows = {
            let mut rows = self.rows.lock().unwrap_or_else(PoisonError::into_inner);
            match rows.iter_mut().find(|r| r.detector == detector) {
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
    let (detector, name) = (planned.detector, planned.detector.name);
    let mut delay = RESTART.0;
    let mut first = true;
    loop {
        let began = Instant::now();
        let result = std::thread::scope(|scope| {
            let sink = sink.clone();
            let source = (planned.make)(&planned.settings);
            let run = scope.spawn(move || source.run(sink));
            while !run.is_finished() && began.elapsed() < SETTLE {
                std::thread::sleep(Duration::from_millis(100));
            }
            if !run.is_finished() {
                tracing::info!("{name} detector running");
                health.set(detector, DetectorState::Running);
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
        health.set(detector, state);
        first = false;
        std::thread::sleep(delay);
        delay = (delay * 2).min(RESTART.1);
    }
}

/// Starts each planned detector on its own thread, supervised.
pub fn start(planned: Vec<Planned>, sink: &Sink, health: &Arc<Health>) {
    for p in planned {
        let name = p.detector.name;
        let (sink, health) = (sink.clone(), health.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("detect-{name}"))
            .spawn(move || supervise(p, sink, health));
        if let Err(e) = spawned {
            tracing::warn!("{name} detector: cannot start a thread: {e}");
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn the_rows_follow_the_list_the_session_and_the_settings() {
        let (settings, _) =
            Settings::parse(r#"{"activity_monitor":{"screen":{"enabled":false}}}"#).unwrap();
        let sway = session::SessionEnv {
            session_type: Some("wayland".into()),
            wayland_display: true,
            display: true,
            current_desktop: Some("sway".into()),
            probed: Default::default(),
        };
        let (rows, planned) = plan(&settings, &sway);
        let rows: Vec<(&str, bool, DetectorState)> = (rows.into_iter())
            .map(|r| (r.detector.name, r.input, r.state))
            .collect();
        let away = || DetectorState::NotAvailable("not used in a Wayland session".into());
        use DetectorState::{Disabled, Starting};
        assert_eq!(
            rows,
            vec![
                ("wayland_idle", true, Starting),
                ("gnome_idle", true, away()),
                // Through Xwayland: not a source of truth for input here.
                ("keyboard/mouse", false, Starting),
                ("screen", false, Disabled),
                ("audio", false, Starting),
                ("window", false, Starting),
                ("microphone", false, Starting),
                ("system_idle", true, away()),
                ("screen_lock", false, Starting),
                ("inhibitors", false, Starting),
            ]
        );
        let planned: Vec<&str> = planned.iter().map(|p| p.detector.name).collect();
        assert_eq!(
            planned,
            [
                "wayland_idle",
                "keyboard/mouse",
                "audio",
                "window",
                "microphone",
                "screen_lock",
                "inhibitors"
            ]
        );
    }
}
