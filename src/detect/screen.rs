//! Screen changes through `xcap`: capture every `capture_interval_sec`,
//! downscale to 160×100 grey, compare with the previous frame. The capture
//! is skipped while other sources already show activity, and on X11 while
//! the X DAMAGE extension reports that nothing on screen was redrawn.

use super::{ActivitySource, DetectError, Sink};
use crate::core::activity::{changed_fraction, downscale_grey, ActivityKind};
use crate::core::settings::ScreenSettings;
use std::time::{Duration, Instant};

/// Grey levels two pixels may differ by and still count as the same.
const TOLERANCE: u8 = 8;

/// Compares downscaled captures of the primary monitor.
pub struct ScreenSource {
    interval: Duration,
    threshold: f64,
}

impl ScreenSource {
    pub fn new(settings: &ScreenSettings) -> Self {
        ScreenSource {
            interval: Duration::from_secs_f64(settings.capture_interval_sec),
            threshold: settings.change_threshold,
        }
    }
}

fn fail(message: impl std::fmt::Display) -> DetectError {
    DetectError {
        source_name: "screen",
        message: message.to_string(),
    }
}

impl ActivitySource for ScreenSource {
    fn name(&self) -> &'static str {
        "screen"
    }

    fn run(self: Box<Self>, sink: Sink) -> Result<(), DetectError> {
        let monitors = xcap::Monitor::all().map_err(fail)?;
        // Xvfb reports no primary monitor: fall back to the first.
        let monitor = monitors
            .iter()
            .find(|m| m.is_primary().unwrap_or(false))
            .or(monitors.first())
            .ok_or_else(|| fail("no monitor"))?;
        #[cfg(target_os = "linux")]
        let damage = damage::Damage::watch();
        let mut previous: Option<Vec<u8>> = None;
        while !sink.is_closed() {
            std::thread::sleep(self.interval);
            if sink.active_within(self.interval) {
                previous = None; // the screen is expected to change; start afresh
                continue;
            }
            #[cfg(target_os = "linux")]
            if previous.is_some() && damage.as_ref().is_some_and(|d| !d.redrawn()) {
                continue; // nothing was drawn: the frame is the same
            }
            let started = Instant::now();
            let image = monitor.capture_image().map_err(fail)?;
            let frame = downscale_grey(image.as_raw(), image.width(), image.height(), 160, 100);
            tracing::debug!("screen check took {} µs", started.elapsed().as_micros());
            if let Some(prev) = &previous {
                if changed_fraction(prev, &frame, TOLERANCE) > self.threshold {
                    sink.emit(ActivityKind::Screen);
                }
            }
            previous = Some(frame);
        }
        Ok(())
    }
}

/// X DAMAGE on the root window: tells whether anything was drawn since the
/// last call, so a static screen costs no capture.
#[cfg(target_os = "linux")]
mod damage {
    use x11rb::connection::Connection;
    use x11rb::protocol::damage::{ConnectionExt as _, ReportLevel};
    use x11rb::protocol::Event;
    use x11rb::rust_connection::RustConnection;

    pub struct Damage {
        conn: RustConnection,
        id: u32,
    }

    impl Damage {
        /// Starts watching; `None` where there is no X server or no DAMAGE.
        pub fn watch() -> Option<Damage> {
            let (conn, screen) = x11rb::connect(None).ok()?;
            conn.damage_query_version(1, 1).ok()?.reply().ok()?;
            let root = conn.setup().roots[screen].root;
            let id = conn.generate_id().ok()?;
            conn.damage_create(id, root, ReportLevel::NON_EMPTY).ok()?;
            conn.flush().ok()?;
            Some(Damage { conn, id })
        }

        /// Whether anything was redrawn since the previous call (re-arms).
        pub fn redrawn(&self) -> bool {
            let mut redrawn = false;
            while let Ok(Some(event)) = self.conn.poll_for_event() {
                redrawn |= matches!(event, Event::DamageNotify(_));
            }
            if redrawn {
                let _ = self.conn.damage_subtract(self.id, x11rb::NONE, x11rb::NONE);
                let _ = self.conn.flush();
            }
            redrawn
        }
    }
}
