//! Activity sources: each runs on its own thread, turns what the OS reports
//! into [`Activity`] through the pure filters in [`crate::core::activity`],
//! and sends it into one channel. A disabled source is never started.

mod audio;
mod input;
mod screen;
#[cfg(target_os = "linux")]
mod system_idle;
mod window;

use crate::core::activity::{Activity, ActivityKind};
use crate::core::settings::Settings;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
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
}

impl Sink {
    /// A sink sending into `tx`.
    pub fn new(tx: UnboundedSender<Activity>) -> Self {
        Sink {
            tx,
            base: Instant::now(),
            last: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Reports activity of `kind` now.
    pub fn emit(&self, kind: ActivityKind) {
        let at = Instant::now();
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

/// The enabled sources for `settings` on this platform.
pub fn sources(settings: &Settings) -> Vec<Box<dyn ActivitySource>> {
    let mut out: Vec<Box<dyn ActivitySource>> = Vec::new();
    if settings.keyboard.enabled || settings.mouse.enabled {
        out.push(Box::new(input::InputSource::new(
            settings.keyboard.clone(),
            settings.mouse.clone(),
        )));
    }
    if settings.screen.enabled {
        out.push(Box::new(screen::ScreenSource::new(&settings.screen)));
    }
    if settings.audio.enabled {
        out.push(Box::new(audio::AudioSource::new(&settings.audio)));
    }
    if settings.window.enabled {
        out.push(Box::new(window::WindowSource::new(&settings.window)));
    }
    #[cfg(target_os = "linux")]
    if settings.system_idle.enabled {
        out.push(Box::new(system_idle::SystemIdleSource::new(
            &settings.system_idle,
        )));
    }
    out
}

/// Starts each source on its own thread; a source that fails is logged and
/// the others go on.
pub fn start(sources: Vec<Box<dyn ActivitySource>>, sink: &Sink) {
    for source in sources {
        let name = source.name();
        let sink = sink.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("detect-{name}"))
            .spawn(move || {
                tracing::info!("{name} detector started");
                if let Err(e) = source.run(sink) {
                    tracing::warn!("{e}");
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("{name} detector: cannot start a thread: {e}");
        }
    }
}
