//! Activity sources: each runs on its own thread, turns what the OS reports
//! into [`Activity`] through the pure filters in [`crate::core::activity`],
//! and sends it into one channel. A disabled source is never started.

mod input;
#[cfg(target_os = "linux")]
mod system_idle;
mod window;

use crate::core::activity::Activity;
use crate::core::settings::Settings;
use tokio::sync::mpsc::UnboundedSender;

/// Where sources send what they see.
pub type Sink = UnboundedSender<Activity>;

/// Why a source could not run.
#[derive(Debug, thiserror::Error)]
#[error("{source_name} detector: {message}")]
pub struct DetectError {
    pub source_name: &'static str,
    pub message: String,
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
